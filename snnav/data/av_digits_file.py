"""The AV-Digits HDF5 file: writing it atomically, validating and reading it, and the torch ``Dataset`` over it.

Layout (format ``snnav.av-digits``, version 1)::

    /                      attrs: format, format_version, snnav_version, config (JSON), voices (JSON list)
    /<split>/label         (N,) int64          split in {train, test}
    /<split>/image_index   (N,) int32          index into scikit-learn's digits
    /<split>/voice_index   (N,) int32          index into the voices attribute
    /<split>/visual_static (N, H, W) uint8     intensities × 255
    /<split>/visual_events (N, T, 2, H, W) uint8   ON/OFF event counts per bin
    /<split>/audio_spectrogram (N, H, W) float32   natural-log linear STFT, frequency along H
    /<split>/audio_cochlea (N, T, 64) uint8    cochlea spike counts per bin and channel

A file made with some of the views only (``snnav data make av-digits --views``; ``snnav run`` stores the two its
training reads) lists them in the root attribute ``views`` (JSON); without it, a file holds all four. Each stored
view has the same bytes either way.
"""

from __future__ import annotations

import io
import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import h5py
import numpy as np

from snnav._version import __version__
from snnav.data.av_digits_config import (
    FORMAT_NAME,
    FORMAT_VERSION,
    SPLITS,
    VIEW_NAMES,
    AVDigitsConfig,
    SplitPlan,
    check_views,
    config_json,
    view_shapes,
)
from snnav.errors import DatasetError, SnnavError
from snnav.io import atomic_path

log = logging.getLogger(__name__)

AUDIO_VIEWS = ("spectrogram", "cochlea")
VISUAL_VIEWS = ("static", "events")
_MAKE_HINT = "make one with: snnav data make av-digits --out PATH.h5"
GZIP_LEVEL = 4  # every view: one chunk per sample, HDF5's byte shuffle, then deflate at this level


@dataclass(frozen=True)
class PackedView:
    """One sample's view as the file stores its chunk: HDF5's shuffle filter, then deflate (:func:`pack_view`).

    The generator's worker processes pack the views, so the process writing the file only copies bytes: compressing
    in the writer took about 12 s of its CPU for the default 6,000 pairs, beside two busy workers on two cores.
    """

    shape: tuple[int, ...]
    dtype: str
    data: bytes


def pack_view(view: np.ndarray, dtype: Any) -> PackedView:
    """``view`` as ``dtype`` (little-endian), filtered exactly as the dataset's filters would (shuffle: byte k of
    every element together, k = 0.. itemsize-1; then zlib at :data:`GZIP_LEVEL`): the file's bytes are the same as
    writing the array through h5py (tested)."""
    a = np.ascontiguousarray(view, dtype=np.dtype(dtype).newbyteorder("<"))
    raw = a.view(np.uint8).reshape(-1, a.dtype.itemsize).T.tobytes() if a.dtype.itemsize > 1 else a.tobytes()
    return PackedView(tuple(a.shape), a.dtype.str, zlib.compress(raw, GZIP_LEVEL))


def write_av_digits(out: str | Path, config: AVDigitsConfig, plans: Mapping[str, SplitPlan],
                    voices: list[dict[str, Any]], samples: Mapping[str, Iterable[dict[str, np.ndarray]]],
                    views: Iterable[str] | None = None) -> Path:
    """Write a complete file to a temporary name and rename it to ``out``; ``samples[split]`` yields in order and
    holds at least ``views`` (default all four)."""

    views = check_views(views)
    shapes = {name: shape for name, shape in view_shapes(config).items() if name in views}
    # The file is built in memory and written with one plain write: HDF5 never writes to the disk itself, so a full
    # disk is an ordinary OSError (HDF5 handles failing to flush onto a full disk end in a segmentation fault).
    image = io.BytesIO()
    # track_times=False everywhere and no creation timestamp: the same config gives the same bytes.
    with h5py.File(image, "w", libver="v108", track_order=False) as f:
        _fill(f, config, plans, voices, samples, shapes)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(image.getbuffer())
    return Path(out)


