"""Audio views of a waveform: S-CMRL's log spectrogram and an N-TIDIGITS-like cochlea spike view (numpy/scipy).

* :func:`log_spectrogram` is S-CMRL's audio pipeline (``docs/scmrl.md`` §4.1) as one image: a natural-log,
  linear-frequency STFT magnitude stretched to a fixed size. Real-dataset loaders call it too.
* :func:`cochlea_spikes` imitates the N-TIDIGITS recordings (§4.3): 64 log-spaced band-pass channels, each
  rectified, smoothed and log-compressed, and turned into spikes by delta modulation, binned into ``T`` frames.
  :func:`cochlea_spikes_batch` computes it for several waveforms at once (what the AV-Digits generator uses) and
  :func:`cochlea_spikes_reference` one channel at a time; all three give the same bytes.
  :func:`fold_cochlea` then applies the reference's ``(T, 64) -> (T, 1, 8, 8) ->`` bilinear reshaping.
* :func:`add_noise_snr` adds white noise at a given signal-to-noise ratio.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image
from scipy import signal

from snnav.errors import ConfigError, DatasetError

SPEC_SAMPLE_RATE = 22050  # S-CMRL resamples every clip to this rate
SPEC_N_FFT = 512  # 257 frequency bins
SPEC_HOP = 353
SPEC_EPS = 1e-7  # log(|X| + eps); silence sits at log(1e-7) = -16.1

COCHLEA_SAMPLE_RATE = 22050  # filterbank rate: one cached filterbank, and room above fmax = 8 kHz
COCHLEA_ENVELOPE_RATE = 1000  # Hz; the smoothed envelopes are delta-modulated at this rate


def _mono(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    x = np.asarray(wave)
    if x.ndim != 1 or x.size == 0 or not np.issubdtype(x.dtype, np.floating):
        raise DatasetError(f"expected a non-empty 1-D float waveform, got shape {x.shape} dtype {x.dtype}; "
                           "downmix to mono and convert to float first")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ConfigError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    if not np.all(np.isfinite(x)):
        raise DatasetError("the waveform contains NaN or infinite samples")
    return x.astype(np.float64)


def _resample(x: np.ndarray, sample_rate: int, target: int) -> np.ndarray:
    if sample_rate == target:
        return x
    g = math.gcd(int(sample_rate), target)
    return signal.resample_poly(x, target // g, int(sample_rate) // g)


def _check_hw(out_hw: tuple[int, int]) -> tuple[int, int]:
    if (not isinstance(out_hw, (tuple, list)) or len(out_hw) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in out_hw)):
        raise ConfigError(f"out_hw must be two positive integers (H, W), got {out_hw!r}")
    return int(out_hw[0]), int(out_hw[1])


def add_noise_snr(wave: np.ndarray, snr_db: float | None, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise whose power is the signal's mean power divided by ``10 ** (snr_db / 10)``.

    The result is not clipped (clipping would change the SNR); :func:`log_spectrogram` clamps to [-1, 1] itself.

    Args:
        wave: 1-D float waveform.
        snr_db: signal-to-noise ratio in dB, or None for no noise (the input is returned as float32).
        rng: the noise source.
    """
    if snr_db is None:
        return np.asarray(wave, dtype=np.float32)
    x = _mono(wave, 1)
    if not isinstance(snr_db, (int, float, np.number)) or not math.isfinite(snr_db):
        raise ConfigError(f"snr_db must be a finite number of dB or None, got {snr_db!r}")
    power = float(np.mean(x * x))
    if power == 0.0:
        raise DatasetError("cannot set an SNR for a silent waveform (its power is 0)")
    noise = rng.standard_normal(x.shape) * math.sqrt(power / 10.0 ** (snr_db / 10.0))
    return (x + noise).astype(np.float32)


# --------------------------------------------------------------------------------------------------- spectrogram


@lru_cache(maxsize=1)
def _hann_periodic() -> np.ndarray:
    return signal.get_window("hann", SPEC_N_FFT, fftbins=True)  # = torch.hann_window(512), periodic


