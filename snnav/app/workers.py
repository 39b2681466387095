"""Worker processes that cannot outlive snnav: a ``spawn`` process pool for independent pieces of work.

`WorkerPool` wraps a ``concurrent.futures.ProcessPoolExecutor`` (used by ``snnav simulate --jobs N``):

* **spawn, not fork.** Forking a process that has started torch's (or OpenMP's) threads can deadlock the child; a
  spawned worker is a fresh interpreter that imports what it needs.
* **Threads per worker.** Each worker gets ``threads`` torch/BLAS threads (`threads_per_worker`: the CPUs this
  process may use, divided among the workers). OpenMP, MKL and OpenBLAS read their thread counts from the environment
  when they load, before any initializer could run, so ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
  ``OPENBLAS_NUM_THREADS`` are set in this process's environment while the workers are started (they start when
  work is submitted) and restored afterwards.
* **No orphans.** Every worker asks the kernel for ``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``,
  Linux; skipped where there is no ``prctl``) and exits at once if the parent is already gone; it ignores ``SIGINT``
  (a Ctrl-C reaches the whole foreground job: only snnav reacts, as for the Lava processes of
  ``hardware_sims.lava.guard``).
* **One error, no stragglers.** When the work fails (an error raised in a worker, in a task or in the initializer,
  is re-raised here with its type, so an ``SnnavError`` still prints as one line) or is interrupted, the work not yet started is cancelled, the workers
  still running are terminated, and the pool is shut down before the error goes on. A worker that dies (killed, out
  of memory) becomes a ``BackendError``.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from snnav.errors import BackendError

__all__ = ["WorkerPool", "available_cpus", "threads_per_worker", "THREAD_VARIABLES"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Environment variables that fix a worker's OpenMP (torch), MKL and OpenBLAS (numpy) thread counts."""

PR_SET_PDEATHSIG = 1


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int, total: int | None = None) -> int:
    """``max(1, total // workers)``: the CPUs (default `available_cpus`) shared among ``workers`` processes."""
    return max(1, (available_cpus() if total is None else int(total)) // max(1, int(workers)))


def _die_with_parent(parent_pid: int) -> None:
    """Ask for SIGKILL when the parent dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            prctl = None
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect: follow it
        os._exit(1)


# The error the initializer raised in this worker: the worker stays up and raises it for each task it is given, so
# it reaches the parent with its type (an initializer that raises would end the worker: a broken pool, no message).
_INIT_ERROR: list[Exception] = []


def _start_worker(parent_pid: int, initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    """Runs first in every worker: tie its life to the parent's, leave Ctrl-C to the parent, then ``initializer``."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        try:
            initializer(*initargs)
        except Exception as exc:  # noqa: BLE001  (re-raised in the parent by the first task: see _call)
            _INIT_ERROR.append(exc)


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """A task in a worker: ``fn(*args)``, or the initializer's error."""
    if _INIT_ERROR:
        raise _INIT_ERROR[0]
    return fn(*args)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class WorkerPool:
    """``workers`` spawned processes with ``threads`` threads each, every one set up by ``initializer(*initargs)``
    (module docstring). A context manager; `run` submits the work and yields the results as they finish.

    ``initializer``, ``initargs``, the function given to `run` and its arguments must be picklable (module-level
    functions, plain data).
    """

    def __init__(self, workers: int, threads: int, initializer: Callable[..., Any] | None = None,
                 initargs: Iterable[Any] = ()) -> None:
        if workers < 1 or threads < 1:
            raise ValueError(f"a pool needs workers >= 1 and threads >= 1; got {workers} and {threads}")
        self.workers, self.threads = int(workers), int(threads)
        self._initializer, self._initargs = initializer, tuple(initargs)
        self._executor: ProcessPoolExecutor | None = None
        self._futures: list[Future] = []

    def __enter__(self) -> WorkerPool:
        return self

    def run(self, fn: Callable[..., Any], items: Iterable[tuple]) -> Iterator[tuple[int, Any]]:
        """``(index, fn(*items[index]))`` for every item, in the order they finish.

        Raises:
            BackendError: a worker process died (killed, out of memory).
            Whatever ``fn`` raised in a worker, with its type.
        """
        if self._executor is not None:
            raise RuntimeError("WorkerPool.run can be called once")
        env = dict.fromkeys(THREAD_VARIABLES, str(self.threads))
        with _environment(env):  # the workers start on submit: they read the thread counts when they load
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                initargs=(os.getpid(), self._initializer, self._initargs))
            self._futures = [self._executor.submit(_call, fn, *args) for args in items]
        index = {f: i for i, f in enumerate(self._futures)}
        pending = set(self._futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=index.__getitem__):
                try:
                    value = f.result()
                except BrokenProcessPool as exc:
                    raise BackendError(f"a worker process died while running ({exc}); it may have been killed or "
                                       "run out of memory: use fewer jobs (--jobs)") from exc
                yield index[f], value

    def close(self, failed: bool) -> None:
        """Shut the pool down; when ``failed``, cancel what has not started and terminate the running workers."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if failed:
            for f in self._futures:
                f.cancel()
            # stdlib ProcessPoolExecutor has no public way to stop a running task before Python 3.14
            # (terminate_workers); its worker processes are ours, started by this pool
            for process in list(getattr(executor, "_processes", {}).values()):
                with contextlib.suppress(OSError, AttributeError, ValueError):
                    process.terminate()
        executor.shutdown(wait=True, cancel_futures=failed)

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)
