"""Validation of NIR graphs with or without snnav's extension nodes: names, edges, ports, shapes, metadata, dt.

Imports only nir, numpy and the standard library (hardware_sims imports it through `export.ir.nirfile`).
"""

from __future__ import annotations

import difflib
import math
import numbers
from typing import Any

import nir
import numpy as np
from nir.ir.utils import calc_flatten_output, calculate_conv_output

from export.ir.errors import GraphValidationError, MetadataError, NIRFormatError
from export.ir.extensions import is_extension, resolve_target, split_port

__all__ = ["validate_graph", "all_nodes", "type_name"]


def validate_graph(graph: nir.NIRGraph, require_dt: bool = True) -> None:
    """Check node names, edges, ports, shapes and metadata without modifying the graph.

    Shapes are compared where both ends are known: NIR nodes' `input_type`/`output_type`, extension ports,
    and output shapes of Conv1d/Conv2d/SumPool2d/AvgPool2d/Flatten computed from their inputs as NIR's
    `infer_types` does. Unknown shapes are skipped. Subgraphs are validated recursively.

    Args:
        graph: the graph.
        require_dt: demand ``metadata["dt"]``, a finite float > 0 (seconds per step).

    Raises:
        GraphValidationError: naming the bad node or both ends of the bad edge.
        MetadataError: metadata that a NIR file cannot hold.
    """
    nodes = graph.nodes
    _check_metadata(graph.metadata, "graph metadata")
    for name, node in nodes.items():
        _check_node_name(nodes, name, node)
        _check_metadata(getattr(node, "metadata", {}) or {}, f"metadata of node {name!r}")
        if isinstance(node, nir.NIRGraph):
            try:
                validate_graph(node, require_dt=False)
            except NIRFormatError as e:
                raise type(e)(f"in subgraph {name!r}: {e}") from e
    edges = edge_list(graph.edges)
    shapes = _output_shapes(nodes, edges)
    seen: set[tuple[str, str]] = set()
    fed: set[tuple[str, str | None]] = set()
    for edge in edges:
        if edge in seen:
            raise GraphValidationError(f"duplicate edge {edge}; fan-in is summed, so use one edge and a "
                                       "nir.Scale for a factor of 2")
        seen.add(edge)
        fed.add(_check_edge(nodes, shapes, *edge))
    for name, node in nodes.items():
        if is_extension(node):
            unfed = [p for p in node.PORTS if (name, p) not in fed]
            if unfed:
                raise GraphValidationError(
                    f"{node.type_name} node {name!r} has no incoming edge into port(s) "
                    f"{[f'{name}.{p}' for p in unfed]}; every port of {list(node.PORTS)} needs at least one "
                    f"edge (src, '{name}.<port>')")
    _check_extensions_metadata(graph)
    if require_dt:
        _check_dt(graph.metadata)



def edge_list(edges: Any) -> list[tuple[str, str]]:
    out = []
    for edge in edges:
        if not isinstance(edge, (tuple, list)) or len(edge) != 2 or not all(isinstance(e, str) for e in edge):
            raise GraphValidationError(f"an edge must be a pair of node-name strings (src, dst); found {edge!r}")
        out.append((edge[0], edge[1]))
    return out


def _check_node_name(nodes: dict, name: Any, node: Any) -> None:
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise GraphValidationError(f"node name {name!r} cannot be stored in HDF5: use a non-empty string "
                                   "without '/'")
    if not isinstance(node, nir.NIRNode):
        raise GraphValidationError(f"node {name!r} is a {type(node).__name__}, expected a nir.NIRNode")
    owner, port = split_port(name)
    if port is not None and is_extension(nodes.get(owner)) and port in nodes[owner].PORTS:
        raise GraphValidationError(f"node name {name!r} clashes with port {port!r} of extension node {owner!r}; "
                                   "rename the node")


def _short(name: str, limit: int = 60) -> str:
    """``repr(name)``, shortened in the middle past ``limit`` characters (a message stays one readable line)."""
    text = repr(name)
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 2 + 3:]}"


