"""Shared pieces of the real-dataset loaders: file reading, image transforms, per-item RNG, error messages.

The image transforms reimplement the torchvision ones the S-CMRL reference uses (``RandomResizedCrop``,
``RandomHorizontalFlip``, ``Resize``, ``CenterCrop``, ``ToTensor``, ``Normalize``; see ``docs/scmrl.md`` §4.1)
with PIL, numpy and torch, because torchvision is not a dependency of snnav. The parameter sampling follows
torchvision's documented algorithm, but the random numbers come from a numpy ``Generator`` seeded per item
(:func:`item_rng`), so the same ``(seed, epoch, index)`` always gives the same crop, in any DataLoader worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import h5py
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from scipy.io import wavfile
from torch.utils.data import Dataset

from snnav.data.audio_views import log_spectrogram
from snnav.errors import ConfigError, DatasetError
from snnav.io import atomic_path

logger = logging.getLogger(__name__)

README_HINT = "see snnav/data/real/README.md"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def layout_error(dataset: str, message: str) -> DatasetError:
    """Build the one-line :class:`DatasetError` every loader raises: ``"<dataset>: <message>; see README"``."""
    return DatasetError(f"{dataset}: {message}; {README_HINT}")


def require_dir(dataset: str, path: Path, expected: str) -> None:
    """Raise a :class:`DatasetError` naming ``path`` unless it is a folder; ``expected`` says what it should hold."""
    if path.is_dir():
        return
    if path.exists():
        raise layout_error(dataset, f"{path} is not a folder (expected {expected})")
    raise layout_error(dataset, f"missing {path} (expected {expected})")


def require_file(dataset: str, path: Path, expected: str) -> None:
    """Raise a :class:`DatasetError` naming ``path`` unless it is a regular file."""
    if not path.is_file():
        raise layout_error(dataset, f"missing {path} (expected {expected})")


@dataclass(frozen=True)
class AVSample:
    """One audio-visual pair on disk: a wav, an image, and the class index."""

    audio: Path
    visual: Path
    label: int


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """A generator that depends only on ``(seed, epoch, index)``: the same item gets the same augmentation in
    every process, and a fresh one each epoch (``Dataset.set_epoch``)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF, int(index) & 0xFFFFFFFF])


