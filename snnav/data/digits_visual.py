"""The visual half of AV-Digits: scikit-learn's handwritten digits rendered to augmented frames.

The source images are the 1,797 real handwritten digits that scikit-learn ships (``load_digits``: 8×8 images,
each pixel the count of inked cells in a 4×4 block of a 32×32 bitmap, 0..16). No download is involved.

A frame is made in one resampling pass: the 8×8 digit is mapped onto a ``size × size`` frame by a single affine
matrix (upsampling, rotation, shear, scale and translation combined, about the centres) and sampled with a cubic
spline, so the glyph is smooth and the augmentation costs no more than the plain upsampling. The glyph fills about
``glyph_frac`` of the frame side, leaving a margin for the saccades of the event-camera view (:mod:`snnav.data.dvs`).
Intensity augmentation then sets a background level, an ink contrast and a gamma.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from sklearn.datasets import load_digits

from snnav.errors import ConfigError, DatasetError
from snnav.records import Record

__all__ = ["AugmentConfig", "load_digit_images", "render_frame", "corrupt_frame", "OCCLUSION_FILLS"]

#: How ``corrupt_frame`` fills the occluding rectangle.
OCCLUSION_FILLS = ("background", "random")

_RANGE_FIELDS = ("scale_range", "contrast_range", "gamma_range", "background_range")


@functools.lru_cache(maxsize=1)
def _digits_cached() -> tuple[np.ndarray, np.ndarray]:

    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0).clip(0.0, 1.0)
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """Return scikit-learn's handwritten digits as images in [0, 1] and their labels.

    Returns:
        ``(images, labels)``: ``images`` float32 of shape ``(1797, 8, 8)`` (ink = 1), ``labels`` int64 of shape
        ``(1797,)`` with values 0..9. The arrays are fresh copies; the caller may modify them.
    """
    images, labels = _digits_cached()
    return images.copy(), labels.copy()


@dataclass(frozen=True)
class AugmentConfig(Record):
    """Geometry and intensity augmentation of a rendered digit frame.

    Each random quantity is drawn uniformly from its range (``±x`` means ``[-x, x]``).

    Attributes:
        glyph_frac: side of the (unaugmented) glyph as a fraction of the frame side.
        rotation_deg: rotation, ±degrees.
        scale_range: isotropic scale factor (applied on top of ``glyph_frac``).
        shear_deg: horizontal shear, ±degrees.
        translate_frac: translation of the glyph centre, ± fraction of the frame side, per axis.
        contrast_range: ink amplitude as a fraction of the range between background and white.
        gamma_range: gamma applied to the glyph's ink profile (>1 thins strokes, <1 thickens them).
        background_range: background intensity.
    """

    glyph_frac: float = 0.6
    rotation_deg: float = 12.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    shear_deg: float = 8.0
    translate_frac: float = 0.04
    contrast_range: tuple[float, float] = (0.6, 1.0)
    gamma_range: tuple[float, float] = (0.7, 1.4)
    background_range: tuple[float, float] = (0.0, 0.2)

    def __post_init__(self) -> None:
        for name in _RANGE_FIELDS:
            value = getattr(self, name)
            if len(value) != 2 or not all(math.isfinite(v) for v in value) or value[0] > value[1]:
                raise ConfigError(f"AugmentConfig.{name} must be a (low, high) pair with low <= high, got {value!r}")
            object.__setattr__(self, name, (float(value[0]), float(value[1])))
        _check(0.0 < self.glyph_frac <= 1.0, "glyph_frac", "in (0, 1]", self.glyph_frac)
        _check(0.0 <= self.rotation_deg <= 180.0, "rotation_deg", "in [0, 180]", self.rotation_deg)
        _check(0.0 <= self.shear_deg < 60.0, "shear_deg", "in [0, 60)", self.shear_deg)
        _check(0.0 <= self.translate_frac < 0.5, "translate_frac", "in [0, 0.5)", self.translate_frac)
        _check(self.scale_range[0] > 0.0, "scale_range", "positive", self.scale_range)
        _check(self.gamma_range[0] > 0.0, "gamma_range", "positive", self.gamma_range)
        _check(0.0 <= self.contrast_range[0] and self.contrast_range[1] <= 1.0, "contrast_range", "within [0, 1]",
               self.contrast_range)
        _check(0.0 <= self.background_range[0] and self.background_range[1] < 1.0, "background_range",
               "within [0, 1)", self.background_range)

    @classmethod
    def none(cls) -> "AugmentConfig":
        """A config that draws no augmentation at all (the same frame as ``rng=None``, at the default glyph size)."""
        return cls(rotation_deg=0.0, scale_range=(1.0, 1.0), shear_deg=0.0, translate_frac=0.0,
                   contrast_range=(1.0, 1.0), gamma_range=(1.0, 1.0), background_range=(0.0, 0.0))


def _check(ok: bool, name: str, expected: str, found: Any) -> None:
    if not ok:
        raise ConfigError(f"AugmentConfig.{name} must be {expected}, got {found!r}")


def _check_image(image: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 2 or min(arr.shape) < 1 or not np.issubdtype(arr.dtype, np.number):
        raise DatasetError(f"{what} must be a 2-D numeric array (H, W), got shape {arr.shape} dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise DatasetError(f"{what} contains NaN or infinite values; pass intensities in [0, 1]")
    return arr


def _affine(image: np.ndarray, size: int, glyph_frac: float, linear: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Resample ``image`` onto a ``size × size`` frame: ``o = c_out + shift + linear · (i − c_in) / step``."""
    h, w = image.shape
    step = max(h, w) / (glyph_frac * size)  # input pixels per output pixel
    matrix = step * np.linalg.inv(linear)  # output → input, as affine_transform wants it
    c_in = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    c_out = np.full(2, (size - 1) / 2.0) + shift
    offset = c_in - matrix @ c_out
    # 'grid-constant' lets the spline fade to the zero background outside the 8×8 support instead of cutting it.
    out = ndimage.affine_transform(image, matrix, offset=offset, output_shape=(size, size), order=3,
                                   mode="grid-constant", cval=0.0)
    return np.clip(out, 0.0, 1.0, out=out)


