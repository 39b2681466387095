"""Tests of the DVS emulator: saccades, pixel model (signs, counts, refractory, noise), binning, determinism."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from snnav.data.digits_visual import load_digit_images, render_frame
from snnav.data.dvs import (
    OFF,
    ON,
    DVSConfig,
    bin_events,
    dvs_view,
    event_list,
    frame_events,
    saccade_trajectory,
    shift_frames,
    shift_frames_reference,
    video_events,
)
from snnav.errors import ConfigError, DatasetError

IDEAL = DVSConfig(threshold_mismatch_std=0.0, noise_rate=0.0)


@pytest.fixture(scope="module")
def digit_frame() -> np.ndarray:
    images, _ = load_digit_images()
    return render_frame(images[0], 32, np.random.default_rng(0))


def _step_edge(width: int = 32) -> np.ndarray:
    frame = np.zeros((16, width), dtype=np.float32)
    frame[:, : width // 2] = 1.0  # bright on the left, dark on the right
    return frame


def test_config_round_trip_and_validation():
    cfg = DVSConfig(n_substeps=48, threshold=0.15, refractory_substeps=2)
    assert DVSConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="unknown"):
        DVSConfig.from_dict({"threshold": 0.2, "gain": 3})
    for bad in ({"threshold": 0.0}, {"n_substeps": 1}, {"n_substeps": 8.0}, {"saccade_duty": 0.0},
                {"noise_rate": -1e-3}, {"log_eps": float("nan")}):
        with pytest.raises(ConfigError):
            DVSConfig(**bad)


def test_trajectory_is_a_closed_triangle_of_the_given_side():
    cfg = DVSConfig(n_substeps=31, saccade_amplitude_px=3.0, n_saccades=3)
    path = saccade_trajectory(cfg, None)
    assert path.shape == (31, 2)
    corners = path[[0, 10, 20, 30]]  # phase = k / 10 reaches a corner every 10 substeps
    np.testing.assert_allclose(corners[0], corners[3], atol=1e-12)
    sides = np.linalg.norm(np.diff(corners, axis=0), axis=1)
    np.testing.assert_allclose(sides, 3.0, atol=1e-9)
    np.testing.assert_allclose(corners[:3].mean(axis=0), 0.0, atol=1e-9)  # centred on the digit
    # Continuous, with a raised-cosine speed profile: slow at the corners, fastest mid-saccade.
    speed = np.linalg.norm(np.diff(path, axis=0), axis=1)
    assert speed.max() < 3.0 * math.pi / 2 / 10 + 1e-9
    assert speed[0] < 0.2 * speed[4]


def test_random_trajectories_differ_by_seed_and_stay_small():
    cfg = DVSConfig(saccade_amplitude_px=3.0)
    a = saccade_trajectory(cfg, np.random.default_rng(1))
    b = saccade_trajectory(cfg, np.random.default_rng(1))
    c = saccade_trajectory(cfg, np.random.default_rng(2))
    assert a.tobytes() == b.tobytes() and not np.allclose(a, c)
    assert np.abs(a).max() <= 3.0 * 1.25
    assert np.all(saccade_trajectory(DVSConfig(saccade_amplitude_px=0.0), np.random.default_rng(1)) == 0.0)


def test_shift_frames_gives_the_bytes_of_one_step_at_a_time(digit_frame):
    """All steps are computed at once; each must equal the per-step reference, bit for bit."""
    for seed, amplitude in ((2, 5.0), (3, 0.4), (4, 12.0)):
        traj = saccade_trajectory(DVSConfig(saccade_amplitude_px=amplitude), np.random.default_rng(seed))
        got = shift_frames(digit_frame, traj)
        want = shift_frames_reference(digit_frame, traj)
        assert got.dtype == want.dtype == np.float32 and got.shape == want.shape == (len(traj), *digit_frame.shape)
        assert got.tobytes() == want.tobytes()


def test_shift_frames_matches_scipy_shift(digit_frame):
    offsets = np.array([[0.0, 0.0], [0.3, -1.7], [2.5, 0.0], [-0.25, 2.75]])
    shifted = shift_frames(digit_frame, offsets)
    for k, offset in enumerate(offsets):
        expected = ndimage.shift(digit_frame, offset, order=1, mode="nearest")
        np.testing.assert_allclose(shifted[k], expected, atol=1e-6)


def test_static_scene_without_noise_gives_no_events(digit_frame):
    cfg = DVSConfig(saccade_amplitude_px=0.0, noise_rate=0.0, threshold_mismatch_std=0.03)
    events = frame_events(digit_frame, cfg, np.random.default_rng(0))
    assert events.shape == (cfg.n_substeps, 2, 32, 32) and events.dtype == np.uint8
    assert events.sum() == 0


def test_edge_moving_right_brightens_its_leading_side():
    events = frame_events(_step_edge(), IDEAL, None, trajectory=np.array([[0.0, 0.0], [0.0, 1.0]]))
    # Column 16 goes from dark (0) to bright (1): log(1.05 / 0.05) / 0.2 = 15.2 → 15 ON events per pixel.
    assert np.all(events[1, ON, :, 16] == 15)
    assert events[:, ON].sum() == 15 * 16 and events[:, OFF].sum() == 0 and events[0].sum() == 0
    # Half a pixel: the column reaches 0.5, log(0.55 / 0.05) / 0.2 = 11.99 → 11 (truncation toward zero).
    half = frame_events(_step_edge(), IDEAL, None, trajectory=np.array([[0.0, 0.0], [0.0, 0.5]]))
    assert set(np.unique(half[1, ON, :, 16])) == {11} and half[:, OFF].sum() == 0


def test_edge_moving_left_darkens_and_bar_has_both_polarities():
    events = frame_events(_step_edge(), IDEAL, None, trajectory=np.array([[0.0, 0.0], [0.0, -1.0]]))
    assert np.all(events[1, OFF, :, 15] == 15) and events[:, ON].sum() == 0 and events.sum() == 15 * 16
    bar = np.zeros((16, 32), dtype=np.float32)
    bar[:, 10:20] = 1.0
    events = frame_events(bar, IDEAL, None, trajectory=np.array([[0.0, 0.0], [0.0, 1.0]]))
    on_cols = np.flatnonzero(events[:, ON].sum(axis=(0, 1)))
    off_cols = np.flatnonzero(events[:, OFF].sum(axis=(0, 1)))
    assert on_cols.tolist() == [20] and off_cols.tolist() == [10]  # leading edge ON, trailing edge OFF


def _log_ramp(step: float, n: int = 9) -> np.ndarray:
    # log(I_k + eps) = log(0.1) + step·k, a uniform brightening by `step` log units per substep.
    log_i = math.log(0.1) + step * np.arange(n)
    return np.broadcast_to((np.exp(log_i) - 0.05)[:, None, None], (n, 2, 2)).astype(np.float32)


def test_reference_moves_by_emitted_amount_and_refractory_drops_events():
    video = _log_ramp(0.27)
    free = video_events(video, IDEAL, None)
    # Cumulative ON events = floor(0.27·k / 0.2): 0, 1, 2, 4, 5, 6, 8, 9, 10.
    assert free[:, ON, 0, 0].tolist() == [0, 1, 1, 2, 1, 1, 2, 1, 1] and free[:, OFF].sum() == 0
    held = video_events(video, DVSConfig(threshold_mismatch_std=0.0, noise_rate=0.0, refractory_substeps=1), None)
    # Held in reset every other step, with the reference following the input, each firing sees exactly 0.27.
    assert held[:, ON, 0, 0].tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0]


def test_events_grow_as_threshold_falls(digit_frame):
    totals = []
    for threshold in (0.4, 0.3, 0.2, 0.1):
        cfg = DVSConfig(threshold=threshold, noise_rate=0.0)
        totals.append(int(frame_events(digit_frame, cfg, np.random.default_rng(5)).sum()))
    assert all(a < b for a, b in zip(totals, totals[1:])), totals
    assert totals[0] > 0


def test_noise_rate_sets_the_number_of_spurious_events():
    cfg = DVSConfig(saccade_amplitude_px=0.0, noise_rate=0.01, n_substeps=32)
    events = frame_events(np.full((32, 32), 0.4, np.float32), cfg, np.random.default_rng(0))
    expected = 0.01 * 32 * 32 * 32
    assert abs(int(events.sum()) - expected) < 5 * math.sqrt(expected)
    assert events[:, ON].sum() > 0.3 * expected and events[:, OFF].sum() > 0.3 * expected


def test_same_seed_same_bytes(digit_frame):
    first = dvs_view(digit_frame, 8, DVSConfig(), np.random.default_rng(11))
    second = dvs_view(digit_frame, 8, DVSConfig(), np.random.default_rng(11))
    other = dvs_view(digit_frame, 8, DVSConfig(), np.random.default_rng(12))
    assert first.shape == (8, 2, 32, 32) and first.dtype == np.uint8
    assert first.tobytes() == second.tobytes() and first.tobytes() != other.tobytes()
    assert dvs_view(digit_frame, 8).tobytes() == dvs_view(digit_frame, 8).tobytes()  # rng=None is ideal


@settings(max_examples=40, deadline=None)
@given(n_substeps=st.integers(1, 40), n_bins=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_bin_events_preserves_counts(n_substeps, n_bins, seed):
    n_bins = min(n_bins, n_substeps)
    events = np.random.default_rng(seed).integers(0, 4, size=(n_substeps, 2, 3, 5)).astype(np.uint8)
    binned = bin_events(events, n_bins)
    assert binned.shape == (n_bins, 2, 3, 5) and binned.dtype == np.uint8
    np.testing.assert_array_equal(binned.sum(axis=0, dtype=np.int64), events.sum(axis=0, dtype=np.int64))
    edges = (np.arange(n_bins + 1) * n_substeps) // n_bins
    np.testing.assert_array_equal(binned[-1], events[edges[-2]:].sum(axis=0))


def test_bin_events_saturates_and_validates():
    events = np.full((4, 2, 1, 1), 200, dtype=np.uint8)
    assert bin_events(events, 2).max() == 255 and bin_events(events, 4).tobytes() == events.tobytes()
    with pytest.raises(ConfigError):
        bin_events(events, 5)
    with pytest.raises(DatasetError):
        bin_events(-np.ones((4, 2, 1, 1), dtype=np.int32), 2)
    with pytest.raises(DatasetError):
        bin_events(events[:, 0], 2)


def test_event_list_round_trips_to_counts(digit_frame):
    events = frame_events(digit_frame, DVSConfig(), np.random.default_rng(3))
    listed = event_list(events)
    assert len(listed) == events.sum() > 0
    rebuilt = np.zeros_like(events)
    np.add.at(rebuilt, (listed["t"], listed["p"], listed["y"], listed["x"]), 1)
    np.testing.assert_array_equal(rebuilt, events)


def test_bad_frames_are_rejected():
    with pytest.raises(DatasetError):
        frame_events(np.zeros((2, 8, 8)), DVSConfig())
    with pytest.raises(DatasetError):
        frame_events(np.full((8, 8), -1.0), DVSConfig())
    with pytest.raises(DatasetError):
        shift_frames(np.zeros((8, 8)), np.zeros((4, 3)))


def test_dvs_view_of_digits_stays_recognisable():
    images, labels = load_digit_images()
    rng = np.random.default_rng(0)
    cfg = DVSConfig(n_substeps=16)
    views = np.stack([dvs_view(render_frame(im, 32, rng), 4, cfg, rng) for im in images])  # (N, T, 2, H, W)
    features = views.sum(axis=1, dtype=np.float32).reshape(len(images), -1)  # summed over time, per polarity
    train, test = slice(0, 1200), slice(1200, None)
    centroids = np.stack([features[train][labels[train] == c].mean(axis=0) for c in range(10)])
    predicted = ((features[test][:, None, :] - centroids[None]) ** 2).sum(axis=-1).argmin(axis=1)
    assert (predicted == labels[test]).mean() > 0.4  # chance is 0.1; measured ~0.5 with nearest centroid
