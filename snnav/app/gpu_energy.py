"""GPU wall time and energy of one inference call, measured with NVML's energy counter.

A measurement is the difference of a cumulative energy counter around a window of repeated calls::

    sync; wait for a counter refresh -> (E0, t0)
    repeat fn() until clock - t0 >= min_window_s; sync -> t1
    wait for the next counter refresh -> (E1, t1')          the GPU is idle from t1 to t1'
    window   = t1 - t0
    E        = (E1 - E0) - P_idle (t1' - t1)                 J, the whole board over the window
    P_idle   = the same counter between two refreshes >= seconds apart, with nothing running
    per sample:  window / n,  E / n,  dynamic (E - P_idle window) / n,    n = calls * samples per call

The counter is NVML's ``nvmlDeviceGetTotalEnergyConsumption`` (millijoules since the driver loaded; Volta and
newer), read through ``pynvml`` from the maintained ``nvidia-ml-py`` package (``pip install 'snnav[gpu]'``), which
is imported only when a counter is opened. The driver refreshes that counter only every ~20-100 ms (every 100 ms
on the H100 with driver 580 measured here), so a read between refreshes returns the energy as of the last refresh:
read naively, each end of a 2 s window is off by up to 5 %. Both ends are therefore taken at a refresh, found by
polling the counter every :data:`POLL_S` (a host-side read that adds no GPU work), and the idle tail between the end
of the work and the closing refresh is charged at idle power. Windows are still at least :data:`MIN_WINDOW_S` long
(docs/deployment.md §4.6), and every record carries the refresh interval seen and the timing uncertainty.
``torch.cuda.synchronize`` runs before each reading: kernels are queued asynchronously, and a reading taken before
the queue drains would charge their energy to the next window.

Anything that exposes ``read_mj()`` is an :class:`EnergyCounter`; tests use a deterministic fake with a fake clock,
since what they check is the arithmetic. Without a GPU, :func:`gpu_available` says why, and the energy report falls
back to the 45 nm estimate (``hardware_sims/cost/energy.py``), labelled as an estimate.
"""

from __future__ import annotations

import logging
import platform
import socket
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch

from snnav.errors import BackendError
from snnav.records import Record

__all__ = [
    "MIN_WINDOW_S",
    "POLL_S",
    "METHOD",
    "COUNTER_CAVEAT",
    "GPUUnavailableError",
    "EnergyCounter",
    "NVMLEnergyCounter",
    "IdlePower",
    "GPUMeasurement",
    "GPUInfo",
    "gpu_available",
    "gpu_info",
    "measure_idle_power",
    "measure_inference",
]

log = logging.getLogger(__name__)

#: Shortest window: the NVML counter refreshes every ~20-100 ms (PETSc docs, docs/deployment.md §4.6).
MIN_WINDOW_S = 1.0
#: Polling period of the counter while waiting for a refresh (the timing resolution of a window's ends).
POLL_S = 0.0005
#: Longest wait for a refresh before reading without one (the counter is then treated as not refreshing).
REFRESH_TIMEOUT_S = 1.0
#: How every figure from this module is labelled in reports.
METHOD = "measured (NVML energy counter)"
COUNTER_CAVEAT = (
    "NVML's total-energy counter (nvmlDeviceGetTotalEnergyConsumption) counts millijoules for the whole board (every "
    "process on the GPU, not this one alone) and is refreshed by the driver every ~20-100 ms. Both ends of each "
    "window are taken at a refresh (aligned = true), the idle tail up to the closing refresh charged at idle power; "
    "relative_uncertainty is the timing error of the two ends over the window (2 * poll / window when aligned, "
    "2 * counter_refresh_s / window otherwise). The accuracy of the board's power sensor itself is not included. "
    "Dynamic energy subtracts idle power measured with the CUDA context open and nothing running; it can come out "
    "slightly negative for very light loads."
)
_PIP_HINT = "pip install 'snnav[gpu]' (nvidia-ml-py)"


class GPUUnavailableError(BackendError):
    """No GPU measurement is possible here (no CUDA torch, no NVML, or no energy counter)."""


class EnergyCounter(Protocol):
    """A cumulative energy counter: ``read_mj()`` returns millijoules since some fixed origin, non-decreasing."""

    def read_mj(self) -> float: ...


def _nvml():
    """``pynvml`` (nvidia-ml-py), imported on first use so snnav runs without it."""
    try:
        import pynvml  # noqa: PLC0415  (nvidia-ml-py: optional, snnav[gpu])
    except ImportError as exc:
        raise GPUUnavailableError(f"NVML bindings are not installed: {_PIP_HINT}") from exc
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)  # older bindings return bytes


