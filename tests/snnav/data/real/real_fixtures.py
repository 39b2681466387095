"""Builders of tiny datasets in the exact on-disk layouts the real-dataset loaders read.

Everything is generated at test time under a temporary folder: sine-tone wavs (scipy), JPEG frames (PIL),
jAER AEDAT recordings (written here byte by byte from the format, independently of the reader) and an
N-TIDIGITS HDF5 file (h5py). Each generated item encodes its class so tests can check labels and pairing:

* wav: a tone at ``300 + 100 * label`` Hz; image: a seeded pattern whose mean colour depends on the label;
* MNIST-DVS: the events of digit ``d`` sit in sensor column ``x = 9 * d + 19`` (28-px column ``x * 28 // 128``);
* N-TIDIGITS: the spikes of digit ``d`` are on cochlea channel ``6 * d + 1``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import wavfile

CREMA_CLASSES = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
US8K_CLASSES = ("air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling", "engine_idling",
                "gun_shot", "jackhammer", "siren", "street_music")
NTIDIGIT_SYMBOLS = ("z", "1", "2", "3", "4", "5", "6", "7", "8", "9")


def write_tone_wav(path: Path, freq: float, rate: int = 8000, seconds: float = 0.3, dtype: str = "int16",
                   channels: int = 1, amplitude: float = 0.5) -> np.ndarray:
    """Write a sine tone; return the float waveform written (before integer scaling), shape (n,) or (n, ch)."""
    t = np.arange(int(rate * seconds)) / rate
    wave = amplitude * np.sin(2 * np.pi * freq * t)
    if channels > 1:
        wave = np.stack([wave * (1 if c % 2 == 0 else -1) for c in range(channels)], axis=1)
    scale = {"int16": 32767, "int32": 2**31 - 1, "float32": 1.0}[dtype]
    data = (wave * scale).astype(dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, rate, data)
    return wave


def write_jpg(path: Path, label: int, seed: int, size: tuple[int, int] = (72, 56)) -> None:
    """Write a noisy colour pattern (width, height = ``size``) whose mean colour depends on ``label``."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.array([40 + 30 * (label % 7), 200 - 25 * (label % 7), 90 + 15 * label], dtype=np.float64)
    ramp = np.linspace(-40, 40, w)[None, :, None]
    img = np.clip(base + ramp + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format="JPEG", quality=90)


def build_crema_processed(root: Path, per_class: dict[str, int] | None = None) -> Path:
    """``processed_dataset/{train,test}/{audio,visual}/<CLS>/<clip>.{wav,jpg}``."""
    per_class = per_class or {"train": 2, "test": 1}
    for split, n in per_class.items():
        for label, cls in enumerate(CREMA_CLASSES):
            for k in range(n):
                clip = f"10{label:02d}_{split[:2].upper()}{k}_{cls}_XX"
                base = root / "processed_dataset" / split
                write_tone_wav(base / "audio" / cls / f"{clip}.wav", 300 + 100 * label)
                write_jpg(base / "visual" / cls / f"{clip}.jpg", label, seed=label * 10 + k)
    return root


def build_crema_csv(root: Path, per_class: dict[str, int] | None = None, frames_per_clip: int = 3,
                    frames_dir: str = "Image-01-FPS") -> Path:
    """OGM-GE layout: ``train.csv``/``test.csv`` (``clip,CLS``), ``AudioWAV/``, ``<frames_dir>/<clip>/*.jpg``."""
    per_class = per_class or {"train": 2, "test": 1}
    for split, n in per_class.items():
        rows = []
        for label, cls in enumerate(CREMA_CLASSES):
            for k in range(n):
                clip = f"10{label:02d}_{split[:2].upper()}{k}_{cls}_XX"
                rows.append(f"{clip},{cls}")
                write_tone_wav(root / "AudioWAV" / f"{clip}.wav", 300 + 100 * label)
                for f in range(frames_per_clip):
                    write_jpg(root / frames_dir / clip / f"{f:05d}.jpg", label, seed=1000 + 37 * label + 7 * k + f)
        # the real files start with a UTF-8 byte-order mark (the reference opens them as utf-8-sig)
        (root / f"{split}.csv").write_text("\ufeff" + "\n".join(rows) + "\n", encoding="utf-8")
    return root


def build_us8k(root: Path, per_class: int = 3, extra_wav: bool = True) -> Path:
    """``Dataset_v3_vision/<class>/<name>.jpg`` and ``Dataset_v3_sound/<class>/<name>.wav`` (names deliberately
    created in non-sorted order; one stereo int32 wav; optionally a wav without an image, which is ignored)."""
    for label, cls in enumerate(US8K_CLASSES):
        for k in reversed(range(per_class)):
            name = f"{100 + k}-{label}-0-{k}"
            stereo = label == 1 and k == 0
            write_tone_wav(root / "Dataset_v3_sound" / cls / f"{name}.wav", 300 + 100 * label,
                           dtype="int32" if stereo else "int16", channels=2 if stereo else 1)
            write_jpg(root / "Dataset_v3_vision" / cls / f"{name}.jpg", label, seed=label * 10 + k)
        if extra_wav:
            write_tone_wav(root / "Dataset_v3_sound" / cls / "999-orphan.wav", 200)
    return root