def stable_int(text: str) -> int:
    """A 32-bit integer derived from ``text`` that, unlike ``hash()``, does not change between processes."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "little")


# ---------------------------------------------------------------------------------------------------------------
# reading files


def read_wav(path: Path, dataset: str) -> tuple[np.ndarray, int]:
    """Read a wav as float32 mono in [-1, 1] and its sample rate.

    Integer PCM is scaled by its full range (what ``torchaudio.load(normalize=True)`` does); scipy returns
    24-bit PCM left-justified in int32, so dividing by 2^31 is right for it too. Multi-channel audio is averaged
    to mono (``docs/scmrl.md`` §4.2 note: the reference would crash on stereo).

    Raises:
        DatasetError: the file cannot be read as a wav or holds no samples.
    """

    try:
        with warnings.catch_warnings():
            # Chunks scipy does not know (LIST, bext, ...) are legal; its warning about them is noise here.
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, data = wavfile.read(path)
    except Exception as exc:  # scipy raises several types (even UnboundLocalError) on malformed files
        raise layout_error(dataset, f"cannot read the wav {path} ({exc}); re-extract or remove it") from exc
    wave = _pcm_to_float(np.asarray(data))
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    if wave.size == 0:
        raise layout_error(dataset, f"the wav {path} holds no samples; re-extract or remove it")
    return np.ascontiguousarray(wave, dtype=np.float32), int(rate)


def _pcm_to_float(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if data.dtype == np.int16:
        return data.astype(np.float32) / 32768.0
    if data.dtype == np.int32:
        return (data.astype(np.float64) / 2147483648.0).astype(np.float32)
    if data.dtype == np.int64:
        return (data.astype(np.float64) / 9223372036854775808.0).astype(np.float32)
    return data.astype(np.float32)


def check_wav(path: Path, dataset: str) -> None:
    """Check that ``path`` parses as a wav with at least one sample (memory-mapped: reads the header only)."""

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            _, data = wavfile.read(path, mmap=True)
        n = int(data.shape[0])
        del data
    except Exception as exc:  # see read_wav
        raise layout_error(dataset, f"cannot read the wav {path} ({exc}); re-extract or remove it") from exc
    if n == 0:
        raise layout_error(dataset, f"the wav {path} holds no samples; re-extract or remove it")


def load_rgb(path: Path, dataset: str) -> Image.Image:
    """Decode an image fully and convert it to RGB (grey-scale frames are replicated to three channels).

    Raises:
        DatasetError: the file is not an image PIL can decode (including truncated files).
    """
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise layout_error(dataset, f"cannot decode the image {path} ({exc}); re-extract or remove it") from exc


def check_image(path: Path, dataset: str) -> None:
    """Check that ``path`` is an image whose header PIL recognises and whose data passes ``verify()``."""
    try:
        with Image.open(path) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise layout_error(dataset, f"cannot decode the image {path} ({exc}); re-extract or remove it") from exc


def list_files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """The files in ``folder`` whose suffix (case-insensitive) is in ``suffixes``, sorted by name."""
    wanted = tuple(s.lower() for s in suffixes)
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in wanted), key=lambda p: p.name)


# ---------------------------------------------------------------------------------------------------------------
# audio


def spectrogram_image(wave: np.ndarray, sample_rate: int, size: int) -> torch.Tensor:
    """The S-CMRL audio view, ``(1, size, size)`` float32: a natural-log linear STFT resized to a square
    (``docs/scmrl.md`` §4.1), computed by :func:`snnav.data.audio_views.log_spectrogram`."""

    spec = np.asarray(log_spectrogram(wave, sample_rate, out_hw=(size, size)), dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(spec)).reshape(1, size, size)


# ---------------------------------------------------------------------------------------------------------------
# image transforms (torchvision semantics, own implementation)


def random_resized_crop_box(width: int, height: int, rng: np.random.Generator,
                            scale: tuple[float, float] = (0.08, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """Sample the crop ``(top, left, h, w)`` of ``RandomResizedCrop``: up to 10 tries at a random area fraction in
    ``scale`` and a log-uniform aspect ratio in ``ratio``; if none fits, the largest central crop whose aspect
    ratio is clamped into ``ratio``."""
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def resize_short_side(img: Image.Image, short: int) -> Image.Image:
    """``Resize(short)``: scale so the short side is ``short``; the long side is truncated like torchvision's."""
    width, height = img.size
    if width <= height:
        new_w, new_h = short, int(short * height / width)
    else:
        new_w, new_h = int(short * width / height), short
    return img.resize((new_w, new_h), Image.BILINEAR)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """``CenterCrop(size)`` for an image at least ``size`` on each side (offsets rounded like torchvision)."""
    width, height = img.size
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def to_normalized_tensor(img: Image.Image) -> torch.Tensor:
    """``ToTensor`` then ImageNet ``Normalize``: ``(3, H, W)`` float32."""
    arr = np.asarray(img, dtype=np.float32) / 255.0  # (H, W, 3)
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    arr = (arr - mean) / std
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))  # (3, H, W)


def train_visual(img: Image.Image, size: int, rng: np.random.Generator) -> torch.Tensor:
    """Training view (§4.1): ``RandomResizedCrop(size)`` (bilinear), ``RandomHorizontalFlip``, normalise."""
    top, left, h, w = random_resized_crop_box(img.width, img.height, rng)
    out = img.crop((left, top, left + w, top + h)).resize((size, size), Image.BILINEAR)
    if rng.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return to_normalized_tensor(out)


def test_visual(img: Image.Image, size: int) -> torch.Tensor:
    """Evaluation view (§4.1): ``Resize(2 * size)`` on the short side, ``CenterCrop(size)``, normalise.

    The reference hard-codes ``Resize(256)`` with ``CenterCrop(128)``; ``2 * size`` keeps that ratio for other sizes.
    """
    return to_normalized_tensor(center_crop(resize_short_side(img, 2 * size), size))


