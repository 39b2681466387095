"""Atomic writes and snnav's JSON format: outputs appear whole or not at all.

An output is written to a temporary name in the destination's folder and renamed over the destination only
when the writer finishes without error. An existing file at the destination survives any failure untouched.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from snnav.errors import OutputError


def check_writable_destination(path: str | os.PathLike) -> Path:
    """Return ``path`` as a ``Path`` after checking that its folder exists (or can be made) and is writable.

    Raises:
        OutputError: the folder cannot be created or written, or ``path`` is a folder.
    """
    dest = Path(path)
    if dest.is_dir():
        raise OutputError(f"{dest} is a folder; give a file path such as {dest / 'out.h5'}")
    parent = dest.parent if str(dest.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder {parent} for {dest.name}: {exc.strerror}; choose a writable path") from exc
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"the folder {parent} is not writable; choose another --out path")
    return dest


def refuse_existing(path: str | os.PathLike, force: bool) -> None:
    """Raise :class:`OutputError` if ``path`` exists and ``force`` is false (every command that writes says so)."""
    if os.path.isdir(path):
        raise OutputError(f"{path} is a folder; give a file path")
    if not force and os.path.lexists(path):
        raise OutputError(f"{path} exists; pass --force to replace it (it is kept until the new file is complete)")


class DiskFullError(OutputError, OSError):
    """The disk (or quota) filled up while writing an output; the partial file was removed. Also an ``OSError``."""

    def __str__(self) -> str:
        return str(self.strerror)


FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or quota) is full; h5py's errors carry the errno only in their text."""
    return isinstance(exc, OSError) and (exc.errno in FULL_ERRNOS or "No space left on device" in str(exc)
                                         or "Disk quota exceeded" in str(exc))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Temporary files that `atomic_path` left beside ``path`` when its writer was killed: ``.NAME.<pid>-*.tmp``
    whose process ``<pid>`` no longer runs (a live writer's file, in this process or another, is never listed)."""
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    if not folder.is_dir():
        return []
    out = []
    for candidate in folder.glob(f".{glob.escape(dest.name)}.*-*.tmp"):
        pid = candidate.name[len(dest.name) + 2 :].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)) and candidate.is_file():
            out.append(candidate)
    return sorted(out)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds, delete it otherwise.

    Args:
        path: the final destination.
        suffix: suffix of the temporary file (defaults to the destination's own suffix, so format sniffers work).
    """
    dest = check_writable_destination(path)
    for stale in stale_temp_files(dest):  # what a killed earlier writer of the same output left
        with contextlib.suppress(OSError):
            stale.unlink()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.{os.getpid()}-", suffix=(suffix if suffix is not None else dest.suffix) + ".tmp",
                                    dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the permissions a plain open() would (0666 minus the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if is_disk_full(exc):
            raise DiskFullError(errno.ENOSPC, f"cannot write {dest}: No space left on device (the disk is full); "
                                "nothing was written (the partial file was removed); free some space and run the "
                                "command again") from exc
        raise


def json_text(data: Any) -> str:
    """snnav's one JSON format for the files it writes: indented by one space, keys in the order given, a final
    newline, and no NaN or infinity (they are not JSON; a non-finite value is a bug or a failed run, not a number).

    Raises:
        OutputError: ``data`` holds a non-finite number or something JSON cannot store.
    """
    try:
        return json.dumps(data, indent=1, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise OutputError(f"cannot write JSON: {exc}") from exc


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as JSON (:func:`json_text`) atomically (a temporary file renamed over ``path``); return it."""
    text = json_text(data)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