# ---------------------------------------------------------------------------------------------------------------
# events

AEDAT2_HEADER = (b"#!AER-DAT2.0\r\n"
                 b"# This is a raw AE data file - do not edit\r\n"
                 b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
                 b"# Timestamps tick is 1 us\r\n"
                 b"# created by the snnav test fixtures\r\n")


def dvs128_address(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """DVS128 address word: polarity in bit 0, x in bits 1-7, y in bits 8-14."""
    return (np.asarray(y, np.uint32) << 8) | (np.asarray(x, np.uint32) << 1) | np.asarray(p, np.uint32)


def write_aedat(path: Path, t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray, version: str = "2.0",
                extra_words: np.ndarray | None = None) -> None:
    """Write a jAER recording: header lines, then big-endian (address, timestamp) pairs (``1.0``: 16-bit address).
    ``extra_words`` are raw address words appended (with timestamp t[-1]) to test special-event filtering."""
    addr = dvs128_address(x, y, p).astype(np.uint64)
    ts = np.asarray(t, np.uint64)
    if extra_words is not None:
        addr = np.concatenate([addr, np.asarray(extra_words, np.uint64)])
        ts = np.concatenate([ts, np.full(len(extra_words), ts[-1], np.uint64)])
    if version == "2.0":
        body = np.empty(2 * len(addr), dtype=">u4")
        body[0::2], body[1::2] = addr, ts
        header = AEDAT2_HEADER
    else:
        rec = np.empty(len(addr), dtype=[("a", ">u2"), ("t", ">u4")])
        rec["a"], rec["t"] = addr, ts
        body = rec
        header = b"#!AER-DAT1.0\r\n# old 16-bit address format\r\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + body.tobytes())


def digit_column(digit: int) -> int:
    """Sensor column that holds the events of ``digit`` in the fixture recordings."""
    return 9 * digit + 19  # 28-px columns 4..21: a +-4 crop shift keeps them inside the frame


def build_mnist_dvs(root: Path, per_digit: int = 4, scale: int = 4, n_events: int = 64) -> Path:
    """``grabbed_data<d>/scale<s>/mnist_<d>_scale<ss>_<NNNN>.aedat``; events of digit ``d`` in column
    :func:`digit_column`, rows spread over 20..99, both polarities, times 0..~2 s."""
    for d in range(10):
        for k in range(per_digit):
            rng = np.random.default_rng(100 * d + k)
            t = np.sort(rng.integers(0, 2_000_000, n_events))
            x = np.full(n_events, digit_column(d))
            y = rng.integers(20, 100, n_events)
            p = rng.integers(0, 2, n_events)
            write_aedat(root / f"grabbed_data{d}" / f"scale{scale}" / f"mnist_{d}_scale{scale:02d}_{k + 1:04d}.aedat",
                        t, x, y, p)
    return root


def audio_channel(digit: int) -> int:
    """Cochlea channel that holds the spikes of ``digit`` in the fixture N-TIDIGITS file."""
    return 6 * digit + 1


def build_ntidigits(path: Path, per_digit: dict[str, int] | None = None, n_oh: int = 1, n_multi: int = 2) -> Path:
    """``n-tidigits.hdf5`` with ``{split}_labels`` (byte strings ``<gender>-<speaker>-<a|b>-<digits>``),
    ``{split}_addresses/<label>`` (uint8 channels) and ``{split}_timestamps/<label>`` (float seconds);
    ``n_oh`` 'o' recordings and ``n_multi`` multi-digit ones per split, which the loader must skip."""
    import h5py

    per_digit = per_digit or {"train": 3, "test": 2}
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for split, n in per_digit.items():
            labels = []
            addrs, stamps = f.create_group(f"{split}_addresses"), f.create_group(f"{split}_timestamps")
            entries = [(f"{'man' if k % 2 else 'woman'}-s{k:02d}-a-{sym}", d, k)
                       for d, sym in enumerate(NTIDIGIT_SYMBOLS) for k in range(n)]
            entries += [(f"man-o{k:02d}-a-o", None, k) for k in range(n_oh)]
            entries += [(f"woman-m{k:02d}-b-1z{k}", None, k) for k in range(n_multi)]
            for key, d, k in entries:
                rng = np.random.default_rng(999 + k if d is None else 7 * (d + 1) + k)
                count = 40
                t = np.sort(rng.uniform(0.0, 0.8, count))
                ch = np.full(count, audio_channel(d) if d is not None else 63, dtype=np.uint8)
                addrs.create_dataset(key, data=ch)
                stamps.create_dataset(key, data=t)
                labels.append(key.encode())
            f.create_dataset(f"{split}_labels", data=np.array(labels))
    return path
