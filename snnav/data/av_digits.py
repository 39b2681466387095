"""AV-Digits: the embedded default dataset, generated locally from data that ships inside packages.

Each sample pairs a handwritten digit image (scikit-learn's 1,797 real 8×8 digits, augmented and rendered to frames)
with an utterance of the same digit's name synthesized by eSpeak NG in one of many voice configurations. It is made in
the spirit of MNISTDVS-NTIDIGITS (S-CMRL's third dataset): two views per modality are stored,

* visual: ``static`` frames (repeated over T by the model) and ``events``, an event-camera view of the digit moved in
  saccades (``T × 2 × H × W`` ON/OFF counts, :mod:`snnav.data.dvs`);
* audio: ``spectrogram``, S-CMRL's natural-log linear STFT resized to the frame size, and ``cochlea``, an
  N-TIDIGITS-like 64-channel spike view (``T × 64`` counts, :mod:`snnav.data.audio_views`).

Splits are disjoint in both sources: no image and no voice configuration appears in both train and test. Per-modality
noise (audio SNR, pixel noise, occlusion) is part of the configuration and is baked into the file.

Generation is deterministic for a configuration: every random draw of sample ``i`` of split ``s`` comes from a
generator seeded with ``(seed, s, i)``, so the file's bytes do not depend on the number of worker processes.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from snnav.records import Record
from snnav.errors import ConfigError

log = logging.getLogger(__name__)

FORMAT_NAME = "snnav.av-digits"
FORMAT_VERSION = 1
SPLITS = ("train", "test")
NUM_CLASSES = 10
COCHLEA_CHANNELS = 64


@dataclass(frozen=True)
class AVDigitsConfig(Record):
    """Everything that determines an AV-Digits file.

    Attributes:
        seed: master seed of every random draw.
        n_train, n_test: number of audio-visual pairs per split (labels balanced over the 10 digits).
        frame_size: side H = W of every frame, for both modalities.
        n_steps: T of the event views (DVS bins and cochlea bins).
        n_voices: voice configurations drawn from eSpeak NG's English voices × variants × rates × pitches.
        test_voice_frac, test_image_frac: fractions of voice configurations and of images held out for test.
        audio_snr_db: white-noise SNR of the utterances in dB; ``None`` = clean.
        pixel_noise_std: Gaussian pixel noise of the static frames (intensities in [0, 1]).
        occlusion_frac: area of a random occluding rectangle, both visual views.
        max_pad_s: random silence (0..max_pad_s seconds) added before and after each utterance.
        augment: geometry/intensity augmentation of the rendered digits (:class:`AugmentConfig` fields).
        dvs: event-camera emulation parameters (:class:`DVSConfig` fields).
    """

    seed: int = 0
    n_train: int = 5000
    n_test: int = 1000
    frame_size: int = 64
    n_steps: int = 8
    n_voices: int = 100
    test_voice_frac: float = 0.2
    test_image_frac: float = 0.2
    audio_snr_db: float | None = 0.0
    pixel_noise_std: float = 0.15
    occlusion_frac: float = 0.15
    max_pad_s: float = 0.15
    augment: dict[str, Any] = field(default_factory=dict)
    dvs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(self.n_train >= NUM_CLASSES and self.n_test >= NUM_CLASSES, "n_train and n_test", ">= 10",
                 (self.n_train, self.n_test))
        _require(self.frame_size >= 8, "frame_size", ">= 8 pixels", self.frame_size)
        _require(self.n_steps >= 1, "n_steps", ">= 1", self.n_steps)
        _require(self.n_voices >= 2, "n_voices", ">= 2", self.n_voices)
        _require(0 < self.test_voice_frac < 1 and 0 < self.test_image_frac < 1, "test_voice_frac/test_image_frac",
                 "in (0, 1)", (self.test_voice_frac, self.test_image_frac))
        _require(self.pixel_noise_std >= 0 and 0 <= self.occlusion_frac < 1, "pixel_noise_std/occlusion_frac",
                 ">= 0 and in [0, 1)", (self.pixel_noise_std, self.occlusion_frac))
        _require(self.max_pad_s >= 0, "max_pad_s", ">= 0", self.max_pad_s)
        # Validate the nested configurations now, not in a worker halfway through generation.
        self.augment_config()
        self.dvs_config()

    def augment_config(self):
        from snnav.data.digits_visual import AugmentConfig

        return AugmentConfig.from_dict(self.augment) if self.augment else AugmentConfig()

    def dvs_config(self):
        from snnav.data.dvs import DVSConfig

        return DVSConfig.from_dict(self.dvs) if self.dvs else DVSConfig()



def _require(ok: bool, name: str, expected: str, found: Any) -> None:
    if not ok:
        raise ConfigError(f"AV-Digits {name} must be {expected}, got {found!r}")


# ---------------------------------------------------------------------------------------------------------------
# The plan: which image, voice and label each sample gets (cheap, done in the parent process).


@dataclass(frozen=True)
class SplitPlan:
    """Per-sample choices of one split: label, source image index and voice configuration index."""

    labels: np.ndarray  # (N,) int64
    image_index: np.ndarray  # (N,) int32, into scikit-learn's digits
    voice_index: np.ndarray  # (N,) int32, into the file's voice table


def plan_splits(config: AVDigitsConfig, image_labels: np.ndarray) -> dict[str, SplitPlan]:
    """Choose disjoint image and voice pools per split and assign every sample its label, image and voice."""
    rng = np.random.default_rng([config.seed, 1000])
    # Images: held out per class so every digit has test images.
    test_images, train_images = [], []
    for c in range(NUM_CLASSES):
        idx = rng.permutation(np.flatnonzero(image_labels == c))
        n_test = max(1, int(round(len(idx) * config.test_image_frac)))
        test_images.append(idx[:n_test])
        train_images.append(idx[n_test:])
    voices = rng.permutation(config.n_voices)
    n_test_voices = max(1, int(round(config.n_voices * config.test_voice_frac)))
    pools = {"train": (train_images, voices[n_test_voices:]), "test": (test_images, voices[:n_test_voices])}
    plans = {}
    for split_id, split in enumerate(SPLITS):
        n = config.n_train if split == "train" else config.n_test
        split_rng = np.random.default_rng([config.seed, 2000 + split_id])
        labels = split_rng.permutation(np.resize(np.arange(NUM_CLASSES), n)).astype(np.int64)
        images_by_class, voice_pool = pools[split]
        image_index = np.empty(n, dtype=np.int32)
        for c in range(NUM_CLASSES):
            where = np.flatnonzero(labels == c)
            pool = split_rng.permutation(images_by_class[c])
            image_index[where] = np.resize(pool, len(where))  # each image used as evenly as possible
        voice_index = split_rng.choice(voice_pool, size=n).astype(np.int32)
        plans[split] = SplitPlan(labels=labels, image_index=image_index, voice_index=voice_index)
    return plans


# ---------------------------------------------------------------------------------------------------------------
# Work done in worker processes (module-level functions, so they pickle under "spawn").


def _synthesize(task: tuple[str, dict[str, Any]]) -> tuple[np.ndarray, int]:
    from snnav.data.tts import VoiceConfig, synthesize

    word, voice = task
    return synthesize(word, VoiceConfig.from_dict(voice))


@dataclass(frozen=True)
class _SampleTask:
    config: AVDigitsConfig
    split_id: int
    index: int
    image8: np.ndarray
    wave: np.ndarray
    sample_rate: int


def _make_sample(task: _SampleTask) -> dict[str, np.ndarray]:
    """All four views of one sample; every random draw comes from ``(seed, split, index)``."""
    from snnav.data.audio_views import add_noise_snr, cochlea_spikes, log_spectrogram
    from snnav.data.digits_visual import corrupt_frame, render_frame
    from snnav.data.dvs import dvs_view

    cfg = task.config
    rng = np.random.default_rng([cfg.seed, 3000 + task.split_id, task.index])
    size = cfg.frame_size
    frame = render_frame(task.image8, size, rng, cfg.augment_config())
    occluded = corrupt_frame(frame, rng, 0.0, cfg.occlusion_frac)
    static = corrupt_frame(occluded, rng, cfg.pixel_noise_std, 0.0)
    events = dvs_view(occluded, cfg.n_steps, cfg.dvs_config(), rng)

    pad = rng.uniform(0.0, cfg.max_pad_s, size=2)
    pad_n = (pad * task.sample_rate).astype(int)
    wave = np.concatenate([np.zeros(pad_n[0], np.float32), task.wave, np.zeros(pad_n[1], np.float32)])
    wave = add_noise_snr(wave, cfg.audio_snr_db, rng)
    return {
        "visual_static": np.round(static * 255.0).astype(np.uint8),
        "visual_events": events.astype(np.uint8),
        "audio_spectrogram": log_spectrogram(wave, task.sample_rate, out_hw=(size, size)).astype(np.float32),
        "audio_cochlea": cochlea_spikes(wave, task.sample_rate, cfg.n_steps, n_channels=COCHLEA_CHANNELS),
    }


def view_shapes(config: AVDigitsConfig) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Per-sample shape and dtype of every stored view."""
    s, t = config.frame_size, config.n_steps
    return {
        "visual_static": ((s, s), np.uint8),
        "visual_events": ((t, 2, s, s), np.uint8),
        "audio_spectrogram": ((s, s), np.float32),
        "audio_cochlea": ((t, COCHLEA_CHANNELS), np.uint8),
    }


