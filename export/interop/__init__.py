"""Interop with snnTorch and Norse: snnav's extension-free NIR graphs imported with the libraries' own importers.

``importers`` (import and run), ``limits`` (what an importer cannot express, equivalent rewrites), ``parts`` (the
single-input parts a library does import, and the report). Conventions and messages: ``INTEROP.md`` beside this file.
"""

from export.interop.importers import Imported, ImportedRun, run_imported, to_norse, to_snntorch
from export.interop.limits import (
    LIBRARIES,
    SNNTORCH_DT_S,
    SPIKING_TYPES,
    InteropError,
    Limit,
    graph_dt,
    limits,
    rewrite_equivalent,
)
from export.interop.parts import Part, interop_report, loadable_parts, part_input, subgraph

__all__ = [
    "LIBRARIES", "SNNTORCH_DT_S", "SPIKING_TYPES", "Imported", "ImportedRun", "InteropError", "Limit", "Part",
    "graph_dt", "interop_report", "limits", "loadable_parts", "part_input", "rewrite_equivalent", "run_imported",
    "subgraph", "to_norse", "to_snntorch",
]
