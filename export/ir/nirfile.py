"""Build, validate, write and read NIR graphs, with or without snnav's extension nodes.

A graph without extension nodes is a plain NIR 1.0.8 graph: `make_graph` builds it with NIR's own type
checking and `write_graph` writes exactly the bytes `nir.write` writes, so `nir.read` and every other NIR tool
loads it. A graph with extension nodes keeps NIR's HDF5 layout (`/version`, `/node/type`, `/node/edges`,
`/node/nodes/<name>/...`) with the extension's stored type string (``snnav.<Kind>/v<n>; spec ...``); only
`read_graph` loads it, and `nir.read` fails on it. The file layout and node semantics are specified in
`export/EXTENSIONS.md`.

This module imports only nir, numpy, h5py and the standard library (hardware_sims imports it).
"""

from __future__ import annotations

import errno
import io
import numbers
import os
import shutil
from pathlib import Path
from typing import Any

import h5py
import nir
import numpy as np

from export.ir.errors import (
    CorruptNIRFileError,
    GraphValidationError,
    InvalidNodeError,
    NIRFileNotFoundError,
    NIRFormatError,
    NotANIRFileError,
    UnknownNodeTypeError,
)
from export.ir.extensions import EXTENSIONS, SPEC_PATH, extension_class, is_extension
from export.ir.nirsummary import format_summary, graph_summary
from export.ir.nirvalidate import (
    all_nodes as _all_nodes,
)
from export.ir.nirvalidate import (
    edge_list,
    needs_dt,
    validate_graph,
)
from export.ir.nirvalidate import (
    type_name as _type_name,
)
from snnav.io import DiskFullError, atomic_path

__all__ = ["make_graph", "validate_graph", "write_graph", "read_graph", "graph_summary", "format_summary"]

NIR_TYPES = frozenset(getattr(nir.ir, "__all_ir"))  # the types nir.read can deserialize
_NIR_NODE_ERRORS = (AssertionError, TypeError, ValueError, KeyError, IndexError, AttributeError)


def make_graph(nodes: dict, edges: list, metadata: dict | None = None, *, require_dt: bool | None = None
               ) -> nir.NIRGraph:
    """Build a graph: NIR's type checking for plain graphs, snnav's validation for graphs with extensions.

    Args:
        nodes: node name -> node (NIR primitives and/or extension nodes). The dict is copied.
        edges: ``(src, dst)`` pairs; ``dst`` may name a port, ``"attn.q"``. The list is copied.
        metadata: graph metadata (copied). When the graph has extension nodes and no ``extensions`` key, one
            is added: ``{type name: version}``.
        require_dt: demand a valid ``metadata["dt"]``; None (default) demands it when ``metadata["producer"]``
            starts with ``"snnav"``.

    Raises:
        GraphValidationError: bad edges, ports or shapes, or NIR's type checking failed (plain graphs).
        MetadataError: metadata that a NIR file cannot hold.
    """
    nodes = dict(nodes)
    edges = edge_list(edges)
    metadata = dict(metadata or {})
    kinds = {n.type_name: n.VERSION for n in nodes.values() if is_extension(n)}
    if kinds:
        metadata.setdefault("extensions", dict(sorted(kinds.items())))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=False)
    validate_graph(graph, require_dt=needs_dt(metadata) if require_dt is None else require_dt)
    if kinds:
        return graph
    try:  # NIR's own check; it may add Input/Output nodes for dangling roots/leaves and set conv shapes
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=True)
    except (*_NIR_NODE_ERRORS, NotImplementedError) as e:
        raise GraphValidationError(f"NIR's type checking rejected the graph: {type(e).__name__}: {e}") from e


