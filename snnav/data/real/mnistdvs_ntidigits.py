"""MNISTDVS-NTIDIGITS for S-CMRL: an MNIST-DVS recording paired with a spoken N-TIDIGITS digit of the same class.

Inputs (``docs/scmrl.md`` §4.3, ``README.md`` in this folder):

* MNIST-DVS: ``<mnist_dvs_dir>/grabbed_data<d>/scale<s>/*.aedat`` (jAER ``#!AER-DAT2.0``, or ``1.0``), 128x128 DVS;
* N-TIDIGITS: ``<ntidigits_file>`` = ``n-tidigits.hdf5`` with ``{train,test}_labels`` (byte strings such as
  ``b"man-ae-a-1"``), ``{train,test}_addresses/<label>`` (cochlea channel 0..63) and
  ``{train,test}_timestamps/<label>`` (seconds).

Items are ``(audio (T, 1, 28, 28), visual (T, 2, 28, 28), label)``:

* visual: events mapped from 128 to 28 pixels by ``x28 = (x - o) * 28 // crop`` (``o`` centres an optional square
  crop, default the whole sensor), binned into ``T`` equal time bins, channel 0 = ON, 1 = OFF; train only:
  ``RandomCrop(28, padding=4)``; then ``Normalize(0.1307, 0.3081)``;
* audio: spike counts ``(T, 1, 64)`` in ``T`` equal time bins, reshaped to ``(T, 1, 8, 8)`` (channel ``c`` at row
  ``c // 8``, column ``c % 8``) and bilinearly resized to 28x28;
* split: per digit, the name-sorted recordings of one scale are shuffled with ``random.Random(seed)`` and the
  first ``n_per_split`` (500) are train, the next ``n_per_split`` test; N-TIDIGITS single digits ('z' is 0; 'o'
  and multi-digit strings are skipped and counted) of the same split are tiled to ``n_per_split`` per digit
  (item ``j`` of a class takes audio ``j mod n_audio``), and item ``j`` of digit ``c`` pairs visual ``j`` with
  audio ``j mod n_audio``; items are ordered digit by digit.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any, BinaryIO

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from snnav.data.audio_views import fold_cochlea
from snnav.data.real.common import FeatureCache, file_manifest, item_rng, layout_error, require_dir, require_file
from snnav.errors import ConfigError, DatasetError

logger = logging.getLogger(__name__)

NAME = "MNISTDVS-NTIDIGITS"
CLASSES = tuple(str(d) for d in range(10))
SCALES = (4, 8, 16)
SENSOR_PX = 128
N_CHANNELS = 64
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
NTIDIGITS_FILE = "n-tidigits.hdf5"
_SPECIAL_BITS = 0x8000 | 0x80000000  # jAER DVS128: sync / external events, not pixels
_MAX_HEADER_LINE = 1 << 16
_EVENT_DTYPES = {b"1.0": np.dtype([("addr", ">u2"), ("t", ">u4")]),
                 b"2.0": np.dtype([("addr", ">u4"), ("t", ">u4")])}


# ---------------------------------------------------------------------------------------------------------------
# MNIST-DVS: AEDAT files


def _aedat_header(f: BinaryIO, path: Path) -> tuple[np.dtype, int]:
    """The event dtype and the offset of the first event, reading header lines from ``f`` (at offset 0).

    Header lines start with '#' and are text; the first is ``#!AER-DAT<version>``; an ``#!END-HEADER`` line, when
    present, ends the header. A '#' line that is not text is the first event (its first byte happens to be 0x23,
    possible with 16-bit addresses).
    """
    first = f.readline(_MAX_HEADER_LINE)
    if not first.startswith(b"#!AER-DAT"):
        raise layout_error(NAME, f"cannot parse {path}: it does not start with the jAER header '#!AER-DAT2.0'")
    dtype = _EVENT_DTYPES.get(first.strip()[len(b"#!AER-DAT"):])
    if dtype is None or not first.endswith(b"\n"):
        raise layout_error(NAME, f"cannot parse {path}: unsupported version line {first.strip()[:40]!r} "
                                 f"(expected #!AER-DAT2.0 or #!AER-DAT1.0)")
    pos = len(first)
    while True:
        line = f.readline(_MAX_HEADER_LINE)
        if not line.startswith(b"#") or not line.endswith(b"\n") or not _is_text(line.rstrip(b"\r\n")):
            return dtype, pos
        pos += len(line)
        if line.startswith(b"#!END-HEADER"):
            return dtype, pos


def _is_text(line: bytes) -> bool:
    """Header lines are printable ASCII (and tabs); binary events almost never are."""
    return all(32 <= b < 127 or b == 9 for b in line)


def _payload_error(path: Path, payload: int, dtype: np.dtype) -> DatasetError:
    return layout_error(NAME, f"cannot parse {path}: {payload} bytes of events is not a multiple of "
                              f"{dtype.itemsize} (truncated or not AEDAT)")


def read_aedat(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read a DVS128 jAER recording: ``(t_us int64, x, y, polarity)`` with x, y in 0..127 and polarity 0 = ON,
    1 = OFF (the address bit as stored; jAER reads 0 as ON). Addresses are big-endian with x in bits 1-7, y in
    bits 8-14 and the polarity in bit 0; sync/external events (bit 15 or 31) are dropped. x is not mirrored
    (jAER's viewer shows ``127 - x``).

    Raises:
        DatasetError: the file is unreadable, lacks the header, or its payload is not a whole number of events.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            dtype, start = _aedat_header(f, path)
            f.seek(start)
            data = f.read()
    except OSError as exc:
        raise layout_error(NAME, f"cannot read {path} ({exc.strerror})") from exc
    if len(data) % dtype.itemsize:
        raise _payload_error(path, len(data), dtype)
    events = np.frombuffer(data, dtype=dtype)
    addr = events["addr"].astype(np.int64)
    keep = (addr & _SPECIAL_BITS) == 0
    addr = addr[keep]
    return (events["t"][keep].astype(np.int64), (addr >> 1) & 0x7F, (addr >> 8) & 0x7F, addr & 1)


def check_aedat(path: Path) -> None:
    """Check the header and the payload size of an AEDAT file without reading its events."""
    try:
        with open(path, "rb") as f:
            dtype, start = _aedat_header(f, path)
        size = path.stat().st_size
    except OSError as exc:
        raise layout_error(NAME, f"cannot read {path} ({exc.strerror})") from exc
    if (size - start) % dtype.itemsize:
        raise _payload_error(path, size - start, dtype)


def time_bins(t: np.ndarray, steps: int) -> np.ndarray:
    """Bin index in ``0..steps-1`` of each time stamp: ``steps`` equal bins spanning ``[min t, max t]`` (the last
    event goes into the last bin; tonic's ``ToFrame(n_time_bins)`` drops it). One distinct time -> bin 0."""
    if t.size == 0:
        return np.zeros(0, dtype=np.int64)
    t = t.astype(np.float64)
    t0, span = t.min(), t.max() - t.min()
    if span <= 0:
        return np.zeros(t.shape, dtype=np.int64)
    return np.minimum(np.floor((t - t0) * steps / span).astype(np.int64), steps - 1)


def dvs_frames(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray, steps: int, size: int = 28,
               crop: int = SENSOR_PX) -> np.ndarray:
    """Event counts ``(steps, 2, size, size)`` float32 of a 128x128 recording.

    Time bins span the whole recording; then only events inside the centred ``crop`` x ``crop`` window are kept
    and pixel ``x`` maps to ``(x - o) * size // crop`` with ``o = (128 - crop) // 2`` (``size``/``crop`` of a
    source pixel per output pixel: each output pixel sums about (crop/size)^2 sensor pixels).
    """
    bins = time_bins(t, steps)
    off = (SENSOR_PX - crop) // 2
    keep = (x >= off) & (x < off + crop) & (y >= off) & (y < off + crop)
    xs = (x[keep] - off) * size // crop
    ys = (y[keep] - off) * size // crop
    flat = ((bins[keep] * 2 + p[keep]) * size + ys) * size + xs
    counts = np.bincount(flat, minlength=steps * 2 * size * size)
    return counts.reshape(steps, 2, size, size).astype(np.float32)


def random_crop_padded(frames: torch.Tensor, rng: np.random.Generator, padding: int = 4) -> torch.Tensor:
    """``RandomCrop(H, padding)``: zero-pad the last two axes and crop back at one random offset for all frames."""
    h, w = frames.shape[-2:]
    padded = F.pad(frames, (padding, padding, padding, padding))
    top, left = int(rng.integers(0, 2 * padding + 1)), int(rng.integers(0, 2 * padding + 1))
    return padded[..., top:top + h, left:left + w].contiguous()


def mnist_dvs_files(folder: str | os.PathLike, scale: int) -> list[list[Path]]:
    """The recordings ``grabbed_data<d>/scale<scale>/*.aedat`` per digit, sorted by name.

    Raises:
        DatasetError: a digit or scale folder is missing or holds no ``.aedat`` file.
    """
    folder = Path(folder)
    require_dir(NAME, folder, "the MNIST-DVS folder holding grabbed_data0 ... grabbed_data9")
    out = []
    for digit in range(10):
        d = folder / f"grabbed_data{digit}" / f"scale{scale}"
        require_dir(NAME, d, f"grabbed_data<digit>/scale{scale}/*.aedat for each digit 0-9")
        files = sorted((p for p in d.iterdir() if p.is_file() and p.suffix.lower() == ".aedat"),
                       key=lambda p: p.name)
        if not files:
            raise layout_error(NAME, f"no .aedat files in {d}")
        out.append(files)
    return out


def split_visual(files: list[list[Path]], split: str, n_per_split: int, seed: int) -> list[list[Path]]:
    """Per digit: shuffle with one ``random.Random(seed)`` (digits in order), train = first ``n_per_split``,
    test = the next ``n_per_split``.

    Raises:
        DatasetError: a digit has fewer than ``2 * n_per_split`` recordings.
    """
    rng = random.Random(seed)
    out = []
    for digit, group in enumerate(files):
        if len(group) < 2 * n_per_split:
            raise layout_error(NAME, f"{group[0].parent} has {len(group)} recordings, expected at least "
                                     f"{2 * n_per_split} for {n_per_split} train + {n_per_split} test "
                                     f"(pass a smaller n_per_split)")
        shuffled = list(group)
        rng.shuffle(shuffled)
        out.append(shuffled[:n_per_split] if split == "train" else shuffled[n_per_split:2 * n_per_split])
    return out


# ---------------------------------------------------------------------------------------------------------------
# N-TIDIGITS: one HDF5 file


def parse_digit_label(key: str) -> int | str:
    """The class of an N-TIDIGITS label such as ``"man-ae-a-1"`` (the part after the last '-'): 'z' -> 0,
    '1'-'9' -> the digit; ``"oh"`` for 'o' and ``"multi_digit"`` for longer strings (both skipped).

    Raises:
        DatasetError: the digit part is empty or not a TIDIGITS symbol.
    """
    digits = key.rsplit("-", 1)[-1]
    if len(digits) > 1:
        return "multi_digit"
    if digits == "o":
        return "oh"
    if digits == "z":
        return 0
    if len(digits) == 1 and digits in "123456789":
        return int(digits)
    raise layout_error(NAME, f"cannot parse the N-TIDIGITS label {key!r} (expected '<...>-<digit>' with a digit "
                             f"in 1-9, z, o)")


def _open_h5(path: Path) -> Any:

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise layout_error(NAME, f"cannot open {path} as HDF5 ({exc})") from exc


def index_ntidigits(path: str | os.PathLike, split: str) -> tuple[list[list[str]], dict[str, int]]:
    """The single-digit recordings of one split per class (in file order) and the skip counts.

    Raises:
        DatasetError: the file, a group or a recording is missing, or a class has no recording.
    """
    path = Path(path)
    require_file(NAME, path, f"{NTIDIGITS_FILE} from the N-TIDIGITS release")
    per_class: list[list[str]] = [[] for _ in range(10)]
    skipped = {"oh": 0, "multi_digit": 0}
    with _open_h5(path) as f:
        for group in (f"{split}_labels", f"{split}_addresses", f"{split}_timestamps"):
            if group not in f:
                raise layout_error(NAME, f"{path} has no '{group}' (expected {split}_labels, {split}_addresses/"
                                         f"<label>, {split}_timestamps/<label>)")
        addresses, stamps = f[f"{split}_addresses"], f[f"{split}_timestamps"]
        for raw in f[f"{split}_labels"][()]:
            key = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            cls = parse_digit_label(key)
            if isinstance(cls, str):
                skipped[cls] += 1
                continue
            for group, name in ((addresses, "addresses"), (stamps, "timestamps")):
                if key not in group:
                    raise layout_error(NAME, f"{path} lists {key!r} in {split}_labels but has no "
                                             f"{split}_{name}/{key}")
            per_class[cls].append(key)
    for digit, keys in enumerate(per_class):
        if not keys:
            raise layout_error(NAME, f"{path} has no single-digit '{CLASSES[digit] if digit else 'z'}' recording "
                                     f"in the {split} split")
    logger.info("%s %s: skipped %d 'o' and %d multi-digit N-TIDIGITS recordings", NAME, split, skipped["oh"],
                skipped["multi_digit"])
    return per_class, skipped


def read_ntidigits(f: Any, split: str, key: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(t_s float64, channel int64)`` of one recording from an open file.

    Raises:
        DatasetError: the arrays are not 1-D of equal length or a channel is outside 0..63.
    """
    t = np.asarray(f[f"{split}_timestamps"][key][()], dtype=np.float64)
    ch = np.asarray(f[f"{split}_addresses"][key][()])
    if t.ndim != 1 or ch.shape != t.shape:
        raise layout_error(NAME, f"{path}: {split}_timestamps/{key} {t.shape} and {split}_addresses/{key} "
                                 f"{ch.shape} must be 1-D of equal length")
    ch = ch.astype(np.int64)
    if ch.size and (ch.min() < 0 or ch.max() >= N_CHANNELS):
        raise layout_error(NAME, f"{path}: {split}_addresses/{key} has channels outside 0..{N_CHANNELS - 1}")
    return t, ch


def cochlea_frames(t: np.ndarray, ch: np.ndarray, steps: int) -> np.ndarray:
    """Spike counts ``(steps, 1, 64)`` float32 in ``steps`` equal time bins."""
    flat = time_bins(t, steps) * N_CHANNELS + ch
    return np.bincount(flat, minlength=steps * N_CHANNELS).reshape(steps, 1, N_CHANNELS).astype(np.float32)


def cochlea_image(frames: torch.Tensor, size: int = 28) -> torch.Tensor:
    """``(T, 1, 64)`` -> ``(T, 1, 8, 8)`` (channel c at row c // 8, column c % 8) -> bilinear ``(T, 1, size, size)``
    (``F.interpolate(align_corners=False)`` semantics), via :func:`snnav.data.audio_views.fold_cochlea`."""

    counts = frames.reshape(frames.shape[0], N_CHANNELS).numpy()  # (T, 64)
    return torch.from_numpy(fold_cochlea(counts, (size, size)))


# ---------------------------------------------------------------------------------------------------------------
# layout check and the dataset


def _paths(root: str | os.PathLike, mnist_dvs_dir: str | os.PathLike | None,
           ntidigits_file: str | os.PathLike | None) -> tuple[Path, Path]:
    root = Path(root)
    require_dir(NAME, root, "the dataset root folder")
    return (Path(mnist_dvs_dir) if mnist_dvs_dir is not None else root,
            Path(ntidigits_file) if ntidigits_file is not None else root / NTIDIGITS_FILE)


def check_layout(root: str | os.PathLike, scale: int = 4, mnist_dvs_dir: str | os.PathLike | None = None,
                 ntidigits_file: str | os.PathLike | None = None) -> None:
    """Check the MNIST-DVS folders of one scale (every AEDAT header and payload size) and the N-TIDIGITS file
    (groups, labels, and every single-digit recording's arrays).

    Raises:
        DatasetError: one line naming the first missing or malformed path.
    """
    if scale not in SCALES:
        raise ConfigError(f"{NAME}: scale must be one of {SCALES}, got {scale!r}")
    dvs_dir, h5_path = _paths(root, mnist_dvs_dir, ntidigits_file)
    for group in mnist_dvs_files(dvs_dir, scale):
        for path in group:
            check_aedat(path)
    for split in ("train", "test"):
        per_class, _ = index_ntidigits(h5_path, split)
        with _open_h5(h5_path) as f:
            for keys in per_class:
                for key in keys:
                    read_ntidigits(f, split, key, h5_path)


class MnistDvsNTidigits(Dataset):
    """MNIST-DVS digits paired with N-TIDIGITS spoken digits: items ``(audio (T,1,size,size),
    visual (T,2,size,size), label)``, ``n_per_split`` items per digit, ordered digit by digit.

    Args:
        root: folder holding ``grabbed_data0..9/`` and ``n-tidigits.hdf5`` (override either below).
        split: ``"train"`` (visual RandomCrop(size, padding=4)) or ``"test"``.
        time_steps: T, the number of time bins (16 in the paper's table; the reference script uses 64).
        seed: seeds the per-digit shuffle of the MNIST-DVS recordings and the train crops.
        cache: HDF5 file (or folder) for the binned frames before augmentation; ``None`` bins on access.
        scale: MNIST-DVS recording scale, 4, 8 or 16 (the reference does not say which).
        n_per_split: items per digit and split (500 in the paper).
        sensor_crop: side of the centred sensor window mapped to ``size`` pixels (128: the whole sensor).
        size: side of the output frames (28).
        mnist_dvs_dir: folder of ``grabbed_data<d>`` if not ``root``.
        ntidigits_file: the N-TIDIGITS HDF5 file if not ``root/n-tidigits.hdf5``.

    Attributes:
        skipped: N-TIDIGITS recordings left out of this split: ``{"oh": n, "multi_digit": m}``.
    """

    DATASET = NAME
    CLASSES = CLASSES

    def __init__(self, root: str | os.PathLike, split: str = "train", time_steps: int = 16, seed: int = 42,
                 cache: str | os.PathLike | None = None, scale: int = 4, n_per_split: int = 500,
                 sensor_crop: int = SENSOR_PX, size: int = 28, mnist_dvs_dir: str | os.PathLike | None = None,
                 ntidigits_file: str | os.PathLike | None = None):
        self._check_args(split, time_steps, scale, n_per_split, sensor_crop, size)
        self.root, self.split, self.time_steps, self.seed = Path(root), split, int(time_steps), int(seed)
        self.scale, self.n_per_split, self.sensor_crop, self.size = scale, int(n_per_split), int(sensor_crop), int(size)
        self.epoch = 0
        dvs_dir, self.ntidigits_file = _paths(root, mnist_dvs_dir, ntidigits_file)
        self.visual_files = split_visual(mnist_dvs_files(dvs_dir, scale), split, self.n_per_split, self.seed)
        self.audio_keys, self.skipped = index_ntidigits(self.ntidigits_file, split)
        self._h5: Any = None
        self._h5_pid: int | None = None
        self._cache: FeatureCache | None = None
        if cache is not None:
            config = {"dataset": NAME, "split": split, "time_steps": self.time_steps, "size": self.size, "crop": self.sensor_crop,
                      "n_per_split": self.n_per_split,
                      "visual": file_manifest(dvs_dir, [p for g in self.visual_files for p in g]),
                      "audio": self.audio_keys, "ntidigits_bytes": self.ntidigits_file.stat().st_size}
            self._cache = FeatureCache.open_or_build(cache, f"mnistdvs-ntidigits-{split}", config, len(self),
                                                     self._frames)

    @staticmethod
    def _check_args(split: str, steps: int, scale: int, n_per_split: int, crop: int, size: int) -> None:
        if split not in ("train", "test"):
            raise ConfigError(f"{NAME}: split must be 'train' or 'test', got {split!r}")
        if scale not in SCALES:
            raise ConfigError(f"{NAME}: scale must be one of {SCALES}, got {scale!r}")
        if int(steps) < 1 or int(n_per_split) < 1 or int(size) < 1 or not 1 <= int(crop) <= SENSOR_PX:
            raise ConfigError(f"{NAME}: T, n_per_split and size must be positive and sensor_crop in 1..128, got "
                              f"time_steps={steps!r}, n_per_split={n_per_split!r}, size={size!r}, sensor_crop={crop!r}")

    check_layout = staticmethod(check_layout)

    @property
    def num_classes(self) -> int:
        """Number of classes (10)."""
        return len(CLASSES)

    @property
    def labels(self) -> list[int]:
        """The class index of every item, in item order."""
        return [i // self.n_per_split for i in range(len(self))]

    def set_epoch(self, epoch: int) -> None:
        """Select the train crop draw (the reference freezes one crop per pair for the whole run, §4.3)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return 10 * self.n_per_split

    def pair(self, index: int) -> tuple[Path, str, int]:
        """``(MNIST-DVS file, N-TIDIGITS label key, class)`` of item ``index``."""
        digit, j = divmod(index, self.n_per_split)
        keys = self.audio_keys[digit]
        return self.visual_files[digit][j], keys[j % len(keys)], digit

    def _file(self) -> Any:
        if self._h5 is None or self._h5_pid != os.getpid():
            self._h5 = _open_h5(self.ntidigits_file)
            self._h5_pid = os.getpid()
        return self._h5

    def _frames(self, index: int) -> dict[str, np.ndarray]:
        dvs_path, key, _ = self.pair(index)
        t, x, y, p = read_aedat(dvs_path)
        visual = dvs_frames(t, x, y, p, self.time_steps, self.size, self.sensor_crop)
        audio = cochlea_frames(*read_ntidigits(self._file(), self.split, key, self.ntidigits_file), self.time_steps)
        return {"visual": visual, "audio": audio}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{NAME}: index {index} out of range for {n} items")
        index %= n
        feats = self._cache.get(index) if self._cache is not None else self._frames(index)
        visual = torch.as_tensor(np.asarray(feats["visual"], dtype=np.float32))  # (T, 2, size, size)
        if self.split == "train":
            visual = random_crop_padded(visual, item_rng(self.seed, self.epoch, index))
        visual = (visual - MNIST_MEAN) / MNIST_STD
        audio = cochlea_image(torch.as_tensor(np.asarray(feats["audio"], dtype=np.float32)), self.size)
        return audio, visual, index // self.n_per_split

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_h5"], state["_h5_pid"] = None, None  # each DataLoader worker opens its own handle
        return state
