"""Graph preparation for the reference interpreter: flatten subgraphs, resolve ports, order the evaluation.

Three steps, each a pure function of the graph:

1. `flatten_graph` removes nested `nir.NIRGraph` nodes. A node ``B`` inside subgraph ``G`` becomes ``"G.B"``; the
   subgraph's own `Input`/`Output` nodes stay as identity nodes. Edge ends are resolved as NIR's api_design
   describes: ``"G"`` as a destination is G's single `Input` node, as a source its single `Output` node;
   ``"G.B"`` addresses node ``B`` inside G (recursively, ``"G.H.B"``). An snnav extension node's port is written
   ``"node.port"``. A full node name always wins over a split at a dot, because third-party graphs use dotted
   names (snnTorch's RLeaky export flattens to nodes ``"1.lif"`` and ``"1.w_rec"``).
2. `schedule` finds the cycles. Within a strongly connected component (SCC) every edge that leaves a *neuron*
   node (I, LI, IF, LIF, CubaLI, CubaLIF) carries a one-step delay: at step t its consumer reads the neuron's
   output of step t - 1, zeros at t = 0. A spike therefore crosses a recurrent synapse in one step, and the
   synapse itself is evaluated at every step, t = 0 included (snnTorch's RLeaky adds ``recurrent(spk_{t-1})``
   with ``spk_{-1} = 0``, so an Affine recurrent weight contributes its bias at t = 0). A cycle without a neuron
   is an algebraic loop with no defined meaning and is rejected.
3. Fan-in order: the terms into one node (or port) are the edges from outside the node's SCC in edge-list order,
   then the edges from inside it (the recurrent ones) in edge-list order. Stateless nodes sum them left to right;
   the "snntorch" convention adds them one by one onto ``beta * mem`` as RLeaky does.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

import nir

from export.ir.errors import GraphValidationError
from export.ir.extensions import is_extension

__all__ = ["NEURON_TYPES", "FlatEdge", "FlatGraph", "Schedule", "flatten_graph", "schedule"]

NEURON_TYPES: tuple[type, ...] = (nir.I, nir.LI, nir.IF, nir.LIF, nir.CubaLI, nir.CubaLIF)


@dataclass(frozen=True)
class FlatEdge:
    """An edge of the flattened graph; `port` is None for a standard node's single implicit port."""

    src: str
    dst: str
    port: str | None


@dataclass(frozen=True)
class FlatGraph:
    """A graph without nested subgraphs. `inputs`/`outputs` are the top-level Input/Output node names."""

    nodes: dict[str, Any]
    edges: tuple[FlatEdge, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Schedule:
    """Evaluation order of a flat graph.

    `order` is a topological order once the `delayed` edges (indices into `FlatGraph.edges`) are removed;
    `fan_in[node][port]` lists ``(edge index, delayed)`` in the fan-in order of the module docstring.
    """

    order: tuple[str, ...]
    delayed: frozenset[int]
    cyclic: bool
    fan_in: dict[str, dict[str | None, tuple[tuple[int, bool], ...]]]


def _single(graph: nir.NIRGraph, cls: type, role: str, where: str) -> str:
    names = [n for n, node in graph.nodes.items() if isinstance(node, cls)]
    if len(names) != 1:
        raise GraphValidationError(
            f"edge {role} subgraph {where!r}: expected exactly one {cls.__name__} node inside it, found {names}; "
            f"address a node inside it as '{where}.<node>'"
        )
    return names[0]


def _resolve(graph: nir.NIRGraph, ref: str, prefix: str, as_source: bool, edge: tuple[str, str]):
    """Resolve one edge end inside `graph` to ``(flat name, port)``."""
    nodes = graph.nodes
    if ref in nodes:
        node = nodes[ref]
        if isinstance(node, nir.NIRGraph):
            cls, role = (nir.Output, "out of") if as_source else (nir.Input, "into")
            inner = _single(node, cls, role, prefix + ref)
            return prefix + ref + "." + inner, None
        return prefix + ref, None
    parts = ref.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # longest node name first
        head, rest = ".".join(parts[:cut]), ".".join(parts[cut:])
        if head not in nodes:
            continue
        node = nodes[head]
        if isinstance(node, nir.NIRGraph):
            return _resolve(node, rest, prefix + head + ".", as_source, edge)
        if is_extension(node) and not as_source:
            if rest not in node.PORTS:
                raise GraphValidationError(
                    f"edge {edge[0]!r} -> {edge[1]!r}: {node.type_name} node {prefix + head!r} has ports "
                    f"{list(node.PORTS)}, not {rest!r}"
                )
            return prefix + head, rest
        what = "a source is always a plain node name" if as_source else f"{type(node).__name__} has no named ports"
        raise GraphValidationError(f"edge {edge[0]!r} -> {edge[1]!r}: cannot address {ref!r} ({what})")
    raise GraphValidationError(
        f"edge {edge[0]!r} -> {edge[1]!r} in graph {prefix.rstrip('.') or '<top>'!r}: no node named {ref!r}; "
        f"nodes are {sorted(nodes)}"
    )


def _flatten_into(graph: nir.NIRGraph, prefix: str, nodes: dict, edges: list) -> None:
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            _flatten_into(node, prefix + name + ".", nodes, edges)
            continue
        flat = prefix + name
        if flat in nodes:
            raise GraphValidationError(
                f"node name {flat!r} occurs twice once subgraphs are flattened (a dotted node name collides with "
                "a node inside a subgraph); rename one of them"
            )
        nodes[flat] = node
    for src, dst in graph.edges:
        s, _ = _resolve(graph, src, prefix, True, (src, dst))
        d, port = _resolve(graph, dst, prefix, False, (src, dst))
        edges.append(FlatEdge(s, d, port))


def flatten_graph(graph: nir.NIRGraph) -> FlatGraph:
    """Flatten nested subgraphs and resolve every edge end (see the module docstring).

    Raises:
        GraphValidationError: an edge names no node, a port the node lacks, or a subgraph without a single
            Input/Output; a node other than a graph Input has no incoming edge; an extension port is unfed.
    """
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"expected a nir.NIRGraph, got {type(graph).__name__}")
    nodes: dict[str, Any] = {}
    edges: list[FlatEdge] = []
    _flatten_into(graph, "", nodes, edges)
    inputs = tuple(n for n, node in graph.nodes.items() if isinstance(node, nir.Input))
    outputs = tuple(n for n, node in graph.nodes.items() if isinstance(node, nir.Output))
    if not inputs:
        raise GraphValidationError("the graph has no nir.Input node; the interpreter feeds inputs through them")
    fed: dict[str, set] = {n: set() for n in nodes}
    for e in edges:
        fed[e.dst].add(e.port)
    for name, node in nodes.items():
        if name in inputs:
            if fed[name]:
                raise GraphValidationError(f"graph input {name!r} has incoming edges; inputs are fed by the caller")
            continue
        wanted = set(node.PORTS) if is_extension(node) else {None}
        missing = sorted(p or "input" for p in wanted - fed[name])
        if missing:
            raise GraphValidationError(
                f"node {name!r} ({type(node).__name__}) has no incoming edge into port(s) {missing}; connect them "
                "or remove the node"
            )
    return FlatGraph(nodes, tuple(edges), inputs, outputs)


