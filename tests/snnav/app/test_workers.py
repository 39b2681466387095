"""`snnav.app.workers.WorkerPool`: spawned workers with their thread counts, errors with their type, no survivors.

The tasks are module-level functions of this file: the spawned workers import it (they get this process's sys.path).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snnav.app.workers import THREAD_VARIABLES, WorkerPool, threads_per_worker
from snnav.errors import ConfigError

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def thread_settings(_: int) -> tuple[int, dict[str, str | None]]:
    return os.getpid(), {k: os.environ.get(k) for k in THREAD_VARIABLES}


def sleep_or_fail(i: int) -> int:
    if i == 0:
        time.sleep(120)
    time.sleep(0.5)
    raise ConfigError(f"task {i} refused")


def refuse(*_) -> None:
    raise ConfigError("the initializer refused")


def write_pid_and_sleep(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"  # a zombie has exited (its new parent may not reap it at once)


def test_threads_per_worker_shares_the_cpus():
    assert threads_per_worker(2, total=2) == 1 and threads_per_worker(2, total=8) == 4
    assert threads_per_worker(3, total=2) == 1  # never 0


def test_workers_get_their_thread_counts_and_the_parent_keeps_its_own():
    before = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    with WorkerPool(2, 3) as pool:
        results = dict(pool.run(thread_settings, [(i,) for i in range(4)]))
    assert sorted(results) == [0, 1, 2, 3]
    assert all(env == dict.fromkeys(THREAD_VARIABLES, "3") for _, env in results.values())
    assert os.getpid() not in {pid for pid, _ in results.values()}
    assert {k: os.environ.get(k) for k in THREAD_VARIABLES} == before
    assert multiprocessing.active_children() == []


def test_an_error_in_one_worker_stops_the_others_and_keeps_its_type():
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="task 1 refused"), WorkerPool(2, 1) as pool:
        list(pool.run(sleep_or_fail, [(0,), (1,)]))
    assert time.perf_counter() - t0 < 60  # task 0 sleeps 120 s: it was terminated, not waited for
    assert multiprocessing.active_children() == []


def test_an_initializer_error_reaches_the_caller_with_its_type():
    with pytest.raises(ConfigError, match="the initializer refused"), WorkerPool(1, 1, refuse, (1,)) as pool:
        list(pool.run(thread_settings, [(0,)]))
    assert multiprocessing.active_children() == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_dies_with_its_parent(tmp_path):
    pid_file = tmp_path / "worker.pid"
    script = (f"import sys; sys.path[:0] = [{str(REPO)!r}, {str(HERE)!r}]\n"
              "from snnav.app.workers import WorkerPool\n"
              "from test_workers import write_pid_and_sleep\n"
              "if __name__ == '__main__':\n"
              "    with WorkerPool(1, 1) as pool:\n"
              f"        list(pool.run(write_pid_and_sleep, [({str(pid_file)!r},)]))\n")
    (tmp_path / "parent.py").write_text(script)
    parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert parent.poll() is None, parent.stderr.read().decode()
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        assert not _gone(worker)
    finally:
        parent.send_signal(signal.SIGKILL)  # no clean-up code of the parent runs
        parent.wait()
        parent.stderr.close()
    deadline = time.monotonic() + 10
    while not _gone(worker):
        assert time.monotonic() < deadline, f"worker {worker} outlived its parent"
        time.sleep(0.05)
