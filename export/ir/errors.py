"""Errors raised while building, validating, reading and writing snnav's NIR graphs.

Every error is a `NIRFormatError`, itself a `ValueError`, so callers that only care that "the graph or file is
not usable" catch one class. The subclasses let tests and the CLI tell the cases apart. Messages follow the
project rule: what was expected, what was found, what to do.
"""

from __future__ import annotations

from snnav.errors import FileFormatError

__all__ = [
    "NIRFormatError",
    "NIRFileNotFoundError",
    "CorruptNIRFileError",
    "NotANIRFileError",
    "UnknownNodeTypeError",
    "UnsupportedExtensionVersionError",
    "InvalidNodeError",
    "GraphValidationError",
    "MetadataError",
]


class NIRFormatError(FileFormatError, ValueError):
    """A NIR graph or file is not in the form snnav expects."""


class NIRFileNotFoundError(NIRFormatError, FileNotFoundError):
    """No file at the path given to the reader (also a `FileNotFoundError`)."""


class CorruptNIRFileError(NIRFormatError):
    """The file exists but HDF5 cannot read it (truncated, damaged, or not HDF5 at all)."""


class NotANIRFileError(NIRFormatError):
    """The file is readable HDF5 but lacks NIR's `/node` graph layout."""


class UnknownNodeTypeError(NIRFormatError):
    """A node's stored type is neither a NIR primitive nor a known snnav extension."""


class UnsupportedExtensionVersionError(NIRFormatError):
    """An snnav extension node was written with a newer version than this code supports."""


class InvalidNodeError(NIRFormatError):
    """A node's parameters are invalid (wrong shape, type or value)."""


class GraphValidationError(NIRFormatError):
    """The graph's edges, ports, shapes or required metadata are inconsistent."""


class MetadataError(NIRFormatError):
    """A metadata value cannot be stored in (or was not read back from) a NIR file."""