def _sccs(names: list[str], succ: dict[str, list[str]]) -> dict[str, int]:
    """Strongly connected components (iterative Tarjan); returns node -> component id."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    comp: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    n_comp = 0
    for root in names:
        if root in index:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(succ[w])))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp[w] = n_comp
                        if w == v:
                            break
                    n_comp += 1
    return comp


def schedule(flat: FlatGraph) -> Schedule:
    """Order the evaluation of `flat` and mark the delayed (recurrent) edges (see the module docstring).

    Raises:
        GraphValidationError: a cycle contains no neuron node (an algebraic loop).
    """
    names = list(flat.nodes)
    succ: dict[str, list[str]] = {n: [] for n in names}
    for e in flat.edges:
        succ[e.src].append(e.dst)
    comp = _sccs(names, succ)
    in_cycle = {i for i, e in enumerate(flat.edges) if comp[e.src] == comp[e.dst]}
    cyclic = bool(in_cycle)
    delayed = frozenset(i for i in in_cycle if isinstance(flat.nodes[flat.edges[i].src], NEURON_TYPES))

    position = {n: i for i, n in enumerate(names)}
    indegree = {n: 0 for n in names}
    forward_succ: dict[str, list[str]] = {n: [] for n in names}
    for i, e in enumerate(flat.edges):
        if i not in delayed:
            indegree[e.dst] += 1
            forward_succ[e.src].append(e.dst)
    ready = [(position[n], n) for n in names if indegree[n] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:  # Kahn's algorithm, ties broken by node order: deterministic
        _, n = heapq.heappop(ready)
        order.append(n)
        for m in forward_succ[n]:
            indegree[m] -= 1
            if indegree[m] == 0:
                heapq.heappush(ready, (position[m], m))
    if len(order) != len(names):
        stuck = sorted(n for n in names if n not in set(order))
        raise GraphValidationError(
            f"the cycle(s) through {stuck} contain no neuron node (I, LI, IF, LIF, CubaLI, CubaLIF): an algebraic "
            "loop has no defined meaning; put a neuron in the loop"
        )

    fan_in: dict[str, dict[str | None, list[tuple[int, bool]]]] = {n: {} for n in names}
    for recurrent in (False, True):
        for i, e in enumerate(flat.edges):
            if (i in in_cycle) == recurrent:
                fan_in[e.dst].setdefault(e.port, []).append((i, i in delayed))
    frozen = {n: {p: tuple(v) for p, v in ports.items()} for n, ports in fan_in.items()}
    return Schedule(tuple(order), delayed, cyclic, frozen)