def stft_log_magnitude(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """S-CMRL's spectrogram before resizing: ``log(|STFT| + 1e-7)``, float32 of shape ``(257, F)``.

    ``F = 1 + n // 353`` for ``n`` samples at 22050 Hz. Frames are centred: the signal is padded with 256 zeros on
    each side. The reference builds ``torchaudio.transforms.Spectrogram(n_fft=512, hop_length=353, power=None,
    pad_mode='constant')``: torchaudio's own default ``pad_mode`` is ``"reflect"``, but the reference overrides it
    with ``'constant'`` (zeros), and that is what this function matches (bit for bit up to float rounding against
    ``torch.stft(..., center=True, pad_mode='constant')``).
    """
    x = np.clip(_resample(_mono(wave, sample_rate), sample_rate, SPEC_SAMPLE_RATE), -1.0, 1.0)
    half = SPEC_N_FFT // 2
    padded = np.pad(x, half)  # zeros
    frames = np.lib.stride_tricks.sliding_window_view(padded, SPEC_N_FFT)[::SPEC_HOP]  # (F, 512)
    spectrum = np.fft.rfft(frames * _hann_periodic(), axis=1)  # (F, 257), unnormalized like torch.stft
    return np.ascontiguousarray(np.log(np.abs(spectrum) + SPEC_EPS).T, dtype=np.float32)  # (257, F)


def log_spectrogram(wave: np.ndarray, sample_rate: int, out_hw: tuple[int, int] = (64, 64)) -> np.ndarray:
    """S-CMRL's audio image (``docs/scmrl.md`` §4.1): float32 ``(H, W)``, frequency along H (row 0 = 0 Hz).

    Steps: resample to 22050 Hz (``scipy.signal.resample_poly``; the reference uses torchaudio's windowed-sinc
    ``resample``, so resampled inputs differ slightly), clamp to [-1, 1], :func:`stft_log_magnitude`, then
    ``PIL.Image.fromarray(mode 'F').resize((W, H), BILINEAR)`` as torchvision's ``Resize`` does on a PIL image. The
    whole clip is stretched to W frames: no padding, cropping or tiling. Values lie in about [-16, +5].
    """
    h, w = _check_hw(out_hw)
    spec = stft_log_magnitude(wave, sample_rate)
    image = Image.fromarray(spec).resize((w, h), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32).copy()


# --------------------------------------------------------------------------------------------------- cochlea


def cochlea_band_edges(n_channels: int = 64, fmin: float = 100.0, fmax: float = 8000.0) -> np.ndarray:
    """Band edges in Hz, ``(n_channels + 1,)``: channel ``k`` passes ``[edges[k], edges[k + 1]]``, log-spaced."""
    return np.geomspace(fmin, fmax, n_channels + 1)


@lru_cache(maxsize=8)
def _filterbank(n_channels: int, fmin: float, fmax: float, order: int, envelope_hz: float
                ) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per channel: (band-pass sos, envelope low-pass sos)."""
    fs = COCHLEA_SAMPLE_RATE
    edges = cochlea_band_edges(n_channels, fmin, fmax)
    bank = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = signal.butter(order, [lo, hi], btype="bandpass", fs=fs, output="sos")
        # Half-wave rectification leaves a ripple at the channel's own frequency (1.6x the mean for a sine); a
        # 4th-order low-pass at most a third of that frequency cuts it to ~2 %, so a steady tone does not spike on
        # every cycle.
        # The envelope filter runs after the 1 ms block average (see _log_envelopes), at the envelope rate.
        smooth = signal.butter(4, min(envelope_hz, lo / 3.0), btype="lowpass", fs=fs / _envelope_step(),
                               output="sos")
        bank.append((band, smooth))
    return tuple(bank)


def _check_cochlea_args(n_steps: int, n_channels: int, fmin: float, fmax: float, threshold: float,
                        floor: float, order: int, envelope_hz: float) -> None:
    for name, value in (("n_steps", n_steps), ("n_channels", n_channels), ("order", order)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not 0 < fmin < fmax < 0.95 * COCHLEA_SAMPLE_RATE / 2:
        raise ConfigError(f"need 0 < fmin < fmax < {0.95 * COCHLEA_SAMPLE_RATE / 2:.0f} Hz, got fmin={fmin}, "
                          f"fmax={fmax}")
    for name, value in (("threshold", threshold), ("floor", floor), ("envelope_hz", envelope_hz)):
        if not value > 0:
            raise ConfigError(f"{name} must be positive, got {value!r}")
    if envelope_hz >= COCHLEA_ENVELOPE_RATE / 2:
        raise ConfigError(f"envelope_hz must be below {COCHLEA_ENVELOPE_RATE / 2} Hz, got {envelope_hz}")


def _log_envelopes(x: np.ndarray, bank: tuple[tuple[np.ndarray, np.ndarray], ...], floor: float) -> np.ndarray:
    """``(n_env, C)`` log envelopes at about 1 kHz."""
    step = _envelope_step()
    n_env = (x.size + step - 1) // step
    padded = np.zeros(n_env * step)
    env = np.empty((len(bank), n_env))
    for k, (band, smooth) in enumerate(bank):
        padded[: x.size] = np.maximum(signal.sosfilt(band, x), 0.0)  # half-wave, like inner hair cells
        # Average over 1 ms blocks (a boxcar anti-alias filter with nulls at every multiple of the envelope rate),
        # then smooth at the envelope rate: the smoothing cut-off is <= 50 Hz, so running it at 22 kHz bought nothing
        # but time (it was half the cost of this view).
        blocks = padded.reshape(n_env, step).mean(axis=1)
        env[k] = np.maximum(signal.sosfilt(smooth, blocks), 0.0)
    return np.log(env + floor).T


def _envelope_step() -> int:
    """Samples of the filterbank rate per envelope sample."""
    return max(1, round(COCHLEA_SAMPLE_RATE / COCHLEA_ENVELOPE_RATE))


def _delta_on_events(log_env: np.ndarray, threshold: float, rest: float) -> np.ndarray:
    """ON-event counts ``(n_env, C)`` of a delta modulator started at the resting level ``rest``.

    Each channel keeps a reference level. Whenever the log envelope is ``m`` thresholds above it, ``m`` ON events are
    emitted and the reference rises by ``m`` thresholds; when it is ``m`` thresholds below, the reference falls by
    ``m`` thresholds (the OFF events this implies are dropped, see :func:`cochlea_spikes`).
    """
    ref = np.full(log_env.shape[1], rest)
    on = np.zeros(log_env.shape, dtype=np.int64)
    for t, level in enumerate(log_env):
        steps = np.trunc((level - ref) / threshold)  # signed whole thresholds crossed
        ref += steps * threshold
        on[t] = np.maximum(steps, 0.0)
    return on


def cochlea_spikes(wave: np.ndarray, sample_rate: int, n_steps: int, n_channels: int = 64, fmin: float = 100.0,
                   fmax: float = 8000.0, *, threshold: float = 0.3, floor: float = 3e-4, order: int = 2,
                   envelope_hz: float = 50.0) -> np.ndarray:
    """An N-TIDIGITS-like spike view: ON-event counts per time bin and channel, uint8 ``(n_steps, n_channels)``.

    The pipeline is described in :func:`cochlea_spikes_reference` (which computes it channel by channel); this is
    :func:`cochlea_spikes_batch` of one waveform and gives the same bytes.
    """
    return cochlea_spikes_batch([wave], sample_rate, n_steps, n_channels, fmin, fmax, threshold=threshold,
                                floor=floor, order=order, envelope_hz=envelope_hz)[0]


def cochlea_spikes_batch(waves: Sequence[np.ndarray], sample_rate: int, n_steps: int, n_channels: int = 64,
                         fmin: float = 100.0, fmax: float = 8000.0, *, threshold: float = 0.3, floor: float = 3e-4,
                         order: int = 2, envelope_hz: float = 50.0) -> list[np.ndarray]:
    """:func:`cochlea_spikes` of several waveforms (all at ``sample_rate``) at once, bit for bit the same.

    Batching only changes how the same floating-point operations are grouped, never which are done or in what
    order for any one waveform, channel and sample: two waveforms share each band-pass call as the real and the
    imaginary part of one complex signal (a real filter filters them independently, with the same rounding); the
    envelope low-pass runs once per distinct filter over all channels and waveforms that use it; and the delta
    modulators of all channels and waveforms step together. Shorter waveforms are padded with zeros, and every
    step is causal, so the padding never reaches their samples.

    Returns:
        one uint8 ``(n_steps, n_channels)`` array per waveform, in order.
    """
    xs = [_mono(w, sample_rate) for w in waves]
    _check_cochlea_args(n_steps, n_channels, fmin, fmax, threshold, floor, order, envelope_hz)
    if not xs:
        return []
    xs = [_resample(x, sample_rate, COCHLEA_SAMPLE_RATE) for x in xs]
    bank = _filterbank(int(n_channels), float(fmin), float(fmax), int(order), float(envelope_hz))
    log_env = _log_envelopes_batch(xs, bank, floor)  # (n_env_max, n_waves, C)
    on = _delta_on_events_batch(log_env, threshold, rest=math.log(floor))
    step = _envelope_step()
    out = []
    for i, x in enumerate(xs):
        n_env = (x.size + step - 1) // step
        bins = (np.arange(n_env) * n_steps) // n_env  # equal-duration bins over the utterance
        # Sum the events of each bin: bins are runs of consecutive envelope samples, so differences of a running
        # total (integers, exact) give the same counts as adding every sample into its bin.
        edges = np.searchsorted(bins, np.arange(n_steps + 1))
        total = np.zeros((n_env + 1, on.shape[2]), dtype=np.int64)
        np.cumsum(on[:n_env, i], axis=0, out=total[1:])
        counts = total[edges[1:]] - total[edges[:-1]]
        out.append(np.minimum(counts, 255).astype(np.uint8))
    return out


def _log_envelopes_batch(xs: list[np.ndarray], bank: tuple[tuple[np.ndarray, np.ndarray], ...], floor: float
                         ) -> np.ndarray:
    """``(n_env_max, n_waves, C)`` log envelopes; wave ``i`` owns rows ``[:ceil(len(xs[i]) / step)]``.

    The same operations as :func:`_log_envelopes`, per wave and channel, batched (see :func:`cochlea_spikes_batch`).
    """
    step = _envelope_step()
    n = len(xs)
    n_envs = [(x.size + step - 1) // step for x in xs]
    n_env_max = max(n_envs)
    # Waves sorted by length are paired into complex rows: lane 2r holds the real part of row r, lane 2r + 1 the
    # imaginary part (an odd batch leaves the last one empty). Each row is as long as its longer wave.
    order = sorted(range(n), key=lambda i: -xs[i].size)
    n_rows = (n + 1) // 2
    rows = []
    for r in range(n_rows):
        re = order[2 * r]
        im = order[2 * r + 1] if 2 * r + 1 < n else None
        # A lone wave stays real: a complex row costs more than a real one.
        z = np.zeros(n_envs[re] * step, dtype=np.float64 if im is None else np.complex128)
        z.real[: xs[re].size] = xs[re]
        if im is not None:
            z.imag[: xs[im].size] = xs[im]
        rows.append((z, n_envs[re], xs[re].size, 0 if im is None else xs[im].size))
    rectified = np.zeros((2 * n_rows, n_env_max * step))  # per lane; zero past each wave's end
    blocks = np.empty((len(bank), 2 * n_rows, n_env_max))  # 1 ms block averages
    for k, (band, _) in enumerate(bank):
        for r, (z, _, n_re, n_im) in enumerate(rows):
            y = signal.sosfilt(band, z)
            np.maximum(y.real[:n_re], 0.0, out=rectified[2 * r, :n_re])  # half-wave, like inner hair cells
            if n_im:
                np.maximum(y.imag[:n_im], 0.0, out=rectified[2 * r + 1, :n_im])
        _block_means(rectified.reshape(-1, step), out=blocks[k].reshape(-1))
    env = np.empty_like(blocks)
    # Channels whose low-pass is the same filter (all but the lowest few) share one call.
    groups: dict[bytes, list[int]] = {}
    for k, (_, smooth) in enumerate(bank):
        groups.setdefault(smooth.tobytes(), []).append(k)
    for channels in groups.values():
        env[channels] = signal.sosfilt(bank[channels[0]][1], blocks[channels], axis=-1)
    np.maximum(env, 0.0, out=env)
    env += floor
    log_env = np.log(env)  # (C, lanes, n_env_max), contiguous like the reference's (C, n_env)
    lane = np.argsort(order)  # wave i sits in lane lane[i]
    return np.ascontiguousarray(log_env[:, lane].transpose(2, 1, 0))


def _block_means(rows: np.ndarray, out: np.ndarray) -> None:
    """``rows.mean(axis=1)`` of a float64 ``(m, n)`` array whose rows are contiguous, bit for bit, into ``out``.

    numpy sums a short contiguous row of 8 to 128 values in a fixed order: eight running sums over strides of 8,
    combined as ``((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))``, then the leftover ``n % 8`` values added one
    by one, and divides by n. Reducing millions of 22-value rows one call per row is slow, so this does the same
    additions, in the same order, for all rows at once. Other widths use ``mean`` itself.
    """
    m, n = rows.shape
    if not 8 <= n <= 128:
        np.mean(rows, axis=1, out=out)
        return
    acc = rows[:, :8].copy()
    for i in range(8, n - n % 8, 8):
        acc += rows[:, i:i + 8]
    pairs = acc[:, 0::2] + acc[:, 1::2]  # s0 + s1, s2 + s3, s4 + s5, s6 + s7
    quads = pairs[:, 0::2] + pairs[:, 1::2]
    np.add(quads[:, 0], quads[:, 1], out=out)
    for i in range(n - n % 8, n):
        out += rows[:, i]
    out /= n


def _delta_on_events_batch(log_env: np.ndarray, threshold: float, rest: float) -> np.ndarray:
    """:func:`_delta_on_events` over ``(n_env, ...)`` levels: the same operations, all lanes of a step at once."""
    ref = np.full(log_env.shape[1:], rest)
    on = np.empty(log_env.shape)
    steps = np.empty(log_env.shape[1:])
    moved = np.empty(log_env.shape[1:])
    for t, level in enumerate(log_env):
        np.subtract(level, ref, out=steps)
        np.divide(steps, threshold, out=steps)
        np.trunc(steps, out=steps)  # signed whole thresholds crossed
        np.multiply(steps, threshold, out=moved)
        np.add(ref, moved, out=ref)
        np.maximum(steps, 0.0, out=on[t])
    return on.astype(np.int64)


def cochlea_spikes_reference(wave: np.ndarray, sample_rate: int, n_steps: int, n_channels: int = 64,
                             fmin: float = 100.0, fmax: float = 8000.0, *, threshold: float = 0.3, floor: float = 3e-4,
                             order: int = 2, envelope_hz: float = 50.0) -> np.ndarray:
    """:func:`cochlea_spikes` computed the straightforward way, one channel and one waveform at a time.

    Kept as the baseline that tests and ``scripts/bench_data.py`` compare the batched path against: both give the
    same bytes. The rest of this docstring is the pipeline's description (shared with :func:`cochlea_spikes`).

    An N-TIDIGITS-like spike view: ON-event counts per time bin and channel, uint8 ``(n_steps, n_channels)``.

    Pipeline (deterministic): resample to 22050 Hz; ``n_channels`` Butterworth band-pass filters with log-spaced
    edges from ``fmin`` to ``fmax`` (:func:`cochlea_band_edges`); half-wave rectification; a 1 ms block average
    to 1 kHz, then a 4th-order low-pass envelope; log compression ``log(envelope + floor)``; delta modulation from the resting level
    ``log(floor)``, one ON event each time the log envelope has risen by ``threshold`` since the last event. OFF
    events are computed (they move the reference down) but dropped: the CochleaAMS sensor of N-TIDIGITS gives one
    address per channel, and tonic's ``NTIDIGITS`` sensor size ``(64, 1, 1)`` has a single polarity. Events are
    binned into ``n_steps`` equal bins over the whole waveform (tonic's ``ToFrame`` bins between the first and the
    last event instead; our waveforms are trimmed to the speech); counts saturate at 255. Silence gives no events.
    A spoken digit makes roughly 500-1500 events with the defaults.

    Args:
        wave: 1-D float waveform.
        sample_rate: its rate in Hz.
        n_steps: number of time bins T.
        n_channels: number of frequency channels (64 in N-TIDIGITS).
        fmin: lower edge of the lowest channel, Hz.
        fmax: upper edge of the highest channel, Hz (below 10.5 kHz).
        threshold: delta-modulation step in natural-log units (0.3 = 35 % growth of the envelope).
        floor: absolute envelope floor (3e-4 is about -70 dB re full scale): quieter input makes fewer events, as
            in a real sensor, and fluctuations far below it make none.
        order: Butterworth prototype order; a band-pass has twice as many poles (2 -> 4th order).
        envelope_hz: envelope cutoff; each channel uses ``min(envelope_hz, lower band edge / 3)``. At 50 Hz the
            ripple of the voice's fundamental (100-250 Hz), which leaks into every channel above it, no longer
            triggers an event on each glottal cycle.
    """
    x = _mono(wave, sample_rate)
    _check_cochlea_args(n_steps, n_channels, fmin, fmax, threshold, floor, order, envelope_hz)
    x = _resample(x, sample_rate, COCHLEA_SAMPLE_RATE)
    bank = _filterbank(int(n_channels), float(fmin), float(fmax), int(order), float(envelope_hz))
    log_env = _log_envelopes(x, bank, floor)
    on = _delta_on_events(log_env, threshold, rest=math.log(floor))
    bins = (np.arange(on.shape[0]) * n_steps) // on.shape[0]  # equal-duration bins over the utterance
    counts = np.zeros((n_steps, n_channels), dtype=np.int64)
    np.add.at(counts, bins, on)
    return np.minimum(counts, 255).astype(np.uint8)


def _bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """``(out, in)`` weights of ``torch.nn.functional.interpolate(mode='bilinear', align_corners=False)`` on one
    axis (no antialiasing)."""
    src = np.maximum((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(int), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = np.clip(src - i0, 0.0, 1.0)
    weights = np.zeros((out_size, in_size))
    np.add.at(weights, (np.arange(out_size), i0), 1.0 - frac)
    np.add.at(weights, (np.arange(out_size), i1), frac)
    return weights


def fold_cochlea(counts: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """The reference's N-TIDIGITS input (§4.3): ``(T, C)`` counts -> ``(T, 1, √C, √C)`` -> bilinear to ``out_hw``.

    Channel ``c`` goes to row ``c // √C``, column ``c % √C`` (``Tensor.view``), so neighbouring pixels across a row
    boundary are 8 channels apart: the folding is not topographic, as in the reference. The upsampling matches
    ``F.interpolate(mode='bilinear', align_corners=False)``. Returns float32 ``(T, 1, H, W)``.
    """
    h, w = _check_hw(out_hw)
    c = np.asarray(counts)
    side = math.isqrt(c.shape[1]) if c.ndim == 2 else 0
    if c.ndim != 2 or side * side != c.shape[1] or side == 0:
        raise DatasetError(f"expected (T, C) counts with C a square number such as 64, got shape {c.shape}")
    grid = c.astype(np.float64).reshape(c.shape[0], side, side)  # (T, 8, 8)
    out = _bilinear_matrix(side, h) @ grid @ _bilinear_matrix(side, w).T  # (T, H, W)
    return out[:, None].astype(np.float32)  # (T, 1, H, W)