def _nvml_handle(pynvml, device_index: int):
    """The NVML handle of CUDA device ``device_index``, matched by UUID (CUDA and NVML may number GPUs differently,
    e.g. under ``CUDA_VISIBLE_DEVICES``); by index when torch does not report the UUID."""

    try:
        uuid = str(torch.cuda.get_device_properties(device_index).uuid)
        return pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}")
    except (AttributeError, pynvml.NVMLError) as exc:
        log.info("matching CUDA device %d to NVML by index (%s)", device_index, exc)
        return pynvml.nvmlDeviceGetHandleByIndex(device_index)


class NVMLEnergyCounter:
    """NVML's total-energy counter of CUDA device ``device_index``; a context manager (NVML init/shutdown).

    Raises:
        GPUUnavailableError: no ``pynvml``, NVML does not start, or the GPU has no energy counter (pre-Volta).
    """

    def __init__(self, device_index: int = 0):
        self._nvml = _nvml()
        try:
            self._nvml.nvmlInit()
        except self._nvml.NVMLError as exc:
            raise GPUUnavailableError(f"NVML could not be initialised ({_text(exc)}); is the NVIDIA driver loaded?"
                                      ) from exc
        self._open = True
        try:
            self.handle = _nvml_handle(self._nvml, device_index)
            self.read_mj()
        except self._nvml.NVMLError as exc:
            self.close()
            raise GPUUnavailableError(f"GPU {device_index} has no readable NVML energy counter ({_text(exc)}); "
                                      "it needs a Volta or newer GPU") from exc
        self.device_index = device_index

    def read_mj(self) -> float:
        return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def close(self) -> None:
        if self._open:
            self._open = False
            self._nvml.nvmlShutdown()

    def __enter__(self) -> "NVMLEnergyCounter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def gpu_available(device_index: int = 0) -> tuple[bool, str]:
    """``(True, "")`` if CUDA device ``device_index`` can be measured, else ``(False, why)``."""

    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is a CPU-only build (no CUDA)"
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} has CUDA {torch.version.cuda} but sees no CUDA GPU"
    if not 0 <= device_index < torch.cuda.device_count():
        return False, f"no CUDA device {device_index}: torch sees {torch.cuda.device_count()}"
    try:
        NVMLEnergyCounter(device_index).close()
    except GPUUnavailableError as exc:
        return False, str(exc)
    return True, ""


@dataclass(frozen=True)
class IdlePower(Record):
    """Board power with nothing running, from the energy counter over ``window_s``.

    Attributes:
        power_w: mean power over the window.
        energy_j: counter difference over the window.
        window_s: window length.
        counter_refresh_s: median time between refreshes of the counter (None: fewer than 3 refreshes seen).
        device_index: CUDA device.
        method: :data:`METHOD`.
    """

    power_w: float
    energy_j: float
    window_s: float
    counter_refresh_s: float | None
    device_index: int
    method: str = METHOD


@dataclass(frozen=True)
class GPUMeasurement(Record):
    """Wall time and energy of ``calls`` calls of one function, each processing ``samples_per_call`` samples.

    Attributes:
        samples_per_call: samples one call processes (the batch size).
        calls: calls inside the window (after ``warmup`` untimed calls).
        warmup: untimed calls before the window.
        window_s: window length (>= the requested minimum).
        energy_j: energy over the window (whole board): counter difference less the idle tail (module docstring).
        idle_power_w: the idle power subtracted for the dynamic energy.
        wall_s_per_sample: ``window_s / (calls * samples_per_call)``.
        samples_per_s: the inverse.
        mean_power_w: ``energy_j / window_s``.
        energy_j_per_sample: ``energy_j / samples``.
        dynamic_energy_j_per_sample: ``(energy_j - idle_power_w * window_s) / samples``.
        aligned: both ends of the window were taken at a counter refresh.
        counter_refresh_s: the counter's refresh interval (from the idle measurement; None if unknown).
        relative_uncertainty: timing error of the window's ends over the window: ``2 * poll / window_s`` when
            aligned, else ``2 * counter_refresh_s / window_s`` (None if that is unknown).
        device_index: CUDA device.
        method: :data:`METHOD`.
        caveat: :data:`COUNTER_CAVEAT`.
    """

    samples_per_call: int
    calls: int
    warmup: int
    window_s: float
    energy_j: float
    idle_power_w: float
    wall_s_per_sample: float
    samples_per_s: float
    mean_power_w: float
    energy_j_per_sample: float
    dynamic_energy_j_per_sample: float
    aligned: bool
    counter_refresh_s: float | None
    relative_uncertainty: float | None
    device_index: int
    method: str = METHOD
    caveat: str = COUNTER_CAVEAT

    @property
    def samples(self) -> int:
        return self.calls * self.samples_per_call


