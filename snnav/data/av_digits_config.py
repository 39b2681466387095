"""AV-Digits configuration: the generator's frozen config, the split plan and the view shapes (no generation, no
file I/O: :mod:`snnav.data.av_digits` generates, :mod:`snnav.data.av_digits_file` reads and writes)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from snnav.data.digits_visual import AugmentConfig
from snnav.data.dvs import DVSConfig
from snnav.errors import ConfigError
from snnav.records import Record

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
        time_steps: T of the event views (DVS bins and cochlea bins).
        n_voices: voice configurations drawn from eSpeak NG's English voices × variants × rates × pitches.
        test_voice_frac, test_image_frac: fractions of voice configurations and of images held out for test.
        audio_snr_db: white-noise SNR of the utterances in dB; ``None`` = clean.
        pixel_noise_std: Gaussian pixel noise of the static frames (intensities in [0, 1]).
        occlusion_frac: area of a random occluding rectangle, both visual views.
        max_pad_s: random silence (0..max_pad_s seconds) added before and after each utterance.
        augment: geometry/intensity augmentation of the rendered digits (:class:`AugmentConfig` fields).
        dvs: event-camera emulation parameters (:class:`DVSConfig` fields).
    """

    RENAMED_KEYS: ClassVar[dict[str, str]] = {"n_steps": "time_steps"}  # files written before 0.2 say n_steps

    seed: int = 0
    n_train: int = 5000
    n_test: int = 1000
    frame_size: int = 64
    time_steps: int = 8
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
        _require(self.time_steps >= 1, "time_steps", ">= 1", self.time_steps)
        _require(self.n_voices >= 2, "n_voices", ">= 2", self.n_voices)
        _require(0 < self.test_voice_frac < 1 and 0 < self.test_image_frac < 1, "test_voice_frac/test_image_frac",
                 "in (0, 1)", (self.test_voice_frac, self.test_image_frac))
        _require(math.isfinite(self.pixel_noise_std) and self.pixel_noise_std >= 0 and 0 <= self.occlusion_frac < 1,
                 "pixel_noise_std/occlusion_frac", "finite, >= 0 and in [0, 1)",
                 (self.pixel_noise_std, self.occlusion_frac))
        _require(math.isfinite(self.max_pad_s) and self.max_pad_s >= 0, "max_pad_s", "a finite number >= 0",
                 self.max_pad_s)
        _require(self.audio_snr_db is None or math.isfinite(self.audio_snr_db), "audio_snr_db (--audio-snr-db)",
                 "a finite number of dB (or inf / null for clean audio)", self.audio_snr_db)
        # Validate the nested configurations now, not in a worker halfway through generation.
        self.augment_config()
        self.dvs_config()

    def augment_config(self):

        return AugmentConfig.from_dict(self.augment) if self.augment else AugmentConfig()

    def dvs_config(self):

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


VIEW_NAMES = ("visual_static", "visual_events", "audio_spectrogram", "audio_cochlea")
"""Every view a file can store (a file made with a subset says which in its ``views`` attribute)."""


def check_views(views) -> tuple[str, ...]:
    """``views`` (names of `VIEW_NAMES`, None = all) as a tuple in `VIEW_NAMES` order; `ConfigError` for an unknown
    name or an empty choice."""
    if views is None:
        return VIEW_NAMES
    views = tuple(dict.fromkeys(str(v) for v in views))
    unknown = [v for v in views if v not in VIEW_NAMES]
    if unknown or not views:
        raise ConfigError(f"AV-Digits views must be some of {', '.join(VIEW_NAMES)}; got {', '.join(views) or 'none'}")
    return tuple(v for v in VIEW_NAMES if v in views)


def view_shapes(config: AVDigitsConfig) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Per-sample shape and dtype of every stored view."""
    s, t = config.frame_size, config.time_steps
    return {
        "visual_static": ((s, s), np.uint8),
        "visual_events": ((t, 2, s, s), np.uint8),
        "audio_spectrogram": ((s, s), np.float32),
        "audio_cochlea": ((t, COCHLEA_CHANNELS), np.uint8),
    }


# ---------------------------------------------------------------------------------------------------------------
# The driver.


def config_json(config: AVDigitsConfig) -> str:
    """The canonical JSON of a configuration (sorted keys), as stored in the file."""
    return json.dumps(config.to_dict(), sort_keys=True)
