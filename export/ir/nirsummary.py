"""Plain-data summaries of NIR graphs (nodes by type, extensions, window nodes, interface) and their text form."""

from __future__ import annotations

from collections import Counter
from typing import Any

import nir
import numpy as np

from export.ir.extensions import EXTENSIONS, SPEC_PATH, is_extension
from export.ir.nirvalidate import single_shape
from export.ir.nirvalidate import type_name as _type_name

__all__ = ["graph_summary", "format_summary"]


def graph_summary(graph: nir.NIRGraph) -> dict[str, Any]:
    """Counts and interface of a graph, as plain data (JSON-serializable).

    Returns:
        dict with ``num_nodes``, ``num_edges``, ``nodes_by_type`` (type name -> count, extension nodes under
        ``snnav.<Kind>``), ``extensions_by_type``, ``window_nodes`` (names of nodes that need future steps),
        ``inputs``/``outputs`` (name -> shape list), and the graph's ``dt``, ``time_steps``, ``readout_step``,
        ``producer``, ``model`` when present (under ``metadata``).
    """
    types = Counter(_type_name(n) for n in graph.nodes.values())
    return {
        "num_nodes": len(graph.nodes),
        "num_edges": len(graph.edges),
        "nodes_by_type": dict(sorted(types.items())),
        "extensions_by_type": {k: v for k, v in sorted(types.items()) if k in EXTENSIONS},
        "window_nodes": sorted(k for k, n in graph.nodes.items() if is_extension(n) and n.needs_future),
        "inputs": {k: _shape_list(n.input_type) for k, n in graph.nodes.items() if isinstance(n, nir.Input)},
        "outputs": {k: _shape_list(n.output_type) for k, n in graph.nodes.items() if isinstance(n, nir.Output)},
        "metadata": {k: graph.metadata[k] for k in ("producer", "model", "dt", "time_steps", "readout_step")
                     if k in graph.metadata},
    }


def format_summary(summary: dict[str, Any], file_size_bytes: int | None = None) -> str:
    """Human-readable lines for `graph_summary`'s result (and the file size, when given)."""
    size = f", {_fmt_bytes(file_size_bytes)}" if file_size_bytes is not None else ""
    lines = [f"NIR graph: {summary['num_nodes']} nodes, {summary['num_edges']} edges{size}"]
    meta = summary.get("metadata", {})
    if meta:
        lines.append("  " + "  ".join(f"{k}: {v}{' s' if k == 'dt' else ''}" for k, v in meta.items()))
    for key in ("inputs", "outputs"):
        items = ", ".join(f"{k} {tuple(v) if v is not None else '(?)'}" for k, v in summary[key].items())
        lines.append(f"  {key + ':':9s}{items or '-'}")
    lines.append("  nodes:   " + ", ".join(f"{k} {v}" for k, v in summary["nodes_by_type"].items()))
    ext = summary["extensions_by_type"]
    if ext:
        lines.append("  snnav extensions (read with export.ir.nirfile.read_graph; spec " + SPEC_PATH + "): "
                     + ", ".join(f"{k} {v}" for k, v in ext.items()))
        if summary.get("window_nodes"):
            lines.append("  window nodes (need future steps): " + ", ".join(summary["window_nodes"]))
    else:
        lines.append("  no snnav extensions: plain NIR, loads with nir.read")
    return "\n".join(lines)


def _shape_list(types: Any) -> list[int] | None:
    shape = single_shape(types)
    return None if shape is None else [int(v) for v in np.asarray(shape).reshape(-1)]


def _fmt_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KiB" if n < 1024**2 else f"{n / 1024**2:.1f} MiB"
