"""A Lava run that cannot leak: its processes, shared memory and files go away however the run ends.

Lava forks one OS process per Lava process (plus a shared-memory manager) and talks to them through POSIX shared
memory. ``run_lava`` stops them on every exit it sees (`hardware_sims.lava.run`); `RunGuard` covers the exits it
cannot see — ``kill -9`` of snnav, a crash of the interpreter — and Ctrl-C typed at a terminal:

* **Every process Lava forks during the run** (through ``multiprocessing``'s after-fork hook) asks the kernel for
  ``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``; Linux), ignores ``SIGINT`` (a Ctrl-C reaches the
  whole foreground job; only snnav itself reacts, and stops Lava: one line, not one traceback per worker), records
  its pid and start time in the run's folder. The shared-memory segments created during the run (Lava's manager
  client creates them in snnav's process) are named ``/dev/shm/snnav_<pid>_<token>_<hex>`` (snnav's pid and the
  run's token) instead of Python's ``psm_<hex>``, and are kept from Python's resource tracker (snnav removes them).
* **A watchdog** (a small stdlib-only Python process in its own session, so a Ctrl-C does not reach it) reads a
  pipe from snnav; when the pipe closes — snnav returned, failed or was killed — it kills the recorded processes
  still alive, unlinks the run's segments and removes the run's folder, then exits. After a normal exit there is
  nothing left for it to do.
* **At start-up**, `clean_stale_runs` removes what an earlier run left if even the watchdog died: only folders
  named ``snnav-lava-<pid>-<token>`` in the temp folder whose owner (pid *and* start time, recorded in the folder)
  is gone, the processes recorded in them (pid and start time must match), and the segments with their prefix.
  Nothing that snnav did not record is touched.

The run's folder (``RunGuard.workdir``) also holds the memory-mapped input and record files of the run.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import logging
import multiprocessing.process
import multiprocessing.resource_tracker as resource_tracker
import multiprocessing.shared_memory
import multiprocessing.util
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["RunGuard", "clean_stale_runs", "DIR_PREFIX", "SHM_DIR"]

logger = logging.getLogger(__name__)

DIR_PREFIX = "snnav-lava-"
"""Name prefix of a run's folder in the temp folder: ``snnav-lava-<pid>-<token>``."""

SHM_DIR = "/dev/shm"
PR_SET_PDEATHSIG = 1
OWNER_FILE = "owner"
PIDS_FILE = "pids"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot, from ``/proc``), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    state, start = fields[0], fields[19]
    return None if state in ("Z", "X") else start


def _alive(pid: int, start: str) -> bool:
    return _start_time(pid) == start


def _shm_prefix(pid: int, token: str) -> str:
    return f"snnav_{pid}_{token}_"


def _remove_segments(prefix: str) -> int:
    removed = 0
    for path in glob.glob(os.path.join(SHM_DIR, glob.escape(prefix) + "*")):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed += 1
    return removed


def _recorded(folder: Path) -> list[tuple[int, str]]:
    try:
        lines = (folder / PIDS_FILE).read_text().split("\n")
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            out.append((int(parts[0]), parts[1]))
    return out


def _kill_recorded(folder: Path) -> int:
    killed = 0
    for pid, start in _recorded(folder):
        if _alive(pid, start):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


# The watchdog's program: stdlib only, run with ``python -c`` (no snnav import, so it starts in ~20 ms). argv:
# the run's folder, its shared-memory prefix. It waits for its stdin (a pipe from snnav) to close, then cleans.
_WATCHDOG = r"""
import glob, os, shutil, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
folder, prefix = sys.argv[1], sys.argv[2]
while sys.stdin.buffer.read(4096):
    pass
def start(pid):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else fields[19]
try:
    lines = open(os.path.join(folder, "pids")).read().split("\n")
except OSError:
    lines = []
for line in lines:
    parts = line.split()
    if len(parts) == 2 and parts[0].isdigit() and start(int(parts[0])) == parts[1]:
        try:
            os.kill(int(parts[0]), signal.SIGKILL)
        except OSError:
            pass
for path in glob.glob(os.path.join("/dev/shm", glob.escape(prefix) + "*")):
    try:
        os.unlink(path)
    except OSError:
        pass
shutil.rmtree(folder, ignore_errors=True)
"""