def _known(nodes: dict, name: str) -> str:
    """A short hint: the closest node names (at most 3) and how many nodes there are — never the whole list."""
    close = difflib.get_close_matches(name, list(nodes), n=3, cutoff=0.6)
    listed = f"did you mean {', '.join(_short(c) for c in close)}? " if close else ""
    sample = "" if close or len(nodes) > 12 else f" ({', '.join(sorted(nodes))})"
    return f"{listed}the graph has {len(nodes)} nodes{sample}"


def _check_edge(nodes: dict, shapes: dict, src: str, dst: str) -> tuple[str, str | None]:
    edge = f"edge ({_short(src)}, {_short(dst)})"
    if src not in nodes:
        owner, port = split_port(src)
        hint = (f"; sources are plain node names (every node has one output): write ({owner!r}, {dst!r})"
                if port is not None and owner in nodes else f"; {_known(nodes, src)}")
        raise GraphValidationError(f"{edge}: source node {_short(src)} does not exist{hint}")
    name, port = resolve_target(nodes, dst)
    if name not in nodes:
        raise GraphValidationError(f"{edge}: target node {_short(name)} does not exist; {_known(nodes, name)}")
    node = nodes[name]
    expected = None
    if is_extension(node):
        if port not in node.PORTS:
            found = "names no port" if port is None else f"names unknown port {port!r}"
            raise GraphValidationError(
                f"{edge}: {found} of {node.type_name} node {name!r}; its ports are {list(node.PORTS)}, "
                f"write the target as '{name}.<port>'")
        expected = node.input_type[port]
    elif isinstance(node, nir.NIRGraph):
        if port is not None and port not in node.nodes:
            raise GraphValidationError(f"{edge}: subgraph {name!r} has no node {port!r}; its nodes are "
                                       f"{sorted(node.nodes)}")
    elif port is not None:
        raise GraphValidationError(f"{edge}: {type(node).__name__} node {name!r} has a single implicit port; "
                                   f"write the target as {name!r}")
    else:
        expected = single_shape(getattr(node, "input_type", None))
    got = shapes.get(src)
    if expected is not None and got is not None and not np.array_equal(np.asarray(expected), got):
        raise GraphValidationError(
            f"{edge}: shape mismatch: {src!r} ({_type_name(nodes[src])}) outputs {_fmt(got)} but {dst!r} "
            f"({_type_name(node)}) expects {_fmt(expected)}")
    return name, port