def repeat_time(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Repeat a static ``(C, H, W)`` view over time: ``(T, C, H, W)`` (a copy, so callers may edit it)."""
    return x.unsqueeze(0).repeat(steps, 1, 1, 1)


# ---------------------------------------------------------------------------------------------------------------
# HDF5 cache of deterministic per-item tensors

CACHE_FORMAT_VERSION = 1


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``config``: the cache key (any change of a value gives a new key)."""
    blob = json.dumps({"cache_format": CACHE_FORMAT_VERSION, **config}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def file_manifest(root: Path, paths: Sequence[Path]) -> list[list[Any]]:
    """``[relative path, size in bytes]`` for each file: part of a cache config, so replacing or resizing a
    source file invalidates the cache (modification times are left out: copying a dataset changes them)."""
    out: list[list[Any]] = []
    for p in paths:
        try:
            rel = str(p.relative_to(root))
        except ValueError:
            rel = str(p)
        out.append([rel, p.stat().st_size])
    return out


class FeatureCache:
    """Per-item numpy arrays in one HDF5 file, keyed by a config hash.

    The file holds one dataset per field, shape ``(n_items, *item_shape)``, chunked one item per chunk, and the
    attributes ``config_hash``, ``config_json``, ``n_items`` and ``format_version``. A file whose hash differs
    is rebuilt (written to a temporary name with :func:`snnav.io.atomic_path`, so a failed build leaves the old
    file untouched). The read handle is opened lazily per process, so the object can go to DataLoader workers.
    """

    def __init__(self, path: Path, digest: str, n_items: int):
        self.path = Path(path)
        self.digest = digest
        self.n_items = n_items
        self._file: Any = None
        self._pid: int | None = None

    @staticmethod
    def resolve(cache: str | os.PathLike, name: str, digest: str) -> Path:
        """The cache file: ``cache`` itself, or ``<cache>/<name>-<hash[:12]>.h5`` when ``cache`` is a folder."""
        path = Path(cache)
        return path / f"{name}-{digest[:12]}.h5" if path.is_dir() else path

    @classmethod
    def open_or_build(cls, cache: str | os.PathLike, name: str, config: Mapping[str, Any], n_items: int,
                      compute: Callable[[int], Mapping[str, np.ndarray]]) -> "FeatureCache":
        """Open the cache for ``config`` if it is valid, otherwise compute every item and write it.

        Args:
            cache: a file path, or an existing folder (the file name is then derived from ``name`` and the hash).
            name: short name used in the derived file name and in log lines.
            config: everything the cached arrays depend on (hashed).
            n_items: number of items.
            compute: item index -> ``{field: array}``; every item must give the same fields, shapes and dtypes.
        """
        digest = config_hash(config)
        path = cls.resolve(cache, name, digest)
        if cls._is_valid(path, digest, n_items):
            logger.info("%s: using the cache %s", name, path)
            return cls(path, digest, n_items)
        logger.info("%s: building the cache %s (%d items)", name, path, n_items)

        with atomic_path(path) as tmp:
            cls._write(tmp, digest, config, n_items, compute)
        return cls(path, digest, n_items)

    @staticmethod
    def _is_valid(path: Path, digest: str, n_items: int) -> bool:

        if not path.is_file():
            return False
        try:
            with h5py.File(path, "r") as f:
                ok = (f.attrs.get("config_hash") == digest and int(f.attrs.get("n_items", -1)) == n_items
                      and int(f.attrs.get("format_version", -1)) == CACHE_FORMAT_VERSION)
        except OSError as exc:
            logger.warning("the cache %s cannot be read (%s); rebuilding it", path, exc)
            return False
        if not ok:
            logger.info("the cache %s was built for another configuration; rebuilding it", path)
        return ok

    @staticmethod
    def _write(tmp: Path, digest: str, config: Mapping[str, Any], n_items: int,
               compute: Callable[[int], Mapping[str, np.ndarray]]) -> None:

        with h5py.File(tmp, "w") as f:
            f.attrs["config_hash"] = digest
            f.attrs["config_json"] = json.dumps(config, sort_keys=True, default=str)
            f.attrs["n_items"] = n_items
            f.attrs["format_version"] = CACHE_FORMAT_VERSION
            for i in range(n_items):
                item = {k: np.asarray(v) for k, v in compute(i).items()}
                if i == 0:
                    for key, arr in item.items():
                        f.create_dataset(key, shape=(n_items, *arr.shape), dtype=arr.dtype,
                                         chunks=(1, *arr.shape), compression="lzf")
                for key, arr in item.items():
                    f[key][i] = arr

    def get(self, index: int) -> dict[str, np.ndarray]:
        """The arrays stored for item ``index``."""

        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return {key: self._file[key][index] for key in self._file.keys()}

    def close(self) -> None:
        """Close the read handle (it reopens on the next :meth:`get`)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, None  # h5py handles do not pickle; each worker opens its own
        return state


# ---------------------------------------------------------------------------------------------------------------
# the static audio-visual datasets (CREMA-D, UrbanSound8K-AV)


def check_split_args(dataset: str, split: str, steps: int, size: int) -> None:
    """Reject an unknown split or non-positive ``T``/``size`` with a :class:`ConfigError`."""
    if split not in ("train", "test"):
        raise ConfigError(f"{dataset}: split must be 'train' or 'test', got {split!r}")
    if int(steps) < 1 or int(size) < 1:
        raise ConfigError(f"{dataset}: T and size must be positive integers, got time_steps={steps!r}, size={size!r}")


class StaticAVDataset(Dataset):
    """A list of (wav, image, label) pairs served as the S-CMRL static views repeated over ``T``.

    Items are ``(audio (T, 1, size, size), visual (T, 3, size, size), label)``. The spectrogram and the test-split
    image are deterministic; the train-split image is augmented with a generator seeded by
    ``(seed, epoch, index)`` (see :meth:`set_epoch`). With ``cache`` the deterministic tensors are precomputed
    into HDF5 (train: the spectrograms; test: spectrograms and images).
    """

    DATASET = "dataset"
    CLASSES: tuple[str, ...] = ()

    def __init__(self, root: Path, samples: Sequence[AVSample], split: str, time_steps: int, size: int, seed: int,
                 cache: str | os.PathLike | None, config: Mapping[str, Any]):
        self.root = Path(root)
        self.samples = list(samples)
        self.split = split
        self.time_steps = int(time_steps)
        self.size = int(size)
        self.seed = int(seed)
        self.epoch = 0
        self._cache: FeatureCache | None = None
        if cache is not None:
            files = [p for s in self.samples for p in (s.audio, s.visual)]
            full = {**config, "dataset": self.DATASET, "split": split, "size": self.size,
                    "labels": [s.label for s in self.samples], "files": file_manifest(self.root, files)}
            self._cache = FeatureCache.open_or_build(cache, f"{self.DATASET.lower()}-{split}", full,
                                                     len(self.samples), self._deterministic)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.CLASSES)

    @property
    def labels(self) -> list[int]:
        """The class index of every item, in item order."""
        return [s.label for s in self.samples]

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw for the train split (the reference reuses 3 cached draws, §4)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def _deterministic(self, index: int) -> dict[str, np.ndarray]:
        sample = self.samples[index]
        wave, rate = read_wav(sample.audio, self.DATASET)
        try:
            out = {"audio": spectrogram_image(wave, rate, self.size).numpy()}
        except DatasetError as exc:  # e.g. NaN samples in a float wav: say which file
            raise layout_error(self.DATASET, f"{sample.audio}: {exc}") from exc
        if self.split == "test":
            out["visual"] = test_visual(load_rgb(sample.visual, self.DATASET), self.size).numpy()
        return out

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        n = len(self.samples)
        if not -n <= index < n:
            raise IndexError(f"{self.DATASET}: index {index} out of range for {n} items")
        index %= n
        feats = self._cache.get(index) if self._cache is not None else self._deterministic(index)
        audio = torch.as_tensor(np.asarray(feats["audio"], dtype=np.float32))
        if "visual" in feats:
            visual = torch.as_tensor(np.asarray(feats["visual"], dtype=np.float32))
        else:
            img = load_rgb(self.samples[index].visual, self.DATASET)
            visual = train_visual(img, self.size, item_rng(self.seed, self.epoch, index))
        return repeat_time(audio, self.time_steps), repeat_time(visual, self.time_steps), self.samples[index].label