# ---------------------------------------------------------------------------------------------------------------
# The driver.


def _map(fn: Callable, items: Iterable, workers: int, chunksize: int) -> Iterator:
    """Ordered map, in-process for ``workers <= 1`` (results are identical either way)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    # "spawn": the parent may hold torch/OpenMP threads, which do not survive fork reliably.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(fn, items, chunksize=chunksize)


@dataclass(frozen=True)
class GenerationReport:
    """What :func:`generate_av_digits` made: path, sample counts and seconds spent per phase."""

    path: Path
    counts: dict[str, int]
    n_utterances: int
    seconds_tts: float
    seconds_samples: float

    @property
    def seconds_total(self) -> float:
        return self.seconds_tts + self.seconds_samples


def generate_av_digits(out: str | Path, config: AVDigitsConfig | None = None, workers: int = 2,
                       progress: Callable[[str, int, int], None] | None = None) -> GenerationReport:
    """Generate AV-Digits into the HDF5 file ``out`` (written atomically: an existing file survives any failure).

    Args:
        out: destination ``.h5`` path.
        config: the dataset configuration (defaults to :class:`AVDigitsConfig`).
        workers: worker processes (``<= 1`` runs in this process; the bytes are the same).
        progress: called as ``progress(phase, done, total)`` while working (``phase`` is "tts", "train" or "test").
    """
    from snnav.data.av_digits_file import write_av_digits
    from snnav.data.digits_visual import load_digit_images
    from snnav.data.tts import digit_words, voice_grid

    config = config or AVDigitsConfig()
    progress = progress or (lambda phase, done, total: None)
    images, image_labels = load_digit_images()
    voices = voice_grid(config.seed, config.n_voices)
    plans = plan_splits(config, image_labels)

    t0 = time.perf_counter()
    words = digit_words()
    needed = sorted({(int(lbl), int(v)) for plan in plans.values() for lbl, v in zip(plan.labels, plan.voice_index)})
    tasks = [(words[lbl], voices[v].to_dict()) for lbl, v in needed]
    utterances = {}
    for i, (key, result) in enumerate(zip(needed, _map(_synthesize, tasks, workers, chunksize=8)), 1):
        utterances[key] = result
        progress("tts", i, len(needed))
    seconds_tts = time.perf_counter() - t0
    log.info("synthesized %d utterances in %.1f s", len(needed), seconds_tts)

    t1 = time.perf_counter()

    def samples(split_id: int, plan: SplitPlan) -> Iterator[dict[str, np.ndarray]]:
        split_tasks = (
            _SampleTask(config, split_id, i, images[plan.image_index[i]],
                        *utterances[(int(plan.labels[i]), int(plan.voice_index[i]))])
            for i in range(len(plan.labels))
        )
        for i, sample in enumerate(_map(_make_sample, split_tasks, workers, chunksize=16), 1):
            progress(SPLITS[split_id], i, len(plan.labels))
            yield sample

    path = write_av_digits(out, config, plans, [v.to_dict() for v in voices],
                           {split: samples(i, plans[split]) for i, split in enumerate(SPLITS)})
    seconds_samples = time.perf_counter() - t1
    return GenerationReport(path=Path(path), counts={s: len(p.labels) for s, p in plans.items()},
                            n_utterances=len(needed), seconds_tts=seconds_tts, seconds_samples=seconds_samples)


def config_json(config: AVDigitsConfig) -> str:
    """The canonical JSON of a configuration (sorted keys), as stored in the file."""
    return json.dumps(config.to_dict(), sort_keys=True)
