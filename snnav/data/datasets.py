"""Torch datasets: AV-Digits from its HDF5 file, and one entry point for every dataset snnav knows.

Every dataset returns ``(audio, visual, label)`` with time-first float32 tensors ``audio [T, C, H, W]`` and
``visual [T, C, H, W]``; a ``DataLoader`` batches them to ``[B, T, C, H, W]`` and :func:`time_first` turns a batch into
the ``[T, B, C, H, W]`` layout the models take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from snnav.data.audio_views import fold_cochlea
from snnav.data.av_digits_file import AUDIO_VIEWS, VISUAL_VIEWS, load_split_arrays, read_av_digits_info
from snnav.data.real import open_real_dataset
from snnav.errors import DatasetError


class AVDigits(Dataset):
    """AV-Digits pairs from a file made by ``snnav data make av-digits``.

    Args:
        path: the ``.h5`` file.
        split: ``"train"`` or ``"test"``.
        audio_view: ``"spectrogram"`` (static, repeated over T, 1 channel) or ``"cochlea"`` (T bins, the 64 channels
            folded to 8×8 and upsampled to the frame size as S-CMRL does for N-TIDIGITS, 1 channel).
        visual_view: ``"static"`` (repeated over T, 1 channel, intensities in [0, 1]) or ``"events"`` (T bins of
            ON/OFF counts, 2 channels).
        time_steps: T. Static views are repeated T times; event views need T to divide the stored number of bins (bins are
            summed in groups). ``None`` = the stored number of bins.
        size: frame side H = W given to the model; must divide the stored frame size. Frames are pooled in
            ``k × k`` blocks: averaged for intensities and spectrograms, summed for event counts (so no event is
            lost). ``None`` = the stored size.

    The whole split is loaded into memory once (a few hundred MB at the default size), so training is not I/O-bound.
    """

    def __init__(self, path: str | Path, split: str = "train", audio_view: str = "spectrogram",
                 visual_view: str = "static", time_steps: int | None = None, size: int | None = None) -> None:
        if audio_view not in AUDIO_VIEWS:
            raise DatasetError(f"unknown AV-Digits audio view {audio_view!r}; choose one of {AUDIO_VIEWS}")
        if visual_view not in VISUAL_VIEWS:
            raise DatasetError(f"unknown AV-Digits visual view {visual_view!r}; choose one of {VISUAL_VIEWS}")
        self.info = read_av_digits_info(path)
        stored = self.info.config.time_steps
        self.time_steps = stored if time_steps is None else int(time_steps)
        uses_bins = audio_view == "cochlea" or visual_view == "events"
        if self.time_steps < 1 or (uses_bins and stored % self.time_steps != 0):
            raise DatasetError(f"time_steps={time_steps} must divide the file's {stored} event bins for the "
                               f"{audio_view}/{visual_view} views; use one of "
                               f"{[d for d in range(1, stored + 1) if stored % d == 0]}")
        self.split, self.audio_view, self.visual_view = split, audio_view, visual_view
        arrays = load_split_arrays(path, split, ["label", f"audio_{audio_view}", f"visual_{visual_view}"])
        self.labels = torch.from_numpy(arrays["label"].astype(np.int64))
        self._audio = arrays[f"audio_{audio_view}"]
        self._visual = arrays[f"visual_{visual_view}"]
        for view, values in ((f"audio_{audio_view}", self._audio), (f"visual_{visual_view}", self._visual)):
            _check_finite(path, split, view, values)
        stored_size = self.info.config.frame_size
        self.frame_size = stored_size if size is None else int(size)
        if self.frame_size < 1 or stored_size % self.frame_size != 0:
            raise DatasetError(f"size={size} must divide the file's frame size {stored_size}; use one of "
                               f"{[d for d in range(1, stored_size + 1) if stored_size % d == 0]}")
        self._pool = stored_size // self.frame_size

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def channels(self) -> dict[str, int]:
        """Input channels per modality, for building a model."""
        return {"audio": 1, "visual": 2 if self.visual_view == "events" else 1}

    def _rebin(self, x: np.ndarray) -> np.ndarray:
        stored = x.shape[0]
        return x.reshape(self.time_steps, stored // self.time_steps, *x.shape[1:]).sum(axis=1)  # (T, ...)

    def _pooled(self, x: np.ndarray, reduce: str) -> np.ndarray:
        """Pool the last two axes in ``k × k`` blocks (k = stored size // size)."""
        k = self._pool
        if k == 1:
            return x
        h, w = x.shape[-2] // k, x.shape[-1] // k
        blocks = x.reshape(*x.shape[:-2], h, k, w, k)  # (..., h, k, w, k)
        return blocks.mean(axis=(-3, -1)) if reduce == "mean" else blocks.sum(axis=(-3, -1))

    def _audio_item(self, i: int) -> torch.Tensor:
        if self.audio_view == "spectrogram":
            frame = torch.from_numpy(self._pooled(self._audio[i], "mean"))  # (H, W)
            return frame[None, None].expand(self.time_steps, 1, *frame.shape).clone()  # (T, 1, H, W)

        counts = self._rebin(self._audio[i].astype(np.float32))  # (T, 64)
        return torch.from_numpy(fold_cochlea(counts, (self.frame_size, self.frame_size)))  # (T, 1, H, W)

    def _visual_item(self, i: int) -> torch.Tensor:
        if self.visual_view == "static":
            frame = torch.from_numpy(self._pooled(self._visual[i].astype(np.float32) / 255.0, "mean"))  # (H, W)
            return frame[None, None].expand(self.time_steps, 1, *frame.shape).clone()  # (T, 1, H, W)
        return torch.from_numpy(self._pooled(self._rebin(self._visual[i].astype(np.float32)), "sum"))  # (T, 2, H, W)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self._audio_item(i), self._visual_item(i), int(self.labels[i])


def _check_finite(path: str | Path, split: str, view: str, values: np.ndarray) -> None:
    """Refuse NaN or infinite values in a float view, naming the file, split, view and first sample index."""
    if not np.issubdtype(values.dtype, np.floating):
        return
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        first = int(np.argmax(bad))
        raise DatasetError(f"{path}: {split}/{view} holds NaN or infinite values in {int(bad.sum())} sample(s), the "
                           f"first at sample index {first}; regenerate the file (snnav data make ... --force)")


def time_first(batch: torch.Tensor) -> torch.Tensor:
    """``[B, T, ...]`` (as a DataLoader stacks items) to ``[T, B, ...]``."""
    return batch.transpose(0, 1).contiguous()


DATASETS = ("av-digits", "crema-d", "urbansound8k-av", "mnistdvs-ntidigits")


def open_dataset(name: str, path: str | Path, split: str, **options: Any) -> Dataset:
    """Open any dataset snnav knows by name: ``av-digits`` (a file) or a real dataset (its root folder)."""
    if name == "av-digits":
        return AVDigits(path, split, **options)
    if name in DATASETS:

        return open_real_dataset(name, path, split, **options)
    raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