@dataclass(frozen=True)
class GPUInfo(Record):
    """The hardware and software a measurement ran on."""

    gpu_name: str
    gpu_uuid: str
    power_limit_w: float | None
    driver_version: str
    nvml_version: str
    cuda_version: str
    torch_version: str
    python_version: str
    device_index: int
    host_name: str


def gpu_info(device_index: int = 0) -> GPUInfo:
    """Describe CUDA device ``device_index`` (raises :class:`GPUUnavailableError` without NVML)."""

    with NVMLEnergyCounter(device_index) as counter:
        nv, handle = counter._nvml, counter.handle
        try:
            limit = nv.nvmlDeviceGetEnforcedPowerLimit(handle) / 1e3  # mW
        except nv.NVMLError:
            limit = None
        return GPUInfo(
            gpu_name=_text(nv.nvmlDeviceGetName(handle)),
            gpu_uuid=_text(nv.nvmlDeviceGetUUID(handle)),
            power_limit_w=limit,
            driver_version=_text(nv.nvmlSystemGetDriverVersion()),
            nvml_version=_text(nv.nvmlSystemGetNVMLVersion()),
            cuda_version=str(torch.version.cuda),
            torch_version=torch.__version__,
            python_version=platform.python_version(),
            device_index=device_index,
            host_name=socket.gethostname(),
        )


def _check_window(seconds: float) -> None:
    if not seconds >= MIN_WINDOW_S:
        raise ValueError(f"the measurement window must be >= {MIN_WINDOW_S} s (NVML's energy counter refreshes only "
                         f"every ~20-100 ms); got {seconds!r}")


def _cuda_sync(device_index: int) -> Callable[[], None]:
    return lambda: torch.cuda.synchronize(device_index)


def _at_refresh(counter: EnergyCounter, clock: Callable[[], float], sleep: Callable[[float], None],
                poll_s: float) -> tuple[float, float, bool]:
    """``(energy_mj, time, aligned)`` at the counter's next refresh: poll until the value changes.

    Not aligned when the counter does not change within :data:`REFRESH_TIMEOUT_S` (then the last value and time).
    """
    first, start = counter.read_mj(), clock()
    while True:
        value, now = counter.read_mj(), clock()
        if value != first:
            return value, now, True
        if now - start >= REFRESH_TIMEOUT_S:
            log.warning("the energy counter did not change in %.1f s; reading it without alignment", REFRESH_TIMEOUT_S)
            return value, now, False
        sleep(poll_s)


def _check_monotonic(e0: float, e1: float) -> None:
    if e1 < e0:
        raise GPUUnavailableError(f"the energy counter went backwards ({e0} -> {e1} mJ): the driver was reloaded "
                                  "during the window; measure again")


def measure_idle_power(device_index: int = 0, seconds: float = 2.0, *, counter: EnergyCounter | None = None,
                       clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep,
                       synchronize: Callable[[], None] | None = None, poll_s: float = POLL_S) -> IdlePower:
    """Mean board power over at least ``seconds`` with nothing queued, and the counter's refresh interval.

    The window runs from one counter refresh to the first refresh ``seconds`` later, so it holds whole refresh
    intervals; the counter is polled every ``poll_s`` throughout to time its refreshes.

    Args:
        device_index: CUDA device.
        seconds: window, at least :data:`MIN_WINDOW_S`.
        counter: the energy counter (default: NVML's for ``device_index``).
        clock, sleep, synchronize: injected for tests (default: ``time.perf_counter``, ``time.sleep``,
            ``torch.cuda.synchronize(device_index)``).
        poll_s: polling period.
    """
    _check_window(seconds)
    if counter is None:
        with NVMLEnergyCounter(device_index) as nvml:
            return measure_idle_power(device_index, seconds, counter=nvml, clock=clock, sleep=sleep,
                                      synchronize=synchronize, poll_s=poll_s)
    (synchronize or _cuda_sync(device_index))()
    e0, t0, aligned = _at_refresh(counter, clock, sleep, poll_s)
    last, refreshes = e0, [t0] if aligned else []
    while clock() - t0 < seconds:
        sleep(poll_s)
        value = counter.read_mj()
        if value != last:
            last = value
            refreshes.append(clock())
    e1, t1, aligned = _at_refresh(counter, clock, sleep, poll_s)
    refreshes += [t1] if aligned else []
    _check_monotonic(e0, e1)
    gaps = [b - a for a, b in zip(refreshes, refreshes[1:])]
    window, energy = t1 - t0, (e1 - e0) / 1e3
    return IdlePower(power_w=energy / window, energy_j=energy, window_s=window,
                     counter_refresh_s=statistics.median(gaps) if len(gaps) >= 2 else None, device_index=device_index)