def _output_shapes(nodes: dict, edges: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """Known output shapes by node; shape-computing NIR nodes are inferred from their first known source."""
    shapes = {}
    for name, node in nodes.items():
        out = single_shape(getattr(node, "output_type", None))
        if out is not None:
            shapes[name] = np.asarray(out, dtype=np.int64)
    sources: dict[str, list[str]] = {}
    for src, dst in edges:
        target, port = resolve_target(nodes, dst)
        if port is None:
            sources.setdefault(target, []).append(src)
    changed = True
    while changed:
        changed = False
        for name, node in nodes.items():
            if name in shapes or not isinstance(node, (nir.Conv1d, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d,
                                                       nir.Flatten)):
                continue
            shape_in = single_shape(node.input_type)
            if shape_in is None:
                shape_in = next((shapes[s] for s in sources.get(name, []) if s in shapes), None)
            out = _infer_output(node, shape_in) if shape_in is not None else None
            if out is not None:
                shapes[name] = out
                changed = True
    return shapes


def _infer_output(node: nir.NIRNode, shape_in: Any) -> np.ndarray | None:
    shape_in = [int(v) for v in np.asarray(shape_in).reshape(-1)]
    try:
        if isinstance(node, nir.Flatten):
            out = calc_flatten_output(shape_in, node.start_dim, node.end_dim)
        elif isinstance(node, nir.Conv1d):
            out = [node.weight.shape[0], *calculate_conv_output(shape_in[1], node.padding, node.dilation,
                                                                node.weight.shape[2], node.stride)]
        elif isinstance(node, nir.Conv2d):  # kernel height for both axes, as NIR 1.0.8's own inference does
            out = [node.weight.shape[0], *calculate_conv_output(tuple(shape_in[1:]), node.padding, node.dilation,
                                                                node.weight.shape[2], node.stride)]
        else:
            out = [shape_in[0], *calculate_conv_output(np.asarray(shape_in[1:]), node.padding, 1,
                                                       node.kernel_size, node.stride)]
        return np.asarray(out, dtype=np.int64)
    except (TypeError, ValueError, IndexError):
        return None  # malformed parameters: leave the shape unknown, NIR's own checks report it


def single_shape(types: Any) -> Any:
    """The shape of a single-port type dict, or None (unknown, or several ports)."""
    if isinstance(types, dict) and len(types) == 1:
        return next(iter(types.values()))
    return None


def _check_extensions_metadata(graph: nir.NIRGraph) -> None:
    declared = graph.metadata.get("extensions")
    if declared is None:
        return
    if not isinstance(declared, dict):
        raise GraphValidationError(f"metadata['extensions'] must be a dict {{type name: version}}, found "
                                   f"{declared!r}")
    for node in graph.nodes.values():
        if is_extension(node) and declared.get(node.type_name) != node.VERSION:
            raise GraphValidationError(
                f"metadata['extensions'] = {declared} does not list {node.type_name}: {node.VERSION}, which the "
                "graph uses; list every extension type with its version (make_graph does it when absent)")


def _check_dt(metadata: dict) -> None:
    dt = metadata.get("dt")
    if dt is None:
        raise GraphValidationError("graph metadata has no 'dt' (seconds per step); snnav graphs record it. Pass "
                                   "dt to the exporter, or set metadata['dt'] to a float > 0")
    if isinstance(dt, (bool, np.bool_)) or not isinstance(dt, numbers.Real) or not math.isfinite(dt) or dt <= 0:
        raise GraphValidationError(f"graph metadata 'dt' must be a finite float > 0 (seconds per step); found "
                                   f"{dt!r}")


def needs_dt(metadata: dict | None) -> bool:
    producer = (metadata or {}).get("producer")
    return isinstance(producer, str) and producer.startswith("snnav")


def _check_metadata(meta: Any, where: str) -> None:
    if not isinstance(meta, dict):
        raise MetadataError(f"{where} must be a dict, found {type(meta).__name__}")
    for key, value in meta.items():
        here = f"{where}[{key!r}]"
        if not isinstance(key, str) or not key or "/" in key or key in (".", ".."):
            raise MetadataError(f"{here}: keys must be non-empty strings without '/' (HDF5 names)")
        if isinstance(value, dict) and key == "metadata" and not value:
            raise MetadataError(f"{here}: nir.write drops an empty dict stored under 'metadata'; remove it")
        if isinstance(value, dict):
            _check_metadata(value, here)
        elif isinstance(value, np.ndarray):
            if value.ndim == 0 or value.dtype.kind not in "biuf":
                raise MetadataError(f"{here}: arrays must be numeric with at least one dimension, found dtype "
                                    f"{value.dtype} shape {value.shape}; store a scalar as a Python number")
        elif isinstance(value, str) and "\x00" in value:
            raise MetadataError(f"{here}: HDF5 strings cannot contain NUL characters")
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
            raise MetadataError(f"{here}: integer {value} does not fit in int64; store it as a string")
        elif not isinstance(value, (str, numbers.Real, np.bool_)):
            raise MetadataError(f"{here}: found {type(value).__name__}; metadata values must be numbers, strings, "
                                "numeric numpy arrays or dicts of those (convert lists to numpy arrays)")



def _all_nodes(graph: nir.NIRGraph):
    for node in graph.nodes.values():
        yield node
        if isinstance(node, nir.NIRGraph):
            yield from _all_nodes(node)



def _type_name(node: Any) -> str:
    return node.type_name if is_extension(node) else type(node).__name__


def _fmt(shape: Any) -> str:
    return str(tuple(int(v) for v in np.asarray(shape).reshape(-1)))


all_nodes = _all_nodes
type_name = _type_name
