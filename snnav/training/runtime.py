"""Process settings that make CPU training and inference fast, applied by ``snnav train``, ``simulate`` and ``run``.

Two settings, both process-wide, both measured on the UrbanSound8K-AV config (``results/bench_train_cpu.md``):

* **glibc malloc keeps large blocks.** By default glibc serves every block above its mmap threshold (at most 32 MiB
  with the dynamic threshold) with a fresh ``mmap`` and unmaps it on free, so each 33 MB activation of the first conv
  stage is zero-filled page by page on every allocation (~88k page faults and ~0.2 s of kernel time per train step
  at batch 16). ``mallopt(M_MMAP_THRESHOLD)`` and ``mallopt(M_TRIM_THRESHOLD)`` raised to 1 GiB keep such blocks on
  the heap and reuse them. Cost: memory freed by the process is returned to the system less eagerly (the peak RSS
  is unchanged or lower in the benchmark; a long-lived process keeps its high-water mark).
* **Denormal floats flush to zero** (``torch.set_flush_denormal``, x86 FTZ/DAZ). An untrained spiking model's
  surrogate gradients underflow into the subnormal range, where x86 arithmetic is ~100x slower; with FTZ/DAZ they are
  zero. Values below ~1.2e-38 (float32) / ~2.2e-308 (float64) become 0; nothing else changes. Every equality test
  between the optimized and the straightforward model path holds with the flag on as well as off, but a run with the
  setting and a run without it can differ in those tiny values, so exact resume needs the same setting.

Both must be applied early: malloc's thresholds before the big allocations, FTZ/DAZ before torch starts its OpenMP
worker threads (new threads copy the floating-point mode of the thread that creates them). The CLI commands call
:func:`apply_runtime_settings` first thing; ``--no-fast-runtime`` or ``SNNAV_FAST_RUNTIME=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from dataclasses import asdict, dataclass

__all__ = ["ENV_VAR", "RuntimeSettings", "fast_runtime_enabled", "apply_runtime_settings", "applied_settings",
           "tune_glibc_malloc"]

logger = logging.getLogger(__name__)

ENV_VAR = "SNNAV_FAST_RUNTIME"
"""``0``/``false``/``no``/``off`` turns the settings off for every command (like ``--no-fast-runtime``)."""

MALLOC_THRESHOLD = 1 << 30
# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_OFF = ("0", "false", "no", "off")


@dataclass(frozen=True)
class RuntimeSettings:
    """What :func:`apply_runtime_settings` did.

    Attributes:
        requested: whether the settings were asked for (not turned off by the flag or ``SNNAV_FAST_RUNTIME``).
        malloc_tuned: glibc's mmap and trim thresholds were raised (False off glibc, or when not requested).
        flush_denormal: FTZ/DAZ is on for the calling thread (False on CPUs without it, or when not requested).
        note: why something was not applied (empty when everything requested was applied).
    """

    requested: bool
    malloc_tuned: bool
    flush_denormal: bool
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if not self.requested:
            return f"fast runtime off ({self.note})" if self.note else "fast runtime off"
        parts = [f"malloc thresholds {'raised' if self.malloc_tuned else 'unchanged'}",
                 f"denormals {'flushed to zero' if self.flush_denormal else 'kept'}"]
        return "fast runtime: " + ", ".join(parts) + (f" ({self.note})" if self.note else "")


_APPLIED: RuntimeSettings | None = None


def fast_runtime_enabled(flag: bool | None = None) -> tuple[bool, str]:
    """``(enabled, why not)``: ``flag`` (False from ``--no-fast-runtime``) wins, then ``SNNAV_FAST_RUNTIME``."""
    if flag is False:
        return False, "--no-fast-runtime"
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value in _OFF:
        return False, f"{ENV_VAR}={os.environ[ENV_VAR]}"
    return True, ""


def tune_glibc_malloc(threshold: int = MALLOC_THRESHOLD) -> bool:
    """Serve allocations up to ``threshold`` bytes from the heap and keep freed memory there (glibc only).

    Returns False where glibc is not the allocator or refuses a value (the trim threshold may then be raised alone,
    which only keeps freed memory longer).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        gnu_get_libc_version = libc.gnu_get_libc_version  # glibc only: musl has mallopt as a no-op stub
    except (OSError, AttributeError):
        return False
    del gnu_get_libc_version
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # Trim first: the mmap threshold only pays if freed heap memory stays there.
    if not mallopt(_M_TRIM_THRESHOLD, threshold):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


def apply_runtime_settings(enabled: bool | None = None) -> RuntimeSettings:
    """Apply the fast-runtime process settings (module docstring) unless turned off; return what was applied.

    Args:
        enabled: ``False`` turns them off (the CLI's ``--no-fast-runtime``); ``None`` or ``True`` applies them unless
            ``SNNAV_FAST_RUNTIME`` is ``0``/``false``/``no``/``off``.

    Call it before the first large allocation and before torch's first multi-threaded operation. Calling it again
    is harmless (the same settings are set again). Settings already applied are not undone by a later call with
    ``enabled=False``: they are process-wide, and undoing malloc's thresholds midway gains nothing.
    """
    global _APPLIED
    requested, why = fast_runtime_enabled(enabled)
    if not requested:
        settings = RuntimeSettings(False, False, False, why)
        if _APPLIED is None or not _APPLIED.requested:
            _APPLIED = settings
        return settings
    notes = []
    malloc_tuned = tune_glibc_malloc()
    if not malloc_tuned:
        notes.append("malloc: not glibc")
    import torch  # noqa: PLC0415  (torch: after the malloc thresholds, which must precede its allocations)

    flushed = bool(torch.set_flush_denormal(True))
    if not flushed:
        notes.append("this CPU cannot flush denormals")
    settings = RuntimeSettings(True, malloc_tuned, flushed, "; ".join(notes))
    _APPLIED = settings
    logger.info("%s", settings.describe())
    return settings


def applied_settings() -> RuntimeSettings | None:
    """What the last :func:`apply_runtime_settings` call of this process applied (None: never called)."""
    return _APPLIED
