"""Errors of the Lava backend. Each says what was expected, what was found, and what to do.

The graph errors subclass :class:`export.ir.errors.NIRFormatError` (itself a ``ValueError``), so a caller that treats
"this graph cannot be used" as one case catches one class.
"""

from __future__ import annotations

import snnav.errors as snnav_errors
from export.ir.errors import GraphValidationError, NIRFormatError

__all__ = ["LavaBackendError", "UnsupportedGraphError", "LatencyError", "InputBindingError", "LavaRunError",
           "ConventionError"]


class LavaBackendError(snnav_errors.UnsupportedGraphError, NIRFormatError):
    """A graph cannot be lowered to Lava processes."""


class UnsupportedGraphError(LavaBackendError):
    """Nodes (or parameter combinations) the Lava backend does not map; the message lists every one of them."""


class LatencyError(LavaBackendError, GraphValidationError):
    """Paths cannot be aligned (a recurrent loop needs more synapse layers than its one step of NIR delay)."""


class InputBindingError(snnav_errors.InputError, ValueError):
    """The inputs given to a run do not match the graph's Input nodes (missing, extra, wrong shape or length)."""


class LavaRunError(snnav_errors.BackendError, RuntimeError):
    """Lava failed while running; the message carries Lava's own error and says that Lava was stopped."""


class ConventionError(snnav_errors.InputError, ValueError):
    """An unknown stepping convention was asked for (expected "nir", "snntorch", "norse" or "auto")."""
