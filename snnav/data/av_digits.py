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

import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from snnav.data.audio_views import add_noise_snr, cochlea_spikes_batch, log_spectrogram
from snnav.data.av_digits_config import (
    COCHLEA_CHANNELS,
    SPLITS,
    VIEW_NAMES,
    AVDigitsConfig,
    SplitPlan,
    check_views,
    plan_splits,
    view_shapes,
)
from snnav.data.av_digits_file import pack_view, write_av_digits
from snnav.data.digits_visual import corrupt_frame, load_digit_images, render_frame
from snnav.data.dvs import dvs_view
from snnav.data.tts import VoiceConfig, digit_words, synthesize, voice_grid

log = logging.getLogger(__name__)

# Samples per worker task: their cochlea views are computed together (two waveforms share each band-pass call).
_BATCH = 8

def _synthesize(task: tuple[str, dict[str, Any]]) -> tuple[np.ndarray, int]:

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
    views: tuple[str, ...] = VIEW_NAMES


def _make_samples(tasks: tuple[_SampleTask, ...]) -> list[dict[str, np.ndarray]]:
    """The views of a few samples (``task.views``); every random draw of sample ``i`` comes from ``(seed, split, i)``.

    The cochlea views of the batch are computed together (:func:`cochlea_spikes_batch`, the same bytes as one at a
    time); everything else is per sample. A view left out is not returned; the event camera still runs (its random
    draws come before the audio's, which must not move), the cochlea (draw-free, three quarters of the work) does not,
    so every view returned has the bytes it has in a file of all four.
    """
    samples, waves = [], []
    for task in tasks:
        cfg = task.config
        rng = np.random.default_rng([cfg.seed, 3000 + task.split_id, task.index])
        size = cfg.frame_size
        frame = render_frame(task.image8, size, rng, cfg.augment_config())
        occluded = corrupt_frame(frame, rng, 0.0, cfg.occlusion_frac)
        static = corrupt_frame(occluded, rng, cfg.pixel_noise_std, 0.0)
        events = dvs_view(occluded, cfg.time_steps, cfg.dvs_config(), rng)

        pad = rng.uniform(0.0, cfg.max_pad_s, size=2)
        pad_n = (pad * task.sample_rate).astype(int)
        wave = np.concatenate([np.zeros(pad_n[0], np.float32), task.wave, np.zeros(pad_n[1], np.float32)])
        wave = add_noise_snr(wave, cfg.audio_snr_db, rng)
        waves.append(wave)
        sample = {"visual_static": np.round(static * 255.0).astype(np.uint8), "visual_events": events.astype(np.uint8)}
        if "audio_spectrogram" in task.views:
            sample["audio_spectrogram"] = log_spectrogram(wave, task.sample_rate, out_hw=(size, size)).astype(np.float32)
        samples.append({name: view for name, view in sample.items() if name in task.views})
    by_rate: dict[tuple[int, int], list[int]] = {}
    for i, task in enumerate(tasks):
        if "audio_cochlea" in task.views:
            by_rate.setdefault((task.sample_rate, task.config.time_steps), []).append(i)
    for (rate, steps), members in by_rate.items():
        views = cochlea_spikes_batch([waves[i] for i in members], rate, steps, n_channels=COCHLEA_CHANNELS)
        for i, view in zip(members, views):
            samples[i]["audio_cochlea"] = view
    return samples


def _make_packed_samples(tasks: tuple[_SampleTask, ...]) -> list[dict[str, Any]]:
    """:func:`_make_samples`, each view packed as the file stores it (`pack_view`): the compression runs in the
    workers, in parallel, instead of in the process that writes the file."""
    shapes = view_shapes(tasks[0].config)  # _batches yields non-empty batches
    return [{name: pack_view(view, shapes[name][1]) for name, view in sample.items()} for sample in _make_samples(tasks)]


def _batches(items: Iterable, size: int) -> Iterator[tuple]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield tuple(batch)
            batch = []
    if batch:
        yield tuple(batch)


@contextmanager
def _pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """One pool of worker processes for the whole generation (each worker imports scipy & co. once), or None."""
    if workers <= 1:
        yield None
        return
    # "spawn": the parent may hold torch/OpenMP threads, which do not survive fork reliably.
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool
    finally:  # after a failure, drop the work not started yet instead of finishing it
        pool.shutdown(wait=True, cancel_futures=True)


def _map(fn: Callable, items: Iterable, pool: ProcessPoolExecutor | None, chunksize: int) -> Iterator:
    """Ordered map, in this process without a pool (results are identical either way)."""
    if pool is None:
        yield from map(fn, items)
        return
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
                       progress: Callable[[str, int, int], None] | None = None,
                       views: Iterable[str] | None = None) -> GenerationReport:
    """Generate AV-Digits into the HDF5 file ``out`` (written atomically: an existing file survives any failure).

    Args:
        out: destination ``.h5`` path.
        config: the dataset configuration (defaults to :class:`AVDigitsConfig`).
        workers: worker processes (``<= 1`` runs in this process; the bytes are the same).
        progress: called as ``progress(phase, done, total)`` while working (``phase`` is "tts", "train" or "test").
        views: the views to store (names of ``VIEW_NAMES``; default all four). Each stored view has the same bytes as
            in a file of all four; leaving out ``audio_cochlea`` saves about three quarters of the work.

    Raises:
        ConfigError: an unknown view name.
    """

    config = config or AVDigitsConfig()
    views = check_views(views)
    progress = progress or (lambda phase, done, total: None)
    images, image_labels = load_digit_images()
    voices = voice_grid(config.seed, config.n_voices)
    plans = plan_splits(config, image_labels)

    with _pool(workers) as pool:  # one pool for speech and samples: each worker starts (and imports) once
        t0 = time.perf_counter()
        words = digit_words()
        needed = sorted({(int(lbl), int(v)) for plan in plans.values() for lbl, v in zip(plan.labels, plan.voice_index)})
        tasks = [(words[lbl], voices[v].to_dict()) for lbl, v in needed]
        utterances = {}
        for i, (key, result) in enumerate(zip(needed, _map(_synthesize, tasks, pool, chunksize=8)), 1):
            utterances[key] = result
            progress("tts", i, len(needed))
        seconds_tts = time.perf_counter() - t0
        log.info("synthesized %d utterances in %.1f s", len(needed), seconds_tts)

        t1 = time.perf_counter()

        def samples(split_id: int, plan: SplitPlan) -> Iterator[dict[str, np.ndarray]]:
            split_tasks = (
                _SampleTask(config, split_id, i, images[plan.image_index[i]],
                            *utterances[(int(plan.labels[i]), int(plan.voice_index[i]))], views)
                for i in range(len(plan.labels))
            )
            batches = _map(_make_packed_samples, _batches(split_tasks, _BATCH), pool, chunksize=2)
            for i, sample in enumerate((sample for batch in batches for sample in batch), 1):
                progress(SPLITS[split_id], i, len(plan.labels))
                yield sample

        path = write_av_digits(out, config, plans, [v.to_dict() for v in voices],
                               {split: samples(i, plans[split]) for i, split in enumerate(SPLITS)}, views)
        seconds_samples = time.perf_counter() - t1
    return GenerationReport(path=Path(path), counts={s: len(p.labels) for s, p in plans.items()},
                            n_utterances=len(needed), seconds_tts=seconds_tts, seconds_samples=seconds_samples)
