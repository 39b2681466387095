"""Errors of the cost models: a malformed chip, GPU or per-operation description, or a measurement file that cannot
calibrate a model. One line, naming the field, what was expected and what was found."""

from __future__ import annotations

from snnav.errors import FileFormatError

__all__ = ["CostModelError", "CostModelUnavailableError"]


class CostModelError(FileFormatError, ValueError):
    """A cost model, chip or GPU description, or calibration measurement is malformed (the message names the field)."""


class CostModelUnavailableError(CostModelError):
    """The model is known but has no figures to ship (e.g. Loihi 2 per-operation energies)."""
