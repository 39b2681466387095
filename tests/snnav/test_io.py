"""Atomic writes: the old file survives a failure, and the new file gets ordinary permissions."""

import errno
import os
import subprocess
import sys

import pytest

from snnav.errors import OutputError
from snnav.io import atomic_path, stale_temp_files, write_json


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    dest = tmp_path / "report.json"
    dest.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_the_written_file_has_the_permissions_of_a_plain_open(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "out.txt") as tmp:
            tmp.write_text("new")
        (tmp_path / "plain.txt").write_text("new")
    finally:
        os.umask(umask)
    mode = lambda name: (tmp_path / name).stat().st_mode & 0o777  # noqa: E731
    assert mode("out.txt") == mode("plain.txt") == 0o644


def test_temp_files_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "x.json"
    stale = tmp_path / f".x.json.{dead.pid}-abcd1234.json.tmp"  # what kill -9 of a writer left
    live = tmp_path / f".x.json.{os.getpid()}-efgh5678.json.tmp"  # a writer still running (this process)
    other = tmp_path / f".y.json.{dead.pid}-abcd1234.json.tmp"  # another output's
    for path in (stale, live, other):
        path.write_text("partial")
    assert stale_temp_files(out) == [stale]
    write_json(out, {"a": 1})
    assert not stale.exists() and live.exists() and other.exists() and out.is_file()


def test_a_full_disk_is_one_output_error_and_removes_the_temp_file(tmp_path):
    with pytest.raises(OutputError, match="No space left on device"):
        with atomic_path(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []
