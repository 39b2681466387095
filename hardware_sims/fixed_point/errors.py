"""The fixed-point error: a graph (or its inputs) that Loihi's formats cannot hold as given.

It is an :class:`snnav.errors.UnsupportedGraphError`, so the CLI prints it as one line, and a ``ValueError`` for
code written against the builtin."""

from __future__ import annotations

from snnav.errors import UnsupportedGraphError

__all__ = ["FixedPointError"]


class FixedPointError(UnsupportedGraphError, ValueError):
    """Weights, thresholds, decays, exponents or inputs that Loihi's fixed-point formats cannot represent as given;
    the message names the layer and the value."""
