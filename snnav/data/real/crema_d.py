"""CREMA-D (6 emotions) for S-CMRL: one wav and one video frame per clip, OGM-GE train/test split.

Two on-disk layouts are accepted (``docs/scmrl.md`` §4.1, ``README.md`` in this folder):

* ``processed`` — what S-CMRL's ``split_cremad.py`` writes:
  ``processed_dataset/{train,test}/{audio,visual}/<CLS>/<clip>.{wav,jpg}``;
* ``csv`` — the OGM-GE split over the raw release: ``train.csv`` / ``test.csv`` (rows ``clip,CLS``, no header),
  ``AudioWAV/<clip>.wav`` and 1-fps frames ``<frames_dir>/<clip>/*.jpg``. One frame per clip is chosen with a
  generator seeded by ``(seed, clip)`` (the reference's choice is unseeded).

Class indices follow the sorted folder names: ANG 0, DIS 1, FEA 2, HAP 3, NEU 4, SAD 5.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np

from snnav.data.real.common import (
    AVSample,
    StaticAVDataset,
    check_image,
    check_split_args,
    check_wav,
    layout_error,
    list_files,
    require_dir,
    require_file,
    stable_int,
)
from snnav.errors import ConfigError

logger = logging.getLogger(__name__)

NAME = "CREMA-D"
CLASSES = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
SPLITS = ("train", "test")
DEFAULT_FRAMES_DIR = "Image-01-FPS"
LAYOUTS = ("auto", "processed", "csv")
#: Clips per class in the OGM-GE split (§4.1); a different count is logged, not rejected.
EXPECTED_COUNTS = {
    "train": {"ANG": 1166, "DIS": 1142, "FEA": 1138, "HAP": 1148, "NEU": 973, "SAD": 1131},
    "test": {"ANG": 105, "DIS": 129, "FEA": 133, "HAP": 123, "NEU": 114, "SAD": 140},
}
_CLASS_LIST = " ".join(CLASSES)


def detect_layout(root: str | os.PathLike, layout: str = "auto") -> str:
    """Return ``"processed"`` or ``"csv"``: ``layout`` itself, or for ``"auto"`` the one present under ``root``.

    Raises:
        ConfigError: ``layout`` is not one of ``auto``, ``processed``, ``csv``.
        DatasetError: ``root`` is missing, or (auto) neither layout is present.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"{NAME}: layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    root = Path(root)
    require_dir(NAME, root, "the CREMA-D root folder")
    if layout != "auto":
        return layout
    if (root / "processed_dataset").is_dir():
        return "processed"
    if (root / "train.csv").is_file() or (root / "test.csv").is_file():
        return "csv"
    raise layout_error(NAME, f"found neither {root / 'processed_dataset'} nor {root / 'train.csv'} (expected "
                             f"processed_dataset/{{train,test}}/{{audio,visual}}/<CLS>/ or the OGM-GE layout "
                             f"train.csv, test.csv, AudioWAV/, {DEFAULT_FRAMES_DIR}/)")


def scan_processed(root: Path, split: str) -> list[AVSample]:
    """Pairs of ``processed_dataset/<split>/audio/<CLS>/<clip>.wav`` and ``.../visual/<CLS>/<clip>.jpg``.

    Raises:
        DatasetError: a class folder is missing or empty, or a clip lacks its wav or its image.
    """
    base = root / "processed_dataset" / split
    samples: list[AVSample] = []
    for label, cls in enumerate(CLASSES):
        audio_dir, visual_dir = base / "audio" / cls, base / "visual" / cls
        for d in (audio_dir, visual_dir):
            require_dir(NAME, d, f"one folder per class: {_CLASS_LIST}")
        wavs = {p.stem: p for p in list_files(audio_dir, (".wav",))}
        jpgs = {p.stem: p for p in list_files(visual_dir, (".jpg", ".jpeg"))}
        if not wavs:
            raise layout_error(NAME, f"no .wav files in {audio_dir} (expected one <clip>.wav per clip)")
        for clip in sorted(set(wavs) | set(jpgs)):
            if clip not in jpgs:
                raise layout_error(NAME, f"missing {visual_dir / (clip + '.jpg')} (the frame of {wavs[clip]})")
            if clip not in wavs:
                raise layout_error(NAME, f"missing {audio_dir / (clip + '.wav')} (the audio of {jpgs[clip]})")
            samples.append(AVSample(wavs[clip], jpgs[clip], label))
    return samples


def read_split_csv(path: Path) -> list[tuple[str, str]]:
    """Rows ``(clip, CLS)`` of an OGM-GE split file (no header; an optional UTF-8 BOM is ignored).

    Raises:
        DatasetError: the file is missing, or a row does not have a clip name and a known class.
    """
    require_file(NAME, path, "the OGM-GE split file with rows clip,CLS")
    rows: list[tuple[str, str]] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < 2 or row[1].strip() not in CLASSES or not row[0].strip():
                raise layout_error(NAME, f"{path} line {line_no}: expected 'clip,CLS' with CLS in "
                                         f"{_CLASS_LIST}, found {','.join(row)!r}")
            rows.append((row[0].strip(), row[1].strip()))
    if not rows:
        raise layout_error(NAME, f"{path} has no rows (expected one 'clip,CLS' row per clip)")
    return rows


