"""The snnav exception family: one root, four kinds, importable from every package (no torch, no numpy).

Every error a user can cause is raised as a subclass of :class:`SnnavError`, so the CLI prints it as one line and
exits with status 2. Anything else that escapes a command is a bug in snnav: the CLI shows its traceback and asks
the user to report it. The message of every error says what was found, what was expected, and what to do.

::

    SnnavError
    ├── InputError            a bad option, config value, data value or in-memory argument
    │   ├── ConfigError       a configuration key or value
    │   └── OutputError       an output path that cannot (or may not) be written
    ├── FileFormatError       a file that cannot be used: missing, corrupt, of another kind, wrongly typed fields
    │   └── DatasetError      a dataset file or folder
    ├── UnsupportedGraphError a model or graph that a converter or backend cannot express
    └── BackendError          a backend that failed while running (Lava, a GPU, a worker process)

Packages define their specific errors as subclasses of these (``export.ir.errors.NIRFormatError`` is a
:class:`FileFormatError`, the Lava backend's ``LavaRunError`` a :class:`BackendError`). Some also subclass a
builtin (``ValueError``, ``RuntimeError``) so that code written against the builtin keeps working; the CLI never
catches the builtin.
"""

from __future__ import annotations

__all__ = [
    "SnnavError",
    "InputError",
    "ConfigError",
    "OutputError",
    "FileFormatError",
    "DatasetError",
    "UnsupportedGraphError",
    "BackendError",
]


class SnnavError(Exception):
    """Root of the errors snnav raises for user mistakes, bad files, unsupported graphs and backend failures."""


class InputError(SnnavError):
    """A bad option, configuration value, data value or argument."""


class ConfigError(InputError):
    """A configuration value or key is invalid."""


class OutputError(InputError):
    """An output path cannot be written (or exists and ``--force`` was not given)."""


class FileFormatError(SnnavError):
    """A file is missing, corrupt, of another kind, or has fields of the wrong type or unit."""


class DatasetError(FileFormatError):
    """A dataset is missing, malformed, or not what the caller asked for."""


class UnsupportedGraphError(SnnavError):
    """A model or graph uses something a converter or backend cannot express; the message names it."""


class BackendError(SnnavError):
    """A backend (Lava, a GPU, a worker process) failed while running."""
