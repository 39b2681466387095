"""Tests of the audio views: SNR noise, S-CMRL's log spectrogram, the cochlea spike view and its 8x8 folding."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import snnav.data.audio_views as audio_views
from snnav.data.audio_views import (
    SPEC_EPS,
    add_noise_snr,
    cochlea_band_edges,
    cochlea_spikes,
    cochlea_spikes_batch,
    cochlea_spikes_reference,
    fold_cochlea,
    log_spectrogram,
    stft_log_magnitude,
)
from snnav.errors import ConfigError, DatasetError

SR = 22050


def _tone(freq_hz: float, seconds: float = 0.5, sample_rate: int = SR, amp: float = 0.3) -> np.ndarray:
    """A sine with 20 ms raised ramps, so the onset is not a broadband click."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
    return (amp * np.sin(2 * np.pi * freq_hz * t) * ramp).astype(np.float32)


def _speechlike(seed: int = 0, seconds: float = 0.6) -> np.ndarray:
    """Amplitude-modulated noise plus a gliding tone: broadband, loud and quiet parts."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3 * t))
    glide = np.sin(2 * np.pi * (300 * t + 800 * t ** 2))
    return (envelope * (0.3 * rng.standard_normal(t.size) + 0.5 * glide)).clip(-1, 1).astype(np.float32)


# --------------------------------------------------------------------------------------------------- noise


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 20.0])
def test_noise_has_the_requested_snr(snr_db):
    clean = _speechlike()
    noisy = add_noise_snr(clean, snr_db, np.random.default_rng(1))
    assert noisy.dtype == np.float32 and noisy.shape == clean.shape
    noise = noisy.astype(np.float64) - clean
    measured = 10 * math.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert abs(measured - snr_db) < 0.5


def test_noise_is_seeded_and_none_means_no_noise():
    clean = _speechlike()
    a = add_noise_snr(clean, 5.0, np.random.default_rng(7))
    assert np.array_equal(a, add_noise_snr(clean, 5.0, np.random.default_rng(7)))
    assert not np.array_equal(a, add_noise_snr(clean, 5.0, np.random.default_rng(8)))
    assert np.array_equal(add_noise_snr(clean, None, np.random.default_rng(7)), clean)
    with pytest.raises(DatasetError):
        add_noise_snr(np.zeros(100, np.float32), 10.0, np.random.default_rng(0))


# --------------------------------------------------------------------------------------------------- spectrogram


def test_stft_matches_torch_stft_with_zero_padding():
    torch = pytest.importorskip("torch")
    wave = _speechlike(3)
    ours = stft_log_magnitude(wave, SR)
    ref = torch.stft(torch.from_numpy(wave), n_fft=512, hop_length=353, window=torch.hann_window(512),
                     center=True, pad_mode="constant", return_complex=True).abs().numpy()
    assert ours.shape == ref.shape == (257, 1 + wave.size // 353)
    np.testing.assert_allclose(np.exp(ours.astype(np.float64)) - SPEC_EPS, ref, rtol=1e-4, atol=1e-4)
    reflect = torch.stft(torch.from_numpy(wave), n_fft=512, hop_length=353, window=torch.hann_window(512),
                         center=True, pad_mode="reflect", return_complex=True).abs().numpy()
    assert np.abs(np.exp(ours[:, 0]) - reflect[:, 0]).max() > 1e-2  # the first frame tells the paddings apart


@pytest.mark.parametrize("out_hw", [(64, 64), (128, 128), (32, 48)])
def test_spectrogram_shape_dtype_and_value_range(out_hw):
    image = log_spectrogram(_speechlike(), SR, out_hw)
    assert image.shape == out_hw and image.dtype == np.float32
    # log(1e-7) = -16.1 for silence; |X| <= sum(hann) = 256 for samples in [-1, 1], so at most log(256) = 5.5.
    assert image.min() >= math.log(SPEC_EPS) - 1e-4 and image.max() <= math.log(256.0) + 1e-4
    assert image.max() > 0.0 and image.min() < -4.0


def test_silence_is_the_floor_and_loud_input_is_clamped():
    assert np.allclose(log_spectrogram(np.zeros(8000, np.float32), SR), math.log(SPEC_EPS))
    loud = log_spectrogram(10 * _speechlike(), SR)
    assert loud.max() <= math.log(256.0) + 1e-4  # clamped to [-1, 1] before the STFT


@pytest.mark.parametrize("sample_rate", [22050, 16000, 44100])
@pytest.mark.parametrize("freq_hz", [500.0, 3000.0, 8000.0])
def test_a_pure_tone_lands_in_its_frequency_row(freq_hz, sample_rate):
    h = 64
    image = log_spectrogram(_tone(freq_hz, 1.0, sample_rate), sample_rate, (h, 64))
    fft_bin = freq_hz * 512 / SR
    expected_row = (fft_bin + 0.5) * h / 257 - 0.5  # PIL maps row centres linearly onto the 257 bins
    assert abs(int(np.argmax(image.mean(axis=1))) - expected_row) <= 1.0


def test_clip_duration_is_stretched_to_the_width():
    short, long = log_spectrogram(_tone(1000, 0.3), SR, (32, 32)), log_spectrogram(_tone(1000, 2.0), SR, (32, 32))
    assert short.shape == long.shape == (32, 32)
    assert stft_log_magnitude(_tone(1000, 2.0), SR).shape == (257, 1 + int(2.0 * SR) // 353)


def test_spectrogram_rejects_bad_input():
    with pytest.raises(DatasetError):
        log_spectrogram(np.zeros((2, 1000), np.float32), SR)
    with pytest.raises(DatasetError):
        log_spectrogram(np.zeros(0, np.float32), SR)
    with pytest.raises(ConfigError):
        log_spectrogram(_tone(440), SR, (0, 64))
    with pytest.raises(ConfigError):
        log_spectrogram(_tone(440), 0)


# --------------------------------------------------------------------------------------------------- cochlea


def test_band_edges_are_log_spaced_from_fmin_to_fmax():
    edges = cochlea_band_edges(64, 100.0, 8000.0)
    assert edges.shape == (65,) and edges[0] == pytest.approx(100.0) and edges[-1] == pytest.approx(8000.0)
    assert np.allclose(edges[1:] / edges[:-1], (8000 / 100) ** (1 / 64))


@pytest.mark.parametrize("freq_hz", [150.0, 300.0, 1000.0, 3000.0, 6000.0])
def test_a_pure_tone_excites_its_own_channel_most(freq_hz):
    counts = cochlea_spikes(_tone(freq_hz), SR, 16)
    assert counts.shape == (16, 64) and counts.dtype == np.uint8
    per_channel = counts.sum(axis=0).astype(int)
    own = int(np.searchsorted(cochlea_band_edges(), freq_hz)) - 1
    assert per_channel[own] == per_channel.max() > 0
    far = np.abs(np.arange(64) - own) > 12  # more than ~1.2 octaves away
    assert per_channel[far].max() <= per_channel[own] // 4


def test_silence_gives_no_spikes_and_spikes_follow_the_sound_in_time():
    assert cochlea_spikes(np.zeros(SR // 2, np.float32), SR, 16).sum() == 0
    burst = np.concatenate([np.zeros(SR // 2, np.float32), _tone(2000.0, 0.5)])
    counts = cochlea_spikes(burst, SR, 16)
    assert counts[:8].sum() == 0 and counts[8:].sum() > 0
    assert counts.sum(axis=1).argmax() == 8  # the onset bin


def test_louder_sound_gives_more_spikes_and_counts_saturate():
    quiet, loud = cochlea_spikes(_tone(1000.0, amp=0.01), SR, 8), cochlea_spikes(_tone(1000.0, amp=0.5), SR, 8)
    assert loud.sum() > quiet.sum() > 0
    noise = np.random.default_rng(0).standard_normal(20 * SR).astype(np.float32) * 0.3
    one_bin = cochlea_spikes(noise, SR, 1)
    assert one_bin.max() == 255  # saturated, not wrapped around
    assert cochlea_spikes(noise, SR, 64).max() < 255


def test_cochlea_is_deterministic_and_accepts_other_rates_and_sizes():
    wave = _speechlike(5)
    a = cochlea_spikes(wave, SR, 20)
    assert np.array_equal(a, cochlea_spikes(wave, SR, 20))
    assert a.sum() > 0
    resampled = cochlea_spikes(_tone(1000.0, 0.5, 16000), 16000, 10, n_channels=16, fmin=200.0, fmax=7000.0)
    assert resampled.shape == (10, 16)
    own = int(np.searchsorted(cochlea_band_edges(16, 200.0, 7000.0), 1000.0)) - 1
    assert resampled.sum(axis=0).argmax() == own


def test_cochlea_rejects_bad_arguments():
    with pytest.raises(ConfigError):
        cochlea_spikes(_tone(440), SR, 0)
    with pytest.raises(ConfigError):
        cochlea_spikes(_tone(440), SR, 8, fmax=12000.0)
    with pytest.raises(ConfigError):
        cochlea_spikes(_tone(440), SR, 8, threshold=0.0)
    with pytest.raises(DatasetError):
        cochlea_spikes(np.zeros(0, np.float32), SR, 8)


# --------------------------------------------------------------------------------------------------- folding


def test_fold_is_the_reference_view_then_bilinear():
    torch = pytest.importorskip("torch")
    counts = np.random.default_rng(0).integers(0, 20, size=(16, 64)).astype(np.uint8)
    ours = fold_cochlea(counts, (28, 28))
    ref = torch.nn.functional.interpolate(torch.tensor(counts, dtype=torch.float).view(16, 1, 8, 8), size=(28, 28),
                                          mode="bilinear", align_corners=False).numpy()
    assert ours.shape == (16, 1, 28, 28) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(t=st.integers(1, 6), side=st.sampled_from([2, 4, 8]), h=st.integers(1, 40), w=st.integers(1, 40))
def test_fold_matches_torch_for_any_size(t, side, h, w):
    torch = pytest.importorskip("torch")
    counts = np.random.default_rng(t * 1000 + h * 40 + w).integers(0, 255, size=(t, side * side)).astype(np.uint8)
    ref = torch.nn.functional.interpolate(torch.tensor(counts, dtype=torch.float).view(t, 1, side, side),
                                          size=(h, w), mode="bilinear", align_corners=False).numpy()
    np.testing.assert_allclose(fold_cochlea(counts, (h, w)), ref, rtol=1e-5, atol=1e-4)


def test_fold_is_not_topographic_and_rejects_non_square_channels():
    counts = np.zeros((1, 64), np.uint8)
    counts[0, 7] = counts[0, 8] = 1  # adjacent channels
    grid = fold_cochlea(counts, (8, 8))[0, 0]
    assert grid[0, 7] == 1 and grid[1, 0] == 1  # ...land in opposite corners of the 8x8 grid
    with pytest.raises(DatasetError):
        fold_cochlea(np.zeros((4, 60), np.uint8), (28, 28))


def _noisy_utterances(n: int) -> list[np.ndarray]:
    """Speech-like waves of different lengths with white noise at 0 dB, like AV-Digits pairs."""
    rng = np.random.default_rng(3)
    return [add_noise_snr(_speechlike(seed, seconds=0.3 + 0.07 * seed), 0.0, rng) for seed in range(n)]


@pytest.mark.parametrize("threshold", [0.3, 0.02])
def test_batched_cochlea_gives_the_reference_bytes(threshold):
    """Batching (complex pairs, shared low-pass calls, stacked delta modulators) must not change one bit; a tiny
    threshold makes the counts sensitive to the last bit of the envelopes."""
    waves = _noisy_utterances(5)  # odd: one wave without a partner; lengths all differ
    batch = cochlea_spikes_batch(waves, SR, 8, threshold=threshold)
    for wave, got in zip(waves, batch):
        want = cochlea_spikes_reference(wave, SR, 8, threshold=threshold)
        assert got.dtype == want.dtype == np.uint8 and got.tobytes() == want.tobytes()
    assert cochlea_spikes(waves[2], SR, 8, threshold=threshold).tobytes() == batch[2].tobytes()
    assert cochlea_spikes_batch([], SR, 8) == []


def test_batched_log_envelopes_equal_the_reference_bit_for_bit():
    bank = audio_views._filterbank(64, 100.0, 8000.0, 2, 50.0)
    xs = [w.astype(np.float64) for w in _noisy_utterances(4)]
    batch = audio_views._log_envelopes_batch(xs, bank, 3e-4)  # (n_env_max, n_waves, C)
    for i, x in enumerate(xs):
        want = audio_views._log_envelopes(x, bank, 3e-4)  # (n_env, C)
        assert np.array_equal(batch[: want.shape[0], i], want)


@pytest.mark.parametrize("width", [1, 5, 8, 13, 22, 64, 128, 129])
def test_block_means_add_in_numpys_order(width):
    rows = np.abs(np.random.default_rng(width).standard_normal((3000, width))) * 1e3
    out = np.empty(3000)
    audio_views._block_means(rows, out=out)
    assert np.array_equal(out, rows.mean(axis=1))
