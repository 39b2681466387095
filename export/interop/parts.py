"""Interop analysis: what snnTorch's and Norse's NIR importers cannot express, and which parts of a graph they do
import faithfully.

The import/run side (`to_snntorch`, `to_norse`, `run_imported`) is ``export.interop.importers``, the limits
``export.interop.limits``; the package ``export.interop`` re-exports every public name. Here:

* `limits` names everything in a graph that a library's importer cannot express, with the library's exact message;
* `rewrite_equivalent` replaces SumPool2d/Threshold over spikes by standard nodes that compute the same values;
* `subgraph`, `loadable_parts` and `part_input` cut a graph into the single-input parts a library imports and feed
  them from a whole-graph run;
* `interop_report` gathers all of this per library, as given and rewritten (the full table: ``export/interop/INTEROP.md``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Iterable

import nir
import numpy as np
from torch import Tensor

from export.interop.importers import to_norse, to_snntorch
from export.interop.limits import LIBRARIES, SPIKING_TYPES, edges_into, graph_dt, limits, rewrite_equivalent
from export.ir.nirfile import make_graph

__all__ = ["Part", "interop_report", "loadable_parts", "part_input", "subgraph"]


@dataclass(frozen=True)
class Part:
    """A single-input part of a graph, cut out with ``subgraph(graph, nodes, output, input_at=input_at)``.

    Attributes:
        source: name of the part's Input node.
        feeds: the graph's nodes whose outputs, summed in edge order, are that input (one node unless
            ``input_at`` is set).
        nodes: the part's nodes in graph order; ``output`` is the one whose value the part returns.
        input_at: None, or the node whose whole fan-in (several nodes, all outside the part) is the input.
    """

    source: str
    feeds: tuple[str, ...]
    nodes: tuple[str, ...]
    output: str
    input_at: str | None = None


def subgraph(graph: nir.NIRGraph, keep_nodes: Iterable[str], output: str | None = None, *,
             input_at: str | None = None) -> nir.NIRGraph:
    """The part of ``graph`` made of ``keep_nodes``, as a valid NIR graph with the same metadata.

    Every edge from a node outside the part becomes an edge from an ``Input`` named after that node (an original
    ``Input`` is kept as it is), shaped as its output, so the part is fed with what that node produced in a run
    of the whole graph. With ``input_at``, the edges from outside into that kept node instead all come from one
    Input ``"<input_at>_input"`` that carries their sum (NIR fan-in). One ``Output`` reads ``output`` (default:
    the part's only sink); it keeps the original Output's name when that Output read exactly ``output``.

    Raises:
        ValueError: unknown or Input/Output names, no unique sink, kept nodes that do not lead to ``output``, or
            an ``input_at`` whose outside sources also feed other kept nodes.
    """
    order = list(graph.nodes)
    keep = set(keep_nodes)
    unknown = sorted(keep - set(order))
    if unknown:
        raise ValueError(f"subgraph: no nodes {unknown} in the graph")
    io_nodes = sorted(n for n in keep if isinstance(graph.nodes[n], (nir.Input, nir.Output)))
    if io_nodes:
        raise ValueError(f"subgraph: keep_nodes must be computing nodes; {io_nodes} are Input/Output (the part's "
                         "Inputs and Output are made for it)")
    if any(d not in graph.nodes for _, d in graph.edges):
        raise ValueError("subgraph: ported edges (extension nodes) are not supported; extension-free graphs only")
    succ = {n: [d for s, d in graph.edges if s == n and d in keep] for n in keep}
    if output is None:
        sinks = [n for n in order if n in keep and not succ[n]]
        if len(sinks) != 1:
            raise ValueError(f"subgraph: the kept nodes have sinks {sinks}; pass output=<one of them>")
        output = sinks[0]
    if output not in keep:
        raise ValueError(f"subgraph: output {output!r} is not among the kept nodes")
    dead = [n for n in order if n in keep - _ancestors(graph, output, keep) - {output}]
    if dead:
        raise ValueError(f"subgraph: kept nodes {dead} do not lead to output {output!r}; drop them")
    merged: list[str] = []
    if input_at is not None:
        if input_at not in keep:
            raise ValueError(f"subgraph: input_at {input_at!r} is not among the kept nodes")
        merged = [s for s in edges_into(graph, input_at) if s not in keep]
        shared = sorted({d for s, d in graph.edges if s in merged and d in keep and d != input_at})
        if not merged or shared:
            raise ValueError(f"subgraph: input_at {input_at!r} needs outside sources that feed only it; "
                             f"found sources {merged}, also feeding {shared}")
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    for s, d in graph.edges:
        if d not in keep:
            continue
        if s in merged:
            s = f"{input_at}_input"
            if (s, d) in edges:
                continue
            shape = graph.nodes[merged[0]].output_type["output"]
        else:
            shape = None if s in keep else graph.nodes[s].output_type["output"]
        if shape is not None and s not in nodes:
            src = graph.nodes.get(s)
            nodes[s] = (copy.deepcopy(src) if isinstance(src, nir.Input)
                        else nir.Input(input_type={"input": np.asarray(shape)}))
        edges.append((s, d))
    nodes.update({n: copy.deepcopy(graph.nodes[n]) for n in order if n in keep})
    originals = [n for n, x in graph.nodes.items() if isinstance(x, nir.Output) and edges_into(graph, n) == [output]]
    out_name = originals[0] if originals else f"{output}_output"
    while out_name in nodes:
        out_name += "_"
    nodes[out_name] = nir.Output(output_type={"output": np.asarray(graph.nodes[output].output_type["output"])})
    edges.append((output, out_name))
    metadata = {**(graph.metadata or {}), "subgraph_output": output}
    return make_graph(nodes, edges, metadata)


def part_input(graph: nir.NIRGraph, part: Part, records: dict[str, Tensor]) -> Tensor:
    """The input of ``part`` from a run of the whole ``graph``: ``records`` maps node names (Inputs included,
    as `export.interpreter` records them) to ``[T, B, ...]``; fan-in terms are summed left to right in edge
    order, the interpreter's order."""
    missing = [n for n in part.feeds if n not in records]
    if missing:
        raise KeyError(f"records lack {missing}, which feed part {part.source!r}")
    total = records[part.feeds[0]]
    for name in part.feeds[1:]:
        total = total + records[name]
    return total


def loadable_parts(graph: nir.NIRGraph, library: str, *, rewrite: bool = False) -> list[Part]:
    """The maximal single-input parts of ``graph`` that ``library`` imports without a limit, largest first.

    A part grows from a source through every node without a node-level limit whose inputs all come from the
    part or the source. Sources are the graph's Inputs and the nodes the library cannot import, and, for a node
    whose fan-in comes from several such sources (a cross-modal sum), that summed fan-in (``input_at``). Each
    part is cut back to the ancestors of its deepest sink (the libraries return one output); parts inside a
    bigger part are dropped. With ``rewrite``, node names refer to ``rewrite_equivalent(graph)``.
    """
    if rewrite:
        graph = rewrite_equivalent(graph)[0]
    bad = {lim.node for lim in limits(graph, library) if lim.node is not None}
    ok = [n for n, x in graph.nodes.items() if not isinstance(x, (nir.Input, nir.Output)) and n not in bad]
    seeds: list[tuple[str, tuple[str, ...], list[str], str | None]] = [
        (s, (s,), [], None) for s in dict.fromkeys(s for s, d in graph.edges if d in ok and s not in ok)]
    seeds += [(f"{n}_input", tuple(edges_into(graph, n)), [n], n) for n in ok if len(edges_into(graph, n)) > 1]
    parts: list[Part] = []
    for source, feeds, part, input_at in seeds:
        grew = True
        while grew:
            grew = False
            for n in ok:
                preds = edges_into(graph, n)
                if n not in part and preds and all(p in part or (input_at is None and p == source) for p in preds):
                    part.append(n)
                    grew = True
        if not part:
            continue
        anc = {n: _ancestors(graph, n, set(part)) for n in part}
        sinks = [n for n in part if not any(d in part for s, d in graph.edges if s == n)]
        out = max(sinks, key=lambda n: (len(anc[n]), -part.index(n)))
        members = tuple(n for n in graph.nodes if n in anc[out] or n == out)
        if input_at is not None and input_at not in members:
            continue
        parts.append(Part(source, feeds, members, out, input_at))
    parts.sort(key=lambda p: -len(p.nodes))
    kept: list[Part] = []
    for p in parts:
        if not any(set(p.nodes) <= set(q.nodes) for q in kept):
            kept.append(p)
    return kept


def _ancestors(graph: nir.NIRGraph, name: str, within: set[str]) -> set[str]:
    seen: set[str] = set()
    frontier = [name]
    while frontier:
        for s in edges_into(graph, frontier.pop()):
            if s in within and s not in seen:
                seen.add(s)
                frontier.append(s)
    return seen

# ------------------------------------------------------------------------------------------------- report
def _versions() -> dict[str, str]:
    found = {}
    for pkg in ("snntorch", "norse", "nirtorch", "nir"):
        try:
            found[pkg] = version(pkg)
        except PackageNotFoundError:
            found[pkg] = "not installed"
    return found


def _assess(graph: nir.NIRGraph, library: str, rewrite: bool) -> dict[str, Any]:
    importer = to_snntorch if library == "snntorch" else to_norse
    found = limits(graph, library, rewrite=rewrite)
    try:
        importer(graph, rewrite=rewrite, check=False)
        imports, error = True, None
    except Exception as e:  # noqa: BLE001 - the report records whatever the library raised
        imports, error = False, f"{type(e).__name__}: {e}"
    parts = []
    prepared = rewrite_equivalent(graph)[0] if rewrite else graph
    for part in loadable_parts(graph, library, rewrite=rewrite):
        entry: dict[str, Any] = {"source": part.source, "feeds": list(part.feeds), "input_at": part.input_at,
                                 "output": part.output, "nodes": list(part.nodes),
                                 "neurons": [n for n in part.nodes if isinstance(prepared.nodes[n], SPIKING_TYPES)]}
        try:
            importer(subgraph(prepared, part.nodes, part.output, input_at=part.input_at), check=True)
            entry["imports"] = True
        except Exception as e:  # noqa: BLE001
            entry["imports"], entry["error"] = False, f"{type(e).__name__}: {e}"
        parts.append(entry)
    return {"loads": imports and not found, "imports": imports, "error": error,
            "limits": [lim.to_dict() for lim in found], "parts": parts}


def interop_report(graph: nir.NIRGraph) -> dict[str, Any]:
    """For each library: does the whole graph load faithfully, the importer's exact error, every limit, and the
    largest parts that do load — as given and after `rewrite_equivalent` (``"rewritten"``, with ``"rewrites"``).

    ``loads`` is True only if the importer builds a module *and* no limit makes it compute something else;
    ``imports`` says whether the importer returned a module at all (Norse's may while silently dropping nodes).
    """
    rewrites = rewrite_equivalent(graph)[1]
    report: dict[str, Any] = {"versions": _versions(), "dt": graph_dt(graph)}
    for library in LIBRARIES:
        report[library] = {**_assess(graph, library, rewrite=False),
                           "rewritten": {**_assess(graph, library, rewrite=True), "rewrites": rewrites}}
    return report