def choose_frame(frames: list[Path], clip: str, seed: int) -> Path:
    """The frame used for ``clip``: uniform over its sorted frames, seeded by ``(seed, clip)`` so the choice does
    not depend on the CSV order (deviation: the reference's ``random.choice`` is unseeded)."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, stable_int(clip)])
    return frames[int(rng.integers(len(frames)))]


def scan_csv(root: Path, split: str, frames_dir: str = DEFAULT_FRAMES_DIR, seed: int = 0) -> list[AVSample]:
    """Pairs for the OGM-GE split ``<split>.csv`` over ``AudioWAV/`` and ``<frames_dir>/<clip>/*.jpg``.

    Raises:
        DatasetError: a folder or the CSV is missing, or a CSV row's wav or frame folder is absent or empty.
    """
    audio_root, frames_root = root / "AudioWAV", root / frames_dir
    require_dir(NAME, audio_root, "AudioWAV/<clip>.wav from the CREMA-D release")
    require_dir(NAME, frames_root, f"{frames_dir}/<clip>/*.jpg frames extracted at 1 fps")
    csv_path = root / f"{split}.csv"
    samples: list[AVSample] = []
    for line_no, (clip, cls) in enumerate(read_split_csv(csv_path), start=1):
        wav = audio_root / f"{clip}.wav"
        if not wav.is_file():
            raise layout_error(NAME, f"missing {wav} (listed in {csv_path} row {line_no})")
        clip_frames = frames_root / clip
        if not clip_frames.is_dir():
            raise layout_error(NAME, f"missing {clip_frames} (the frames of {clip}, listed in {csv_path} "
                                     f"row {line_no})")
        frames = list_files(clip_frames, (".jpg", ".jpeg"))
        if not frames:
            raise layout_error(NAME, f"no .jpg frames in {clip_frames} (listed in {csv_path} row {line_no})")
        samples.append(AVSample(wav, choose_frame(frames, clip, seed), CLASSES.index(cls)))
    return samples


def scan(root: str | os.PathLike, split: str, layout: str = "auto", frames_dir: str = DEFAULT_FRAMES_DIR,
         seed: int = 0) -> list[AVSample]:
    """The samples of one split, from whichever layout ``layout`` names or ``"auto"`` finds."""
    root = Path(root)
    kind = detect_layout(root, layout)
    if kind == "processed":
        return scan_processed(root, split)
    return scan_csv(root, split, frames_dir, seed)


def check_layout(root: str | os.PathLike, layout: str = "auto", frames_dir: str = DEFAULT_FRAMES_DIR) -> None:
    """Check both splits: folders, pairing, CSV rows, and that every wav and image (in the csv layout: every
    frame) parses.

    Raises:
        DatasetError: one line naming the first missing or malformed path.
    """
    root = Path(root)
    kind = detect_layout(root, layout)
    for split in SPLITS:
        for sample in scan(root, split, kind, frames_dir):
            check_wav(sample.audio, NAME)
            frames = list_files(sample.visual.parent, (".jpg", ".jpeg")) if kind == "csv" else [sample.visual]
            for frame in frames:
                check_image(frame, NAME)


def _log_counts(samples: list[AVSample], split: str) -> None:
    counts = {cls: 0 for cls in CLASSES}
    for s in samples:
        counts[CLASSES[s.label]] += 1
    if counts != EXPECTED_COUNTS[split]:
        logger.info("%s %s: per-class counts %s differ from the OGM-GE split %s", NAME, split, counts,
                    EXPECTED_COUNTS[split])


class CremaD(StaticAVDataset):
    """CREMA-D as S-CMRL uses it: items ``(audio (T,1,size,size), visual (T,3,size,size), label)``.

    Args:
        root: folder holding ``processed_dataset/`` or ``train.csv``/``test.csv``/``AudioWAV``/``<frames_dir>``.
        split: ``"train"`` (RandomResizedCrop + flip) or ``"test"`` (Resize(2*size) + CenterCrop).
        time_steps: T, the time steps the static views are repeated over (4 in the paper).
        size: side of the square spectrogram and image (128 in the paper).
        seed: seeds the train augmentation and, in the csv layout, the frame chosen per clip.
        cache: HDF5 file (or folder) for the precomputed deterministic tensors; ``None`` computes on access.
        layout: ``"auto"``, ``"processed"`` or ``"csv"``.
        frames_dir: folder of the extracted frames in the csv layout.

    Raises:
        DatasetError: the layout is incomplete (see :func:`check_layout` for a full check, which also decodes
            every file; the constructor only lists files, so a corrupt file surfaces when it is loaded).
    """

    DATASET = NAME
    CLASSES = CLASSES

    def __init__(self, root: str | os.PathLike, split: str = "train", time_steps: int = 4, size: int = 128, seed: int = 0,
                 cache: str | os.PathLike | None = None, layout: str = "auto",
                 frames_dir: str = DEFAULT_FRAMES_DIR):
        check_split_args(NAME, split, time_steps, size)
        kind = detect_layout(root, layout)
        samples = scan(root, split, kind, frames_dir, seed)
        _log_counts(samples, split)
        self.layout = kind
        super().__init__(Path(root), samples, split, time_steps, size, seed, cache, {"layout": kind})

    check_layout = staticmethod(check_layout)