def _random_linear(rng: np.random.Generator, aug: AugmentConfig) -> np.ndarray:
    theta = math.radians(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
    shear = math.tan(math.radians(rng.uniform(-aug.shear_deg, aug.shear_deg)))
    scale = rng.uniform(*aug.scale_range)
    c, s = math.cos(theta), math.sin(theta)
    rotation = np.array([[c, -s], [s, c]])
    shear_m = np.array([[1.0, 0.0], [shear, 1.0]])  # column shifts in proportion to row: a slanted hand
    return scale * rotation @ shear_m


def render_frame(image8: np.ndarray, size: int = 64, rng: np.random.Generator | None = None,
                 aug: AugmentConfig | None = None) -> np.ndarray:
    """Render a small digit image to a smooth ``size × size`` frame, optionally augmented.

    Args:
        image8: the digit, shape ``(h, w)`` (8×8 for scikit-learn's digits), ink in [0, 1].
        size: side of the output frame in pixels.
        rng: source of the augmentation; ``None`` renders the digit centred, unaugmented, on a black background.
        aug: augmentation ranges (and glyph size); defaults to ``AugmentConfig()``.

    Returns:
        float32 array ``(size, size)`` in [0, 1]: ``background + contrast·(1 − background)·glyph**gamma``.

    Raises:
        DatasetError: ``image8`` is not a finite 2-D array.
        ConfigError: ``size`` is not a positive integer.
    """
    image = _check_image(image8, "image8")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ConfigError(f"render_frame size must be a positive integer number of pixels, got {size!r}")
    aug = AugmentConfig() if aug is None else aug
    if rng is None:
        return _affine(image, int(size), aug.glyph_frac, np.eye(2), np.zeros(2)).astype(np.float32, copy=False)
    # Draw every random number in a fixed order so a seed fixes the frame whatever the ranges are.
    linear = _random_linear(rng, aug)
    shift = rng.uniform(-aug.translate_frac, aug.translate_frac, size=2) * size
    contrast = rng.uniform(*aug.contrast_range)
    gamma = rng.uniform(*aug.gamma_range)
    background = rng.uniform(*aug.background_range)
    glyph = _affine(image, int(size), aug.glyph_frac, linear, shift)
    if gamma != 1.0:
        np.power(glyph, gamma, out=glyph)
    frame = background + (contrast * (1.0 - background)) * glyph
    return np.clip(frame, 0.0, 1.0).astype(np.float32, copy=False)


def _occlusion_box(h: int, w: int, frac: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Top-left corner and size of a rectangle of area ≈ ``frac·h·w`` with a random aspect ratio."""
    area = frac * h * w
    aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))  # height / width
    bh = int(min(h, max(1, round(math.sqrt(area * aspect)))))
    bw = int(min(w, max(1, round(area / bh))))
    bh = int(min(h, max(1, round(area / bw))))  # refit the height when the width was clipped by the frame
    top = int(rng.integers(0, h - bh + 1))
    left = int(rng.integers(0, w - bw + 1))
    return top, left, bh, bw


def _background_level(frame: np.ndarray) -> float:
    # The glyph never reaches the frame border (it spans ~2/3 of the side), so the border is background.
    border = np.concatenate([frame[0], frame[-1], frame[1:-1, 0], frame[1:-1, -1]])
    return float(np.median(border))


def corrupt_frame(frame: np.ndarray, rng: np.random.Generator, pixel_noise_std: float = 0.0,
                  occlusion_frac: float = 0.0, *, occlusion_fill: str = "background") -> np.ndarray:
    """Occlude a random rectangle of a frame, then add Gaussian pixel noise.

    Args:
        frame: intensities ``(H, W)`` in [0, 1].
        rng: source of the noise and of the rectangle's place and shape.
        pixel_noise_std: standard deviation of the additive Gaussian noise; the result is clipped to [0, 1].
        occlusion_frac: area of the occluding rectangle as a fraction of the frame (0 = no occlusion). Its aspect
            ratio is drawn from [1/2, 2] (log-uniform), so the covered fraction matches to within rounding.
        occlusion_fill: ``"background"`` fills the rectangle with the frame's background (median of its border);
            ``"random"`` with one uniform grey level in [0, 1].

    Returns:
        A new float32 frame; ``frame`` is not modified.

    Raises:
        DatasetError: ``frame`` is not a finite 2-D array.
        ConfigError: a noise parameter is out of range or ``occlusion_fill`` is unknown.
    """
    out = _check_image(frame, "frame").copy()
    if not (math.isfinite(pixel_noise_std) and pixel_noise_std >= 0.0):
        raise ConfigError(f"pixel_noise_std must be a finite number >= 0, got {pixel_noise_std!r}")
    if not 0.0 <= occlusion_frac <= 1.0:
        raise ConfigError(f"occlusion_frac must be in [0, 1], got {occlusion_frac!r}")
    if occlusion_fill not in OCCLUSION_FILLS:
        raise ConfigError(f"occlusion_fill must be one of {OCCLUSION_FILLS}, got {occlusion_fill!r}")
    if occlusion_frac > 0.0:
        top, left, bh, bw = _occlusion_box(*out.shape, occlusion_frac, rng)
        fill = _background_level(out) if occlusion_fill == "background" else rng.uniform(0.0, 1.0)
        out[top:top + bh, left:left + bw] = fill
    if pixel_noise_std > 0.0:
        out += rng.normal(0.0, pixel_noise_std, size=out.shape).astype(np.float32)
        np.clip(out, 0.0, 1.0, out=out)
    return out
