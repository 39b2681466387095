"""Tests of the eSpeak NG binding: voices, determinism, plausible audio, worker processes, and digit separability."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

from snnav.data import tts
from snnav.data.audio_views import cochlea_spikes, log_spectrogram
from snnav.data.tts import VoiceConfig, digit_words, list_english_voices, list_variants, synthesize, voice_grid
from snnav.errors import ConfigError, DatasetError

PLAIN = VoiceConfig("en-us", None, 175, 50, 50)
CONFIGS = [PLAIN, VoiceConfig("en-gb-x-rp", "f3", 150, 60, 40), VoiceConfig("en-gb-scotland", "m3", 200, 35, 70),
           VoiceConfig("en-029", "klatt", 130, 50, 50)]


def _leading_trailing_silence(wave: np.ndarray) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(wave) >= np.abs(wave).max() * 0.01)
    return int(loud[0]), int(wave.size - 1 - loud[-1])


def _f0_hz(wave: np.ndarray, sample_rate: int) -> float:
    """Autocorrelation pitch of the loudest 80 ms, searched over 60-400 Hz."""
    n = int(0.08 * sample_rate)
    energy = np.convolve(wave ** 2, np.ones(n), mode="valid")
    seg = wave[int(np.argmax(energy)):][:n].astype(np.float64)
    seg = seg - seg.mean()
    ac = np.correlate(seg, seg, mode="full")[n - 1:]
    lo, hi = sample_rate // 400, sample_rate // 60
    return sample_rate / (lo + int(np.argmax(ac[lo:hi])))


def test_digit_words_are_the_ten_digit_names_in_label_order():
    assert digit_words() == ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def test_voice_config_round_trips_and_has_a_stable_key():
    cfg = VoiceConfig("en-us", "f3", 150, 60, 50)
    assert cfg.key == "en-us+f3/r150/p60/pr50"
    assert VoiceConfig("en", None, 120, 20, 80).key == "en/r120/p20/pr80"
    assert VoiceConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict() == {"voice": "en-us", "variant": "f3", "rate_wpm": 150, "pitch": 60, "pitch_range": 50}


@pytest.mark.parametrize("kwargs", [dict(rate_wpm=50), dict(rate_wpm=500), dict(pitch=-1), dict(pitch_range=101),
                                    dict(voice="en-us+f3"), dict(voice=""), dict(variant="Mr serious"),
                                    dict(rate_wpm=150.0)])
def test_voice_config_rejects_bad_values(kwargs):
    fields = dict(voice="en-us", variant=None, rate_wpm=150, pitch=50, pitch_range=50) | kwargs
    with pytest.raises(ConfigError):
        VoiceConfig(**fields)


def test_voice_config_from_dict_rejects_unknown_and_missing_keys():
    with pytest.raises(ConfigError):
        VoiceConfig.from_dict(PLAIN.to_dict() | {"speed": 1})
    with pytest.raises(ConfigError):
        VoiceConfig.from_dict({"voice": "en"})


def test_english_voices_come_from_the_engine():
    voices = list_english_voices()
    assert {"en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-us-nyc"} <= set(voices)
    assert all(v == "en" or v.startswith("en-") for v in voices)
    assert "en-shaw" not in voices  # a sample-exact duplicate of "en"


def test_variants_come_from_the_voice_data():
    variants = list_variants()
    expected = {f"m{i}" for i in range(1, 8)} | {f"f{i}" for i in range(1, 6)} | {"croak", "klatt", "whisper"}
    assert expected <= set(variants)
    assert len(variants) > 50
    assert "fast" not in variants and not any(" " in v for v in variants)


def test_voice_grid_is_deterministic_distinct_and_in_range():
    grid = voice_grid(3, 60)
    assert grid == voice_grid(3, 60)
    assert grid != voice_grid(4, 60)
    assert len(set(grid)) == 60
    assert set(c.voice for c in grid) == set(list_english_voices())  # voices are cycled
    assert len(set(c.variant for c in grid)) > 40
    assert all(120 <= c.rate_wpm <= 220 and 20 <= c.pitch <= 80 and 20 <= c.pitch_range <= 80 for c in grid)
    with pytest.raises(ConfigError):
        voice_grid(0, 0)


def test_synthesis_is_deterministic_whatever_was_spoken_before():
    # Whisper and Klatt voices draw noise; plain voices carry flutter and gain state between utterances in C statics.
    for cfg in (PLAIN, VoiceConfig("en", "whisper", 160, 50, 50), VoiceConfig("en-us", "klatt4", 180, 40, 60)):
        first, sr = synthesize("seven", cfg)
        synthesize("three", VoiceConfig("en-gb-x-rp", "croak", 130, 70, 20))
        again, sr2 = synthesize("seven", cfg)
        assert sr == sr2 == 22050
        assert first.tobytes() == again.tobytes()


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.key)
def test_every_digit_gives_plausible_trimmed_audio(cfg):
    for word in digit_words():
        wave, sr = synthesize(word, cfg)
        assert wave.dtype == np.float32 and wave.ndim == 1 and sr == 22050
        assert 0.2 <= wave.size / sr <= 1.5, (word, wave.size / sr)
        assert np.abs(wave).max() <= 1.0
        assert np.sqrt(np.mean(wave ** 2)) > 0.01  # not silent
        lead, trail = _leading_trailing_silence(wave)
        assert lead <= 221 and trail <= 221  # 10 ms kept at 22050 Hz


def test_different_voices_and_settings_give_different_waveforms():
    configs = [PLAIN, VoiceConfig("en-gb-x-rp", None, 175, 50, 50), VoiceConfig("en-us", "f2", 175, 50, 50),
               VoiceConfig("en-us", None, 140, 50, 50), VoiceConfig("en-us", None, 175, 75, 50),
               VoiceConfig("en-us", None, 175, 50, 90)]
    waves = [synthesize("four", c)[0] for c in configs]
    for i in range(len(waves)):
        for j in range(i + 1, len(waves)):
            assert waves[i].shape != waves[j].shape or not np.array_equal(waves[i], waves[j]), (i, j)


def test_slower_rate_gives_longer_words_and_higher_pitch_gives_higher_f0():
    for word in ("zero", "five", "nine"):
        slow = synthesize(word, VoiceConfig("en-us", None, 120, 50, 50))[0]
        fast = synthesize(word, VoiceConfig("en-us", None, 220, 50, 50))[0]
        assert slow.size > 1.3 * fast.size
    low, sr = synthesize("nine", VoiceConfig("en-us", None, 150, 20, 20))
    high, _ = synthesize("nine", VoiceConfig("en-us", None, 150, 80, 20))
    assert _f0_hz(high, sr) > 1.2 * _f0_hz(low, sr)


def test_unknown_voice_or_variant_is_a_config_error():
    with pytest.raises(ConfigError, match="en-us"):
        synthesize("one", VoiceConfig("fr", None, 150, 50, 50))
    with pytest.raises(ConfigError, match="variant"):
        synthesize("one", VoiceConfig("en", "nosuchvariant", 150, 50, 50))
    with pytest.raises(ConfigError):
        synthesize("  ", PLAIN)


def test_missing_library_is_a_dataset_error_that_says_what_to_install(monkeypatch, tmp_path):
    import espeakng_loader

    monkeypatch.setattr(tts, "_ENGINE", None)
    monkeypatch.setattr(espeakng_loader, "get_library_path", lambda: str(tmp_path / "libespeak-ng.so"))
    with pytest.raises(DatasetError, match="espeakng-loader"):
        tts._engine()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_synthesize_the_same_samples(method):
    expected = synthesize("eight", CONFIGS[1])[0]  # the parent has used the engine before forking
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context(method)) as pool:
        first = pool.submit(synthesize, "eight", CONFIGS[1]).result(timeout=60)[0]
        second = pool.submit(synthesize, "eight", CONFIGS[1]).result(timeout=60)[0]
    assert first.tobytes() == second.tobytes() == expected.tobytes()


def test_threads_share_the_engine_safely():
    jobs = [(w, c) for c in CONFIGS for w in ("one", "six")]
    expected = [synthesize(w, c)[0].tobytes() for w, c in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda job: synthesize(*job)[0].tobytes(), jobs))
    assert got == expected


def _leave_one_voice_out_accuracy(features: np.ndarray) -> float:
    """Nearest-centroid accuracy over (voices, 10 digits, D) features, each voice held out in turn."""
    correct = 0
    for v in range(features.shape[0]):
        centroids = np.delete(features, v, axis=0).mean(axis=0)  # (10, D)
        dist = ((features[v][:, None] - centroids[None]) ** 2).sum(-1)
        correct += int((dist.argmin(axis=1) == np.arange(10)).sum())
    return correct / features.shape[0] / 10


def test_digits_are_separable_across_voices_in_both_views():
    """Listening-free sanity check: a held-out voice's digits sit nearest their own digit's centroid."""
    waves = [[synthesize(w, c) for w in digit_words()] for c in voice_grid(11, 10)]
    spec = np.array([[log_spectrogram(x, sr, (32, 32)).ravel() for x, sr in row] for row in waves])
    coch = np.array([[np.log1p(cochlea_spikes(x, sr, 16)).ravel() for x, sr in row] for row in waves])
    assert _leave_one_voice_out_accuracy(spec) >= 0.6  # chance is 0.1
    assert _leave_one_voice_out_accuracy(coch) >= 0.7
