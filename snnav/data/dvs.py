"""An event-camera (DVS) emulator that records a still frame the way MNIST-DVS was recorded.

MNIST-DVS (Serrano-Gotarredona & Linares-Barranco, 2015) put each digit on a monitor in front of a dynamic vision
sensor and moved it in small, saccade-like motions; N-MNIST (Orchard et al., 2015) moved the sensor in three quick
saccades along a triangle. Here the frame is moved along a few smooth saccades (:func:`saccade_trajectory`) over
``n_substeps`` fine time steps and each pixel behaves as a DVS pixel (:func:`video_events`):

* it holds a reference log intensity ``ref``, set to ``log(I₀ + ε)`` at the first step (the sensor has adapted);
* at step ``k`` with ``Δ = log(I_k + ε) − ref``, it emits ``n = trunc(Δ / θ_pix)`` events: ``n`` ON events
  (channel 0) when ``n > 0``, ``−n`` OFF events (channel 1) when ``n < 0``, and moves ``ref`` by ``n·θ_pix``;
* ``θ_pix = θ + σ·z`` per pixel, ``z ~ N(0, 1)`` (fixed-pattern threshold mismatch), floored at ``θ/4``;
* for ``refractory_substeps`` steps after an event the pixel is held in reset: it emits nothing and its reference
  follows the log intensity, so changes during that time are lost, as in the hardware;
* background/shot noise adds spurious events at a constant rate, with random polarity, without touching ``ref``.

Events are kept as dense counts ``(n_substeps, 2, H, W)`` (uint8) and summed into ``T`` frames by
:func:`bin_events`; :func:`event_list` turns counts into an address-event list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from snnav.errors import ConfigError, DatasetError
from snnav.records import Record

__all__ = ["DVSConfig", "saccade_trajectory", "shift_frames", "shift_frames_reference", "video_events", "frame_events", "bin_events",
           "event_list", "dvs_view", "ON", "OFF"]

#: Polarity channels of the event tensors.
ON, OFF = 0, 1

_EVENT_DTYPE = np.dtype([("t", np.int32), ("p", np.int8), ("y", np.int16), ("x", np.int16)])


@dataclass(frozen=True)
class DVSConfig(Record):
    """Parameters of the saccades and of the emulated DVS pixels.

    Attributes:
        n_substeps: fine simulation steps per recording (the trajectory's length).
        saccade_amplitude_px: length of one saccade in pixels (the side of the triangle for three saccades).
        n_saccades: number of movements; with two or more, the path closes (the last returns to the start).
        saccade_duty: fraction of each saccade's time spent moving; the rest is a fixation (no motion).
        threshold: contrast threshold θ, in natural-log intensity units.
        threshold_mismatch_std: σ of the per-pixel threshold mismatch, in log units (0 = identical pixels).
        log_eps: ε in ``log(I + ε)``; keeps dark pixels from firing on tiny absolute changes.
        refractory_substeps: steps a pixel is held in reset after it fires (0 = none).
        noise_rate: expected spurious events per pixel per substep (both polarities together).
    """

    n_substeps: int = 32
    saccade_amplitude_px: float = 3.0
    n_saccades: int = 3
    saccade_duty: float = 1.0
    threshold: float = 0.2
    threshold_mismatch_std: float = 0.03
    log_eps: float = 0.05
    refractory_substeps: int = 0
    noise_rate: float = 1e-4

    def __post_init__(self) -> None:
        for name in ("n_substeps", "n_saccades", "refractory_substeps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"DVSConfig.{name} must be an integer, got {value!r}")
        _check(self.n_substeps >= 2, "n_substeps", ">= 2", self.n_substeps)
        _check(self.n_saccades >= 0, "n_saccades", ">= 0", self.n_saccades)
        _check(self.refractory_substeps >= 0, "refractory_substeps", ">= 0", self.refractory_substeps)
        _check(_finite(self.saccade_amplitude_px) and self.saccade_amplitude_px >= 0.0, "saccade_amplitude_px",
               "a finite number >= 0", self.saccade_amplitude_px)
        _check(_finite(self.saccade_duty) and 0.0 < self.saccade_duty <= 1.0, "saccade_duty", "in (0, 1]",
               self.saccade_duty)
        _check(_finite(self.threshold) and self.threshold > 0.0, "threshold", "> 0", self.threshold)
        _check(_finite(self.threshold_mismatch_std) and self.threshold_mismatch_std >= 0.0,
               "threshold_mismatch_std", ">= 0", self.threshold_mismatch_std)
        _check(_finite(self.log_eps) and self.log_eps > 0.0, "log_eps", "> 0", self.log_eps)
        _check(_finite(self.noise_rate) and 0.0 <= self.noise_rate <= 1.0, "noise_rate", "in [0, 1]",
               self.noise_rate)



def _finite(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and math.isfinite(value)


def _check(ok: bool, name: str, expected: str, found: Any) -> None:
    if not ok:
        raise ConfigError(f"DVSConfig.{name} must be {expected}, got {found!r}")


def _saccade_vertices(cfg: DVSConfig, rng: np.random.Generator | None) -> np.ndarray:
    """Corners of the saccade path, ``(n_saccades + 1, 2)`` as (dy, dx), starting at the origin."""
    m = cfg.n_saccades
    # Equal turns of 2π/m make a closed regular polygon (a triangle for three saccades, back-and-forth for two).
    heading0 = rng.uniform(0.0, 2.0 * math.pi) if rng is not None else math.pi / 2.0
    headings = heading0 + 2.0 * math.pi * np.arange(m) / max(m, 1)
    lengths = np.full(m, cfg.saccade_amplitude_px)
    if rng is not None:  # irregular hand-free saccades: jitter each direction and length
        headings = headings + rng.uniform(-math.pi / 12.0, math.pi / 12.0, size=m)
        lengths = lengths * rng.uniform(0.75, 1.25, size=m)
    steps = lengths[:, None] * np.stack([np.sin(headings), np.cos(headings)], axis=1)
    vertices = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)], axis=0)
    if m >= 2:
        vertices[-1] = 0.0  # close the path exactly, whatever the jitter did
    return vertices


def saccade_trajectory(cfg: DVSConfig, rng: np.random.Generator | None = None) -> np.ndarray:
    """Sub-pixel offsets of the frame at each substep, moving along ``n_saccades`` smooth saccades.

    Each saccade follows a raised-cosine profile (zero velocity at both ends), so the path is continuous with a
    continuous velocity; with ``saccade_duty < 1`` it is followed by a fixation. The path is centred on the mean of
    its corners, so the digit oscillates about where it was rendered.

    Args:
        cfg: the saccade parameters.
        rng: source of the path's orientation and of the jitter of each saccade; ``None`` gives a fixed, regular
            path (an upright equilateral triangle for three saccades).

    Returns:
        float64 array ``(n_substeps, 2)`` of ``(dy, dx)`` offsets in pixels (positive = down / right).
    """
    n, m = cfg.n_substeps, cfg.n_saccades
    if m == 0 or cfg.saccade_amplitude_px == 0.0:
        return np.zeros((n, 2))
    vertices = _saccade_vertices(cfg, rng)
    phase = np.linspace(0.0, float(m), n)  # saccade index + progress within it
    index = np.minimum(phase.astype(np.int64), m - 1)
    progress = np.clip((phase - index) / cfg.saccade_duty, 0.0, 1.0)
    ease = 0.5 - 0.5 * np.cos(math.pi * progress)
    path = vertices[index] + ease[:, None] * (vertices[index + 1] - vertices[index])
    centre = vertices[:-1].mean(axis=0) if m >= 2 else vertices.mean(axis=0)
    return path - centre


def _check_frames(frames: np.ndarray, ndim: int, what: str) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != ndim or min(arr.shape) < 1 or not np.issubdtype(arr.dtype, np.number):
        shape = "(H, W)" if ndim == 2 else "(steps, H, W)"
        raise DatasetError(f"{what} must be a numeric array {shape}, got shape {arr.shape} dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all() or arr.min() < 0.0:
        raise DatasetError(f"{what} must hold finite intensities >= 0 (e.g. in [0, 1])")
    return arr


def shift_frames(frame: np.ndarray, trajectory: np.ndarray) -> np.ndarray:
    """Translate ``frame`` by each ``(dy, dx)`` of ``trajectory`` with bilinear interpolation.

    ``out[k, y, x] = frame(y − dy_k, x − dx_k)``, with the frame's edge pixels extended outward (the monitor's
    background continues beyond the field of view, so no artificial dark border enters).

    Returns:
        float32 array ``(len(trajectory), H, W)``.
    """
    frame = _check_frames(frame, 2, "frame")
    traj = np.asarray(trajectory, dtype=np.float64)
    if traj.ndim != 2 or traj.shape[1] != 2 or not np.isfinite(traj).all():
        raise DatasetError(f"trajectory must be a finite (steps, 2) array of (dy, dx), got shape {traj.shape}")
    h, w = frame.shape
    pad = int(math.ceil(np.abs(traj).max(initial=0.0))) + 1
    padded = np.pad(frame, pad, mode="edge")
    base = np.floor(traj).astype(np.int64)  # (n, 2); the source of y − dy lies in rows y − base − 1 .. y − base
    frac = (traj - base).astype(np.float32)
    # All steps at once: the (H + 1, W + 1) window of each step, then the same float32 products and sums per step.
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h + 1, w + 1))
    blocks = windows[pad - base[:, 0] - 1, pad - base[:, 1] - 1]  # (n, H + 1, W + 1)
    fy, fx = frac[:, 0, None, None], frac[:, 1, None, None]
    rows = blocks[:, :-1] * fy + blocks[:, 1:] * (1.0 - fy)  # (n, H, W + 1)
    return rows[:, :, :-1] * fx + rows[:, :, 1:] * (1.0 - fx)


def shift_frames_reference(frame: np.ndarray, trajectory: np.ndarray) -> np.ndarray:
    """:func:`shift_frames` one step at a time (the previous implementation), kept as the baseline that tests and
    ``scripts/bench_data.py`` compare it against: the same bytes."""
    frame = _check_frames(frame, 2, "frame")
    traj = np.asarray(trajectory, dtype=np.float64)
    if traj.ndim != 2 or traj.shape[1] != 2 or not np.isfinite(traj).all():
        raise DatasetError(f"trajectory must be a finite (steps, 2) array of (dy, dx), got shape {traj.shape}")
    h, w = frame.shape
    pad = int(math.ceil(np.abs(traj).max(initial=0.0))) + 1
    padded = np.pad(frame, pad, mode="edge")
    base = np.floor(traj).astype(np.int64)
    frac = (traj - base).astype(np.float32)
    out = np.empty((len(traj), h, w), dtype=np.float32)
    for k, ((by, bx), (fy, fx)) in enumerate(zip(base, frac)):
        top, left = pad - by - 1, pad - bx - 1
        block = padded[top:top + h + 1, left:left + w + 1]
        rows = block[:-1] * fy + block[1:] * (1.0 - fy)  # (H, W + 1)
        out[k] = rows[:, :-1] * fx + rows[:, 1:] * (1.0 - fx)
    return out


def _pixel_thresholds(shape: tuple[int, int], cfg: DVSConfig, rng: np.random.Generator | None) -> np.ndarray:
    theta = np.full(shape, cfg.threshold, dtype=np.float32)
    if rng is not None and cfg.threshold_mismatch_std > 0.0:
        theta += rng.normal(0.0, cfg.threshold_mismatch_std, size=shape).astype(np.float32)
        np.maximum(theta, cfg.threshold / 4.0, out=theta)  # a pixel with a near-zero threshold would fire forever
    return theta


def _add_noise(counts: np.ndarray, cfg: DVSConfig, rng: np.random.Generator) -> None:
    """Add spurious events at ``noise_rate`` per pixel per substep, uniformly placed, random polarity."""
    steps, _, h, w = counts.shape
    n = rng.poisson(cfg.noise_rate * steps * h * w)
    if n == 0:
        return
    t, y, x = np.unravel_index(rng.integers(0, steps * h * w, size=n), (steps, h, w))
    polarity = rng.integers(0, 2, size=n)
    np.add.at(counts, (t, polarity, y, x), 1)  # a pixel at 255 would wrap; at these rates it never gets there


def video_events(video: np.ndarray, cfg: DVSConfig, rng: np.random.Generator | None = None) -> np.ndarray:
    """Emulate DVS pixels watching an intensity video (see the module docstring for the pixel model).

    Args:
        video: intensities ``(steps, H, W)``, >= 0 (the first step sets the pixels' references).
        cfg: the pixel parameters (``n_substeps`` is not used: the video sets the number of steps).
        rng: source of threshold mismatch and noise; ``None`` gives ideal, identical, noiseless pixels.

    Returns:
        uint8 event counts ``(steps, 2, H, W)``: channel 0 ON, channel 1 OFF; step 0 holds only noise.
    """
    video = _check_frames(video, 3, "video")
    n, h, w = video.shape
    log_i = np.log(video + np.float32(cfg.log_eps))  # (n, H, W)
    theta = _pixel_thresholds((h, w), cfg, rng)
    inv_theta = 1.0 / theta
    ref = log_i[0].copy()
    fired = np.zeros((n, h, w), dtype=np.float32)  # ON − OFF events per step; one sign per pixel and step
    last_fire = np.full((h, w), -(cfg.refractory_substeps + 1), dtype=np.int64)
    scratch = np.empty((h, w), dtype=np.float32)
    for k in range(1, n):
        now = fired[k]
        np.subtract(log_i[k], ref, out=now)
        np.multiply(now, inv_theta, out=now)
        np.trunc(now, out=now)  # signed event count, rounded toward zero
        if cfg.refractory_substeps:
            held = (k - last_fire) <= cfg.refractory_substeps
            now[held] = 0.0
            ref[held] = log_i[k][held]  # in reset: the reference follows the input
            last_fire[now != 0.0] = k
        np.multiply(now, theta, out=scratch)
        ref += scratch
    counts = np.empty((n, 2, h, w), dtype=np.uint8)
    counts[:, ON] = np.minimum(np.maximum(fired, 0.0), 255.0)
    counts[:, OFF] = np.minimum(np.maximum(-fired, 0.0), 255.0)
    if rng is not None and cfg.noise_rate > 0.0:
        _add_noise(counts, cfg, rng)
    return counts


def frame_events(frame: np.ndarray, cfg: DVSConfig, rng: np.random.Generator | None = None,
                 trajectory: np.ndarray | None = None) -> np.ndarray:
    """Record a still frame moved along saccades with the emulated DVS.

    Args:
        frame: intensities ``(H, W)`` in [0, 1].
        cfg: saccade and pixel parameters.
        rng: source of the trajectory, threshold mismatch and noise; ``None`` is fully deterministic and ideal.
        trajectory: ``(steps, 2)`` offsets to use instead of drawing :func:`saccade_trajectory`.

    Returns:
        uint8 event counts ``(steps, 2, H, W)`` (``steps = cfg.n_substeps`` unless ``trajectory`` is given).
    """
    if trajectory is None:
        trajectory = saccade_trajectory(cfg, rng)
    return video_events(shift_frames(frame, trajectory), cfg, rng)


def bin_events(events: np.ndarray, n_bins: int) -> np.ndarray:
    """Sum event counts over consecutive substeps into ``n_bins`` frames, saturating at 255.

    Substeps are split as evenly as possible (bin ``b`` holds substeps ``⌊b·n/n_bins⌋ .. ⌊(b+1)·n/n_bins⌋ − 1``).

    Args:
        events: non-negative integer counts ``(n_substeps, 2, H, W)``.
        n_bins: number of output frames, ``1 <= n_bins <= n_substeps``.

    Returns:
        uint8 array ``(n_bins, 2, H, W)``.
    """
    events = np.asarray(events)
    if events.ndim != 4 or events.shape[1] != 2 or not np.issubdtype(events.dtype, np.integer):
        raise DatasetError(f"events must be integer counts (steps, 2, H, W), got shape {events.shape} "
                           f"dtype {events.dtype}")
    n = events.shape[0]
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or not 1 <= n_bins <= n:
        raise ConfigError(f"n_bins must be an integer in [1, {n}] (the number of substeps), got {n_bins!r}")
    edges = (np.arange(n_bins + 1) * n) // n_bins
    if np.issubdtype(events.dtype, np.signedinteger) and events.size and events.min() < 0:
        raise DatasetError("events must be non-negative counts; found negative values")
    # Summing uint8 counts in uint16 cannot overflow for up to 257 substeps per bin; otherwise sum in int64.
    small = events.dtype == np.uint8 and (edges[1:] - edges[:-1]).max() * 255 < 2**16
    acc = np.uint16 if small else np.int64
    out = np.empty((n_bins,) + events.shape[1:], dtype=np.uint8)
    for b in range(n_bins):  # a loop of sums over contiguous blocks is ~20x faster than np.add.reduceat here
        summed = events[edges[b]:edges[b + 1]].sum(axis=0, dtype=acc)
        np.minimum(summed, 255, out=summed)
        out[b] = summed
    return out


def event_list(events: np.ndarray) -> np.ndarray:
    """Expand event counts ``(steps, 2, H, W)`` into an address-event list.

    Returns:
        structured array with fields ``t`` (substep), ``p`` (0 ON, 1 OFF), ``y``, ``x``, one row per event,
        sorted by ``t`` then polarity then address.
    """
    events = np.asarray(events)
    if events.ndim != 4 or events.shape[1] != 2 or not np.issubdtype(events.dtype, np.integer):
        raise DatasetError(f"events must be integer counts (steps, 2, H, W), got shape {events.shape}")
    t, p, y, x = np.nonzero(events)
    reps = events[t, p, y, x].astype(np.int64)
    out = np.empty(int(reps.sum()), dtype=_EVENT_DTYPE)
    for name, values in zip("tpyx", (t, p, y, x)):
        out[name] = np.repeat(values, reps)
    return out


def dvs_view(frame: np.ndarray, n_bins: int, cfg: DVSConfig | None = None,
             rng: np.random.Generator | None = None) -> np.ndarray:
    """The event-camera view of a still frame: saccades, DVS pixels, ``n_bins`` frames of ON/OFF counts.

    Returns:
        uint8 array ``(n_bins, 2, H, W)``.
    """
    cfg = DVSConfig() if cfg is None else cfg
    return bin_events(frame_events(frame, cfg, rng), n_bins)
