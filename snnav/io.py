"""Atomic writes and snnav's JSON format: outputs appear whole or not at all.

An output is written to a temporary name in the destination's folder and renamed over the destination only
when the writer finishes without error. An existing file at the destination survives any failure untouched.
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds, delete it otherwise.

    Args:
        path: the final destination.
        suffix: suffix of the temporary file (defaults to the destination's own suffix, so format sniffers work).
    """
    dest = check_writable_destination(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=(suffix if suffix is not None else dest.suffix) + ".tmp",
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
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
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
