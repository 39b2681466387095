"""The snnav exception family.

Every error a user can cause (a missing folder, a corrupt file, a bad option) is raised as a subclass of
:class:`SnnavError`, so the CLI can print it as one line without a traceback. The message says what was expected,
what was found, and what to do.
"""

from __future__ import annotations


class SnnavError(Exception):
    """Base class of the errors snnav raises for user mistakes and bad input."""


class DatasetError(SnnavError):
    """A dataset is missing, malformed, or not what the caller asked for."""


class ConfigError(SnnavError):
    """A configuration value or key is invalid."""


class OutputError(SnnavError):
    """An output path cannot be written."""


class CostModelError(SnnavError):
    """A chip or GPU description, or a measurement file used for calibration, is malformed (the message names the
    field)."""
