"""Tests of the visual half of AV-Digits: loading, rendering, augmentation and corruption of digit frames."""

from __future__ import annotations

import json

import numpy as np
import pytest

from snnav.data.digits_visual import AugmentConfig, corrupt_frame, load_digit_images, render_frame
from snnav.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return load_digit_images()


def _centre_of_mass(frame: np.ndarray) -> np.ndarray:
    ys, xs = np.indices(frame.shape)
    return np.array([(frame * ys).sum(), (frame * xs).sum()]) / frame.sum()


def _nearest_centroid_accuracy(features: np.ndarray, labels: np.ndarray, n_train: int) -> float:
    train, test = slice(0, n_train), slice(n_train, None)
    centroids = np.stack([features[train][labels[train] == c].mean(axis=0) for c in range(10)])
    dist = ((features[test][:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    return float((dist.argmin(axis=1) == labels[test]).mean())


def test_load_digit_images_shapes_range_and_balance(digits):
    images, labels = digits
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    # sklearn's pixels are counts 0..16, so every value is a multiple of 1/16.
    np.testing.assert_allclose(images * 16, np.round(images * 16), atol=1e-5)
    counts = np.bincount(labels, minlength=10)
    assert counts.shape == (10,) and counts.min() >= 170 and counts.max() <= 190


def test_load_digit_images_returns_independent_copies():
    images, labels = load_digit_images()
    images[:] = 0.5
    labels[:] = 0
    again, again_labels = load_digit_images()
    assert again.max() == 1.0 and again_labels.max() == 9


@pytest.mark.parametrize("size", [16, 33, 64])
def test_render_frame_shape_dtype_range(digits, size):
    frame = render_frame(digits[0][5], size, np.random.default_rng(0), AugmentConfig())
    assert frame.shape == (size, size) and frame.dtype == np.float32
    assert frame.min() >= 0.0 and frame.max() <= 1.0


def test_render_frame_is_deterministic_given_the_seed(digits):
    image = digits[0][42]
    first = render_frame(image, 64, np.random.default_rng(123), AugmentConfig())
    second = render_frame(image, 64, np.random.default_rng(123), AugmentConfig())
    other = render_frame(image, 64, np.random.default_rng(124), AugmentConfig())
    assert first.tobytes() == second.tobytes()
    assert np.abs(first - other).mean() > 0.01


def test_unaugmented_render_is_centred_and_sized(digits):
    images = digits[0][:100]
    coms = np.stack([_centre_of_mass(render_frame(im, 64, None, AugmentConfig())) for im in images])
    centre = (64 - 1) / 2.0
    np.testing.assert_allclose(coms.mean(axis=0), [centre, centre], atol=1.0)
    assert np.abs(coms - centre).max() < 0.1 * 64
    # The digits are 8 pixels tall, so the ink spans about glyph_frac of the frame's height.
    frame = render_frame(images[0], 64, None, AugmentConfig(glyph_frac=0.6))
    rows = np.flatnonzero(frame.max(axis=1) > 0.1)
    assert 0.55 * 64 <= rows[-1] - rows[0] + 1 <= 0.75 * 64
    assert render_frame(images[0], 64, None).tobytes() == render_frame(images[0], 64, None).tobytes()


def test_augmentation_changes_the_frame_but_keeps_the_ink(digits):
    rng = np.random.default_rng(7)
    geometric = AugmentConfig(contrast_range=(1.0, 1.0), gamma_range=(1.0, 1.0), background_range=(0.0, 0.0))
    ring = np.ones((64, 64), dtype=bool)
    ring[4:-4, 4:-4] = False
    for image in digits[0][:60]:
        plain = render_frame(image, 64, None, geometric)
        moved = render_frame(image, 64, rng, geometric)
        assert np.abs(moved - plain).mean() > 0.005
        # Rotation and shear keep area; the scale range (0.9..1.1) changes it by at most 0.81..1.21.
        assert 0.75 < moved.sum() / plain.sum() < 1.3
        assert moved[ring].max() < 0.1  # the glyph keeps clear of the border, leaving room for saccades


def test_intensity_augmentation_sets_background_and_contrast(digits):
    aug = AugmentConfig(rotation_deg=0.0, scale_range=(1.0, 1.0), shear_deg=0.0, translate_frac=0.0,
                        contrast_range=(0.5, 0.5), gamma_range=(1.0, 1.0), background_range=(0.3, 0.3))
    frame = render_frame(digits[0][0], 32, np.random.default_rng(0), aug)
    np.testing.assert_allclose(frame[0], 0.3, atol=1e-3)  # cubic-spline tails leave < 1e-3 of ink at the edge
    np.testing.assert_allclose(frame.max(), 0.3 + 0.5 * 0.7, atol=1e-3)  # the glyph peaks at full ink


def test_augment_config_round_trip_and_validation():
    cfg = AugmentConfig(rotation_deg=5.0, scale_range=(0.8, 1.2))
    data = json.loads(json.dumps(cfg.to_dict()))
    assert AugmentConfig.from_dict(data) == cfg
    with pytest.raises(ConfigError, match="unknown"):
        AugmentConfig.from_dict({**data, "blur": 1.0})
    with pytest.raises(ConfigError, match="scale_range"):
        AugmentConfig(scale_range=(1.2, 0.8))
    with pytest.raises(ConfigError, match="glyph_frac"):
        AugmentConfig(glyph_frac=1.5)
    with pytest.raises(ConfigError, match="background_range"):
        AugmentConfig(background_range=(0.0, 1.0))
    none = AugmentConfig.none()
    image = load_digit_images()[0][3]
    assert render_frame(image, 32, np.random.default_rng(1), none).tobytes() == render_frame(image, 32, None).tobytes()


def test_render_frame_rejects_bad_input():
    with pytest.raises(DatasetError):
        render_frame(np.zeros((8, 8, 3)), 32, None)
    with pytest.raises(DatasetError):
        render_frame(np.full((8, 8), np.nan), 32, None)
    with pytest.raises(ConfigError):
        render_frame(np.zeros((8, 8)), 0, None)


@pytest.mark.parametrize("frac", [0.05, 0.1, 0.25, 0.5, 0.9])
def test_occlusion_covers_the_requested_fraction(frac):
    rng = np.random.default_rng(int(frac * 100))
    for _ in range(5):
        frame = rng.uniform(0.1, 0.9, size=(64, 64)).astype(np.float32)
        out = corrupt_frame(frame, rng, pixel_noise_std=0.0, occlusion_frac=frac)
        changed = out != frame
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
        assert box == changed.sum()  # one solid rectangle
        assert abs(changed.mean() - frac) <= 0.02
        # "background" fill is the median of the border ring.
        border = np.concatenate([frame[0], frame[-1], frame[1:-1, 0], frame[1:-1, -1]])
        np.testing.assert_array_equal(out[changed], np.median(border))


def test_occlusion_random_fill_and_no_op():
    frame = np.zeros((32, 32), dtype=np.float32)
    out = corrupt_frame(frame, np.random.default_rng(3), occlusion_frac=0.25, occlusion_fill="random")
    assert np.unique(out).size == 2 and abs((out > 0).mean() - 0.25) <= 0.02
    assert corrupt_frame(frame, np.random.default_rng(3)).tobytes() == frame.tobytes()
    with pytest.raises(ConfigError):
        corrupt_frame(frame, np.random.default_rng(3), occlusion_fill="checkerboard")
    with pytest.raises(ConfigError):
        corrupt_frame(frame, np.random.default_rng(3), occlusion_frac=1.5)


def test_pixel_noise_has_the_requested_std_and_stays_in_range():
    frame = np.full((128, 128), 0.5, dtype=np.float32)
    out = corrupt_frame(frame, np.random.default_rng(0), pixel_noise_std=0.05)
    noise = out - frame
    assert abs(noise.std() - 0.05) < 0.0025 and abs(noise.mean()) < 0.002
    assert frame.max() == 0.5  # the input is not modified
    loud = corrupt_frame(frame, np.random.default_rng(0), pixel_noise_std=1.0)
    assert loud.min() == 0.0 and loud.max() == 1.0


def test_rendered_frames_stay_recognisable(digits):
    images, labels = digits
    rng = np.random.default_rng(0)
    frames = np.stack([render_frame(im, 32, rng) for im in images]).reshape(len(images), -1)
    accuracy = _nearest_centroid_accuracy(frames, labels, n_train=1200)
    assert accuracy > 0.65  # chance is 0.1; measured 0.73 with a nearest-centroid classifier