def _in_forked_child(guard: RunGuard) -> None:
    """Runs in every process ``multiprocessing`` starts while the guard is active (Lava's workers, its manager)."""
    if guard.watchdog_fd is not None:
        with contextlib.suppress(OSError):
            os.close(guard.watchdog_fd)  # only snnav itself may keep the watchdog's pipe open
    if guard.libc is not None:
        guard.libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        parent = multiprocessing.process.parent_process()
        if parent is not None and os.getppid() != parent.pid:  # the parent died before prctl: follow it
            os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    start = _start_time(os.getpid()) or "0"
    with contextlib.suppress(OSError):
        fd = os.open(guard.workdir / PIDS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{os.getpid()} {start}\n".encode())
        finally:
            os.close(fd)


class RunGuard:
    """The run's folder, the after-fork hook and the watchdog; a context manager (`__enter__` starts them).

    On exit (any exit) it kills the recorded processes still alive, unlinks the run's segments, removes the
    folder, and lets the watchdog go.
    """

    def __init__(self) -> None:
        self.workdir: Path | None = None
        self.shm_prefix = ""
        self.watchdog_fd: int | None = None
        self.libc = None
        self._watchdog: subprocess.Popen | None = None
        self._make_filename = None
        self._tracker = None

    def __enter__(self) -> RunGuard:
        base = tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-")
        self.workdir = Path(base)
        token = self.workdir.name.rsplit("-", 1)[1]
        self.shm_prefix = _shm_prefix(os.getpid(), token)
        (self.workdir / OWNER_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid()) or '0'}\n")
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                self.libc = ctypes.CDLL(None, use_errno=True)
                self.libc.prctl  # noqa: B018  (present on glibc and musl)
        try:
            self._watchdog = subprocess.Popen([sys.executable, "-I", "-c", _WATCHDOG, str(self.workdir), self.shm_prefix],
                                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
            self.watchdog_fd = self._watchdog.stdin.fileno()
        except OSError as exc:  # no watchdog: the parent-death signal and the start-up clean-up still hold
            logger.debug("no watchdog for the Lava run: %s", exc)
        multiprocessing.util.register_after_fork(self, _in_forked_child)
        # Lava's segments are created in this process (the manager's client names them): give them the run's prefix
        prefix = self.shm_prefix
        self._make_filename = multiprocessing.shared_memory._make_filename
        multiprocessing.shared_memory._make_filename = lambda: "/" + prefix + secrets.token_hex(8)
        # ...and are not handed to Python's resource tracker: the guard, the watchdog and `clean_stale_runs` remove
        # them. (After kill -9 the tracker would try to unlink each segment again, printing one warning per segment
        # — about a thousand lines for S-CMRL — onto the terminal after snnav is gone.)
        self._tracker = (resource_tracker.register, resource_tracker.unregister)
        register, unregister = self._tracker

        def skip_ours(call):
            return lambda name, rtype: None if name.lstrip("/").startswith(prefix) else call(name, rtype)

        resource_tracker.register, resource_tracker.unregister = skip_ours(register), skip_ours(unregister)
        return self

    def release(self) -> None:
        """Kill what is left of the run, unlink its segments, remove its folder; let the watchdog go. Idempotent."""
        if self._make_filename is not None:
            multiprocessing.shared_memory._make_filename = self._make_filename
            self._make_filename = None
        if self._tracker is not None:
            resource_tracker.register, resource_tracker.unregister = self._tracker
            self._tracker = None
        if self.workdir is not None:
            _kill_recorded(self.workdir)
            _remove_segments(self.shm_prefix)
            shutil.rmtree(self.workdir, ignore_errors=True)
        for key, value in list(multiprocessing.util._afterfork_registry.items()):
            if value is self:
                multiprocessing.util._afterfork_registry.pop(key, None)
        if self._watchdog is not None:
            with contextlib.suppress(OSError):
                self._watchdog.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watchdog.wait(5)
            self._watchdog, self.watchdog_fd = None, None

    def __exit__(self, *exc) -> None:
        self.release()


def clean_stale_runs(tmpdir: str | os.PathLike | None = None) -> str | None:
    """Remove what earlier snnav Lava runs whose owner is gone left behind; one line saying what, or None.

    Only ``snnav-lava-<pid>-<token>`` folders are considered, and only when their owner (the pid and start time
    recorded in ``owner``, or the pid of the name if that record is missing) is no longer running.
    """
    root = Path(tmpdir or tempfile.gettempdir())
    runs = processes = segments = 0
    for folder in root.glob(f"{DIR_PREFIX}*-*"):
        pid_text, _, token = folder.name[len(DIR_PREFIX) :].partition("-")
        if not (pid_text.isdigit() and token and folder.is_dir()):
            continue
        pid = int(pid_text)
        try:
            owner_pid, owner_start = (folder / OWNER_FILE).read_text().split()
            if int(owner_pid) != pid or _alive(pid, owner_start):
                continue
        except (OSError, ValueError):
            if _start_time(pid) is not None:  # no record yet and the pid is in use: leave it
                continue
        processes += _kill_recorded(folder)
        segments += _remove_segments(_shm_prefix(pid, token))
        shutil.rmtree(folder, ignore_errors=True)
        runs += 1
    if not runs:
        return None
    return (f"cleaned up after {runs} earlier Lava run(s) that were killed: {processes} process(es) stopped, "
            f"{segments} shared-memory segment(s) and {runs} temp folder(s) removed")