def measure_inference(fn: Callable[[], Any], n_samples_per_call: int, *, min_window_s: float = MIN_WINDOW_S,
                      warmup: int = 3, device_index: int = 0, idle: IdlePower | None = None,
                      counter: EnergyCounter | None = None, clock: Callable[[], float] = time.perf_counter,
                      synchronize: Callable[[], None] | None = None, sleep: Callable[[float], None] = time.sleep,
                      poll_s: float = POLL_S) -> GPUMeasurement:
    """Time and energy per sample of ``fn`` (see the module docstring for the window and the arithmetic).

    Args:
        fn: one inference call on the GPU (its inputs already there); its result is discarded.
        n_samples_per_call: samples one call processes (the batch size).
        min_window_s: the window lasts at least this long (>= :data:`MIN_WINDOW_S`); calls are whole.
        warmup: untimed calls first (allocator, cuDNN/cuBLAS heuristics, clocks ramping up).
        device_index: CUDA device.
        idle: idle power to subtract (default: measured first, over ``max(min_window_s, 1)`` s).
        counter, clock, synchronize, sleep: injected for tests (defaults: NVML, ``time.perf_counter``,
            ``torch.cuda.synchronize(device_index)``, ``time.sleep``).
        poll_s: polling period of the counter while waiting for a refresh.

    Raises:
        ValueError: ``n_samples_per_call < 1``, ``warmup < 0`` or a window shorter than :data:`MIN_WINDOW_S`.
        GPUUnavailableError: no NVML counter (when none is given), or the counter went backwards.
    """
    if isinstance(n_samples_per_call, bool) or not isinstance(n_samples_per_call, int) or n_samples_per_call < 1:
        raise ValueError(f"n_samples_per_call must be an int >= 1; got {n_samples_per_call!r}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0 calls; got {warmup!r}")
    _check_window(min_window_s)
    if counter is None:
        with NVMLEnergyCounter(device_index) as nvml:
            return measure_inference(fn, n_samples_per_call, min_window_s=min_window_s, warmup=warmup,
                                     device_index=device_index, idle=idle, counter=nvml, clock=clock,
                                     synchronize=synchronize, sleep=sleep, poll_s=poll_s)
    sync = synchronize or _cuda_sync(device_index)
    if idle is None:
        idle = measure_idle_power(device_index, max(min_window_s, MIN_WINDOW_S), counter=counter, clock=clock,
                                  sleep=sleep, synchronize=sync, poll_s=poll_s)
    for _ in range(warmup):
        fn()
    sync()
    e0, t0, aligned_start = _at_refresh(counter, clock, sleep, poll_s)
    calls = 0
    while calls == 0 or clock() - t0 < min_window_s:  # launches are asynchronous: the sync below closes the window
        fn()
        calls += 1
    sync()
    t1 = clock()
    e1, t_refresh, aligned_end = _at_refresh(counter, clock, sleep, poll_s)
    _check_monotonic(e0, e1)
    aligned = aligned_start and aligned_end
    window, samples = t1 - t0, calls * n_samples_per_call
    energy = (e1 - e0) / 1e3 - idle.power_w * (t_refresh - t1)  # the idle tail after the work, at idle power
    refresh = poll_s if aligned else idle.counter_refresh_s
    return GPUMeasurement(
        samples_per_call=n_samples_per_call, calls=calls, warmup=warmup, window_s=window, energy_j=energy,
        idle_power_w=idle.power_w, wall_s_per_sample=window / samples, samples_per_s=samples / window,
        mean_power_w=energy / window, energy_j_per_sample=energy / samples,
        dynamic_energy_j_per_sample=(energy - idle.power_w * window) / samples, aligned=aligned,
        counter_refresh_s=idle.counter_refresh_s,
        relative_uncertainty=None if refresh is None else 2 * refresh / window, device_index=device_index,
    )