def _fill(f: h5py.File, config: AVDigitsConfig, plans: Mapping[str, SplitPlan], voices: list[dict[str, Any]],
          samples: Mapping[str, Iterable[dict[str, np.ndarray]]], shapes: Mapping[str, Any]) -> None:
    f.attrs["format"] = FORMAT_NAME
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["snnav_version"] = __version__
    f.attrs["config"] = config_json(config)
    f.attrs["voices"] = json.dumps(voices, sort_keys=True)
    if len(shapes) < len(VIEW_NAMES):  # a file of all four has no attribute: its bytes are those it always had
        f.attrs["views"] = json.dumps(list(shapes))
    for split in SPLITS:
        plan = plans[split]
        n = len(plan.labels)
        g = f.create_group(split, track_order=False)
        for name, values in (("label", plan.labels), ("image_index", plan.image_index),
                             ("voice_index", plan.voice_index)):
            g.create_dataset(name, data=values, track_times=False)
        views = {name: g.create_dataset(name, shape=(n, *shape), dtype=np.dtype(dtype).newbyteorder("<"),
                                        chunks=(1, *shape), compression="gzip", compression_opts=GZIP_LEVEL,
                                        shuffle=True, track_times=False)
                 for name, (shape, dtype) in shapes.items()}
        count = 0
        for i, sample in enumerate(samples[split]):
            for name, ds in views.items():
                value = sample[name]
                if isinstance(value, PackedView):  # already filtered by the worker: the chunk's bytes as stored
                    if value.shape != ds.shape[1:] or np.dtype(value.dtype) != ds.dtype:
                        raise DatasetError(f"AV-Digits {split}/{name} sample {i}: a packed view of shape "
                                           f"{value.shape} {value.dtype}, the file stores {ds.shape[1:]} {ds.dtype}")
                    ds.id.write_direct_chunk((i,) + (0,) * (ds.ndim - 1), value.data)
                else:
                    ds[i] = value
            count += 1
        if count != n:
            raise DatasetError(f"AV-Digits {split}: generated {count} samples, planned {n}")


@dataclass(frozen=True)
class AVDigitsInfo:
    """What an AV-Digits file says about itself."""

    path: Path
    config: AVDigitsConfig
    snnav_version: str
    counts: dict[str, int]
    voices: list[dict[str, Any]]
    views: tuple[str, ...] = VIEW_NAMES


def read_av_digits_info(path: str | Path) -> AVDigitsInfo:
    """Open and validate an AV-Digits file without loading its arrays.

    Raises:
        DatasetError: missing file, not HDF5 (or corrupt/truncated), not an AV-Digits file, a newer format version,
            or missing/malformed arrays. The message names the path and what to do.
    """

    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"AV-Digits file {p} does not exist; {_MAKE_HINT}")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise DatasetError(f"{p} is not a readable HDF5 file (corrupt or truncated?): {exc}; {_MAKE_HINT}") from exc
    with f:
        if f.attrs.get("format") != FORMAT_NAME:
            raise DatasetError(f"{p} is an HDF5 file but not an AV-Digits file (format attribute "
                               f"{f.attrs.get('format')!r}, expected {FORMAT_NAME!r}); {_MAKE_HINT}")
        version = int(f.attrs.get("format_version", -1))
        if version > FORMAT_VERSION:
            raise DatasetError(f"{p} has AV-Digits format version {version}, newer than this snnav reads "
                               f"({FORMAT_VERSION}); upgrade snnav or regenerate the file")
        try:
            config = AVDigitsConfig.from_dict(json.loads(f.attrs["config"]))
            voices = json.loads(f.attrs["voices"])
            views = check_views(json.loads(f.attrs["views"])) if "views" in f.attrs else VIEW_NAMES
        except (KeyError, ValueError, TypeError, SnnavError) as exc:
            raise DatasetError(f"{p}: the AV-Digits config attribute is missing or malformed ({exc}); "
                               f"{_MAKE_HINT}") from exc
        counts = {}
        for split in SPLITS:
            counts[split] = _check_split(f, p, split, config, views)
        return AVDigitsInfo(path=p, config=config, snnav_version=str(f.attrs.get("snnav_version", "?")),
                            counts=counts, voices=voices, views=views)


def _check_split(f, path: Path, split: str, config: AVDigitsConfig, views: tuple[str, ...] = VIEW_NAMES) -> int:
    if split not in f:
        raise DatasetError(f"{path}: the {split!r} group is missing; {_MAKE_HINT}")
    g = f[split]
    if "label" not in g:
        raise DatasetError(f"{path}: {split}/label is missing; {_MAKE_HINT}")
    n = g["label"].shape[0]
    for name, (shape, _) in view_shapes(config).items():
        if name not in views:
            continue
        if name not in g:
            raise DatasetError(f"{path}: {split}/{name} is missing; {_MAKE_HINT}")
        if g[name].shape != (n, *shape):
            raise DatasetError(f"{path}: {split}/{name} has shape {g[name].shape}, expected {(n, *shape)}")
    return n


def load_split_arrays(path: str | Path, split: str, names: Iterable[str]) -> dict[str, np.ndarray]:
    """Load whole arrays of one split into memory (validated first)."""

    if split not in SPLITS:
        raise DatasetError(f"unknown AV-Digits split {split!r}; choose one of {SPLITS}")
    info = read_av_digits_info(path)
    missing = [name for name in names if name in VIEW_NAMES and name not in info.views]
    if missing:
        raise DatasetError(f"{path} does not hold the {', '.join(missing)} view (it was made with "
                           f"{', '.join(info.views)} only); {_MAKE_HINT} (every view by default)")
    out = {}
    with h5py.File(path, "r") as f:
        for name in names:
            try:
                out[name] = f[split][name][()]
            except OSError as exc:  # a chunk that fails to decompress: the file is damaged
                raise DatasetError(f"{path}: {split}/{name} cannot be read ({exc}); regenerate the file") from exc
    return out
