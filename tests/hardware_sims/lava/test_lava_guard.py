"""A Lava run leaves nothing behind however it ends: ``kill -9`` of snnav, Ctrl-C, and leftovers of earlier runs.

The kill test runs a real Lava run (a small graph, ~5000 steps) in a child Python, kills it with SIGKILL while Lava
runs, and checks that every process it started is gone, and so are its shared-memory segments and temp folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hardware_sims.lava import guard as guard_module
from hardware_sims.lava.guard import RunGuard, clean_stale_runs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

RUN = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from lava_graphs import binary, lif_chain
from hardware_sims.lava.run import run_lava
rng = np.random.default_rng(0)
run_lava(lif_chain(rng), {"x": binary(rng, 20000, 1, (8,))})
"""


def _segments(prefix: str) -> list[str]:
    return [n for n in os.listdir(guard_module.SHM_DIR) if n.startswith(prefix)]


def _wait(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _running(tmp: Path) -> list[Path]:
    return list(tmp.glob(f"{guard_module.DIR_PREFIX}*"))


@pytest.mark.lava
def test_kill_9_of_a_lava_run_leaves_no_process_segment_or_file(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", RUN, str(HERE.parent)], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def lava_started() -> bool:
            folders = _running(tmp_path)
            return bool(folders) and (folders[0] / "pids").exists() and len((folders[0] / "pids").read_text().split("\n")) > 5
        assert _wait(lava_started, 120), child.stderr.read().decode() if child.poll() is not None else "no Lava run"
        time.sleep(2.0)  # Lava is running steps now
        folder = _running(tmp_path)[0]
        prefix = f"snnav_{child.pid}_{folder.name.rsplit('-', 1)[1]}_"
        descendants = psutil.Process(child.pid).children(recursive=True)
        assert len(descendants) >= 5 and _segments(prefix), "the run was not under way"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    def gone() -> bool:
        return all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in descendants)

    assert _wait(gone, 30), [(p.pid, p.cmdline()) for p in descendants if p.is_running()]
    assert _wait(lambda: not _segments(prefix) and not _running(tmp_path), 10), (_segments(prefix), _running(tmp_path))
    # nothing printed after snnav died (Python's resource tracker would warn once per segment it finds gone)
    assert "resource_tracker" not in child.stderr.read().decode()


def test_stale_runs_are_cleaned_and_reported_in_one_line(tmp_path):
    # a run whose owner is gone: an exited child's pid, with its start time recorded
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    token = "abc123"
    folder = tmp_path / f"{guard_module.DIR_PREFIX}{dead.pid}-{token}"
    folder.mkdir()
    (folder / "owner").write_text(f"{dead.pid} 1\n")
    (folder / "pids").write_text(f"{dead.pid} 1\n")
    (folder / "rows.npy").write_bytes(b"x")
    segment = Path(guard_module.SHM_DIR) / f"snnav_{dead.pid}_{token}_00ff"
    segment.write_bytes(b"")
    # a run whose owner lives (this process), and files of other programs: all untouched
    mine = tmp_path / f"{guard_module.DIR_PREFIX}{os.getpid()}-live"
    mine.mkdir()
    (mine / "owner").write_text(f"{os.getpid()} {guard_module._start_time(os.getpid())}\n")
    other = tmp_path / "snnav-lava-notes"
    other.mkdir()
    foreign = Path(guard_module.SHM_DIR) / f"psm_snnav_{dead.pid}_{token}_0"
    foreign.write_bytes(b"")
    try:
        line = clean_stale_runs(tmp_path)
        assert line is not None and "\n" not in line and "1 earlier Lava run" in line and "1 shared-memory" in line
        assert not folder.exists() and not segment.exists()
        assert mine.exists() and other.exists() and foreign.exists()
        assert clean_stale_runs(tmp_path) is None
    finally:
        for path in (segment, foreign):
            path.unlink(missing_ok=True)


def test_guard_removes_its_folder_and_segments_and_stops_its_watchdog(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with RunGuard() as guard:
        segment = Path(guard_module.SHM_DIR) / (guard.shm_prefix + "0")
        segment.write_bytes(b"")
        watchdog = guard._watchdog
        assert guard.workdir.is_dir() and watchdog.poll() is None
    assert not guard.workdir.exists() and not segment.exists()
    assert watchdog.poll() is not None