def write_graph(path: str | os.PathLike, graph: nir.NIRGraph, *, nir_type_check: bool = True) -> None:
    """Validate and write a graph atomically (temporary file in the same folder, then rename).

    Plain graphs are written by `nir.write` itself (byte-identical). Graphs with extension nodes use the same
    layout plus a root attribute ``snnav_note`` telling h5dump/h5ls users how to read the file. An existing file
    at `path` is replaced only after the new one is complete; on any error it is left untouched.

    Args:
        path: destination file; its folder must exist.
        graph: the graph (validated with `validate_graph`; dt required for snnav-produced graphs).
        nir_type_check: for plain graphs, load the written file with ``nir.read(type_check=True)`` before
            renaming it into place, so that what lands at `path` is guaranteed to load in NIR tools.

    Raises:
        GraphValidationError, MetadataError: the graph is invalid (nothing is written).
        FileNotFoundError: the folder does not exist.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write the graph to {path}: it is a folder; give a file path (*.nir)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    validate_graph(graph, require_dt=needs_dt(graph.metadata))
    _check_storable(graph, "")
    _check_space(path, graph)
    with atomic_path(path) as tmp:
        _write_hdf5(tmp, graph)
        if nir_type_check and not any(is_extension(n) for n in _all_nodes(graph)):
            _check_nir_reads(tmp)


def _check_space(path: Path, graph: nir.NIRGraph) -> None:
    """Refuse to start writing when the disk lacks room for the file (its size measured by writing it in memory):
    HDF5 handles that fail to flush onto a full disk can end the process with a segmentation fault."""
    image = io.BytesIO()
    _write_hdf5(image, graph)
    need = len(image.getbuffer())
    free = shutil.disk_usage(path.parent).free
    if free < need + need // 10 + 2**16:
        raise DiskFullError(errno.ENOSPC, f"cannot write {path}: No space left on device (the disk is full: the graph needs about "
                                          f"{need / 1e6:.2f} MB, {free / 1e6:.2f} MB are free); nothing was written; "
                                          "free some space and run the command again")


def _write_hdf5(path: Path | io.BytesIO, graph: nir.NIRGraph) -> None:
    nir.write(path if isinstance(path, io.BytesIO) else str(path), graph)  # extension nodes serialize through their own to_dict
    kinds = sorted({n.stored_type.split(";")[0] for n in _all_nodes(graph) if is_extension(n)})
    if kinds:
        if isinstance(path, io.BytesIO):
            path.seek(0)
        with h5py.File(path, "r+") as f:
            f.attrs["snnav_note"] = (
                f"Contains snnav extension nodes ({', '.join(kinds)}) that plain nir.read cannot load (it fails "
                f"with AssertionError in nir.ir.str2NIRNode); read it with export.ir.nirfile.read_graph. Spec: "
                f"{SPEC_PATH}")


def _check_storable(graph: nir.NIRGraph, prefix: str) -> None:
    """Refuse parameters that nir.write cannot store, before anything is written."""
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            _check_storable(node, f"{prefix}{name}.")
            continue
        for key, value in node.to_dict().items():
            if key in ("type", "metadata") or isinstance(value, (str, numbers.Real, np.bool_)):
                continue
            if isinstance(value, (tuple, list)) and all(isinstance(v, numbers.Real) for v in value):
                continue
            if not isinstance(value, np.ndarray) or value.ndim == 0:
                found = "a 0-d array" if isinstance(value, np.ndarray) else f"a {type(value).__name__}"
                raise GraphValidationError(
                    f"node {prefix + name!r} ({_type_name(node)}): parameter {key!r} is {found}, which nir.write "
                    "cannot store; use a numpy array with at least one dimension (e.g. np.full(shape, value))")


def _check_nir_reads(path: Path) -> None:
    try:
        nir.read(str(path), type_check=True)
    except (*_NIR_NODE_ERRORS, NotImplementedError) as e:
        raise GraphValidationError(
            f"nir.read with NIR's type checking rejects this graph ({type(e).__name__}: {e}); fix the graph "
            "(make_graph runs the same check), or pass nir_type_check=False to write it anyway") from e


def read_graph(path: str | os.PathLike, *, require_dt: bool = False) -> nir.NIRGraph:
    """Read a NIR file written by snnav, `nir.write`, snnTorch or Norse, with or without extension nodes.

    The graph is validated (`validate_graph`) but not type-inferred, so it equals what was written.
    Metadata numbers come back as Python ``int``/``float``/``bool``, strings as ``str``.

    Args:
        path: the ``.nir`` file.
        require_dt: demand ``metadata["dt"]`` even for third-party graphs (snnav graphs, whose
            ``metadata["producer"]`` starts with ``"snnav"``, always need it).

    Raises:
        NIRFileNotFoundError: no such file (also a FileNotFoundError).
        CorruptNIRFileError: not readable HDF5 (truncated, damaged, not HDF5).
        NotANIRFileError: HDF5 without NIR's graph layout.
        UnknownNodeTypeError, UnsupportedExtensionVersionError, InvalidNodeError: a node cannot be built.
        GraphValidationError, MetadataError: see `validate_graph`.
    """
    path = Path(path)
    if not path.exists():
        raise NIRFileNotFoundError(f"no NIR file at {path}; check the path, or export the model first")
    if path.is_dir():
        raise NotANIRFileError(f"{path} is a folder; expected a NIR file (*.nir)")
    try:
        h5 = h5py.File(path, "r")
    except OSError as e:
        raise CorruptNIRFileError(
            f"{path} is not readable HDF5 ({e}); expected a NIR file written by nir.write or snnav. It may be "
            "truncated (an interrupted copy or write) or not a NIR file at all; re-export or copy it again.") from e
    with h5:
        try:
            graph = _read_root(h5, path)
        except NIRFormatError as e:
            raise type(e)(f"{path}: {e}") from e
        except (OSError, KeyError, RuntimeError, ValueError, TypeError) as e:
            raise CorruptNIRFileError(f"{path}: HDF5 data could not be read ({type(e).__name__}: {e}); the file "
                                      "is damaged or truncated; re-export it") from e
    try:
        validate_graph(graph, require_dt=require_dt or needs_dt(graph.metadata))
    except NIRFormatError as e:
        raise type(e)(f"{path}: {e}") from e
    return graph


def _read_root(h5: h5py.File, path: Path) -> nir.NIRGraph:
    if not isinstance(h5.get("node"), h5py.Group):
        if h5.attrs.get("__type__") == "NIRGraphData":
            raise NotANIRFileError("this is a NIR data file (nir.write_data), not a graph; read it with "
                                   "nir.read_data")
        raise NotANIRFileError(f"HDF5 file without NIR's graph layout: expected a '/node' group with type "
                               f"'NIRGraph', nodes and edges; found top-level entries {sorted(h5.keys())}")
    return _read_graph_group(h5["node"], "")


def _read_graph_group(group: h5py.Group, prefix: str) -> nir.NIRGraph:
    where = f"subgraph {prefix[:-1]!r}" if prefix else "'/node'"
    kind = _read_str(group, "type", where) if "type" in group else None
    if kind != "NIRGraph" or not isinstance(group.get("nodes"), h5py.Group) or "edges" not in group:
        raise NotANIRFileError(f"{where} is not a NIR graph: expected datasets type='NIRGraph' and edges and a "
                               f"group nodes; found type={kind!r}, entries {sorted(group.keys())}")
    nodes = {name: _read_node(sub, prefix + name) for name, sub in group["nodes"].items()}
    edges = _read_edges(group["edges"], where)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=_read_metadata(group), type_check=False)


def _read_node(group: Any, qualname: str) -> nir.NIRNode:
    if not isinstance(group, h5py.Group) or "type" not in group:
        raise NotANIRFileError(f"node {qualname!r} is not a NIR node group with a 'type' dataset")
    stored = _read_str(group, "type", f"node {qualname!r}")
    if stored == "NIRGraph":
        return _read_graph_group(group, qualname + ".")
    metadata = _read_metadata(group)
    if stored.startswith("snnav."):
        try:
            cls = extension_class(stored)
            data = {k: _dataset(group, k, qualname) for k in group if k not in ("type", "metadata")}
            return cls.from_dict({"type": stored, **data, "metadata": metadata})
        except NIRFormatError as e:
            raise type(e)(f"node {qualname!r}: {e}") from e
        except (TypeError, ValueError) as e:
            raise InvalidNodeError(f"node {qualname!r} ({stored}): {e}") from e
    if stored not in NIR_TYPES:
        raise UnknownNodeTypeError(
            f"node {qualname!r} has type {stored!r}, which is neither a NIR {nir.version} primitive "
            f"({', '.join(sorted(NIR_TYPES))}) nor an snnav extension ({', '.join(sorted(EXTENSIONS))}). "
            "If the file comes from a newer NIR, upgrade nir; otherwise its producer wrote a non-standard node.")
    data = nir.serialization.hdf2dict(group)
    data["metadata"] = metadata
    try:
        return nir.dict2NIRNode(data)
    except _NIR_NODE_ERRORS as e:
        raise InvalidNodeError(f"node {qualname!r} of type {stored!r} could not be built from its datasets "
                               f"({type(e).__name__}: {e}); the file is damaged or was edited; re-export "
                               "it") from e


def _dataset(group: h5py.Group, key: str, qualname: str) -> Any:
    item = group[key]
    if not isinstance(item, h5py.Dataset):
        raise InvalidNodeError(f"node {qualname!r}: {key!r} must be a dataset, found a group")
    return item[()]


def _read_str(group: h5py.Group, key: str, where: str) -> str:
    value = group[key][()]
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, str):
        return value
    raise NotANIRFileError(f"{where}: '{key}' must be a string dataset, found {value!r}")


def _read_edges(dataset: Any, where: str) -> list[tuple[str, str]]:
    data = dataset[()] if isinstance(dataset, h5py.Dataset) else None
    if isinstance(data, np.ndarray) and data.size == 0:
        return []
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 2:
        raise NotANIRFileError(f"{where}: 'edges' must be an (E, 2) array of node names, found {data!r}")
    return edge_list([[v.decode("utf8") if isinstance(v, bytes) else v for v in row] for row in data])


def _read_metadata(group: h5py.Group) -> dict[str, Any]:
    meta = group.get("metadata")
    return _metadata_from_hdf5(meta) if isinstance(meta, h5py.Group) else {}


def _metadata_from_hdf5(group: h5py.Group) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            out[key] = _metadata_from_hdf5(item)
            continue
        value = item[()]
        if isinstance(value, bytes):
            value = value.decode("utf8")
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray) and value.dtype == object:
            value = [v.decode("utf8") if isinstance(v, bytes) else v for v in value.tolist()]
        out[key] = value
    return out


