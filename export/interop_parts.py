"""Interop analysis: what snnTorch's and Norse's NIR importers cannot express, and which parts of a graph they do
import faithfully.

The import/run side (`to_snntorch`, `to_norse`, `run_imported`) is ``export.interop``, which re-exports every
public name of this module. Here:

* `limits` names everything in a graph that a library's importer cannot express, with the library's exact message;
* `rewrite_equivalent` replaces SumPool2d/Threshold over spikes by standard nodes that compute the same values;
* `subgraph`, `loadable_parts` and `part_input` cut a graph into the single-input parts a library imports and feed
  them from a whole-graph run;
* `interop_report` gathers all of this per library, as given and rewritten (the full table: ``export/INTEROP.md``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import nir
import numpy as np
from torch import Tensor

from export.interop import LIBRARIES, SPIKING_TYPES, _graph_dt, to_norse, to_snntorch
from export.nirfile import make_graph

__all__ = [
    "Limit", "Part", "interop_report", "limits", "loadable_parts", "part_input", "rewrite_equivalent", "subgraph",
]


@dataclass(frozen=True)
class Limit:
    """One thing a library's importer cannot express. ``node`` is None for a property of the whole graph."""

    library: str
    node: str | None
    node_type: str
    feature: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"library": self.library, "node": self.node, "node_type": self.node_type, "feature": self.feature,
                "message": self.message}

    def __str__(self) -> str:
        where = "graph" if self.node is None else f"node {self.node!r} ({self.node_type})"
        return f"{self.library}: {where}, {self.feature}: {self.message}"


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

# ------------------------------------------------------------------------------------------------ limits
_NodeCheck = Callable[[str, Any], list[Limit]]


def _unknown_to_nirtorch(lib: str) -> _NodeCheck:
    def check(name: str, node: Any) -> list[Limit]:
        return [Limit(lib, name, type(node).__name__, "node type",
                      f"ValueError: Unknown node type {type(node)}, mapping does not exist in node_map")]
    return check


def _dropped_by_norse(name: str, node: Any) -> list[Limit]:
    return [Limit("norse", name, type(node).__name__, "node type",
                  "norse's _import_norse_module returns None for this type; nirtorch.load then silently drops the "
                  "node (edges to and from it are ignored) when it is the graph's only such node, and raises "
                  "KeyError '<node name>' when there are several")]


def _pool_padding(lib: str) -> _NodeCheck:
    def check(name: str, node: nir.SumPool2d) -> list[Limit]:
        pad = np.broadcast_to(np.asarray(node.padding), (2,))
        if not np.any(pad):
            return []
        k, s = np.broadcast_to(np.asarray(node.kernel_size), (2,)), np.broadcast_to(np.asarray(node.stride), (2,))
        c, h, w = (int(d) for d in node.input_type["input"])
        nir_hw = [(n + 2 * p - kk) // ss + 1 for n, p, kk, ss in zip((h, w), pad, k, s)]
        lib_hw = [(n - kk) // ss + 1 for n, kk, ss in zip((h, w), k, s)]
        return [Limit(lib, name, "SumPool2d", "padding",
                      f"mapped to torch.nn.LPPool2d(norm_type=1, kernel_size, stride) without padding {pad.tolist()}"
                      f" (nirtorch: '# TODO: Add support for padding'): output {c}x{lib_hw[0]}x{lib_hw[1]} instead "
                      f"of {c}x{nir_hw[0]}x{nir_hw[1]}")]
    return check


def _snntorch_lif(name: str, node: nir.LIF, dt: float) -> list[Limit]:
    out = []
    if not np.allclose(node.v_leak, 0.0):
        out.append(Limit("snntorch", name, "LIF", "v_leak", "AssertionError: v_leak not supported"))
    if np.any(np.asarray(node.v_reset) != 0):
        out.append(Limit("snntorch", name, "LIF", "v_reset",
                         "snn.Leaky(reset_mechanism='zero') resets to 0; v_reset is ignored"))
    if np.unique(node.v_threshold).size != 1:
        out.append(Limit("snntorch", name, "LIF", "v_threshold",
                         "AssertionError: v_threshold must be same for all neurons"))
    coef = dt / np.asarray(node.tau, dtype=np.float64)
    if np.unique(np.asarray(node.r) * coef).size != 1:
        out.append(Limit("snntorch", name, "LIF", "r*dt/tau",
                         "the threshold is divided by the smallest value of r*dt/tau only "
                         "(AssertionError: LIF v_thr must be same for all neurons, or silently wrong)"))
    if np.any(coef > 1):
        out.append(Limit("snntorch", name, "LIF", "tau < dt", "beta = 1 - dt/tau < 0 is clamped to 0 by snn.Leaky"))
    return out


def _norse_lif(name: str, node: nir.LIF, dt: float) -> list[Limit]:
    out = []
    if not np.allclose(node.r, 1.0):
        out.append(Limit("norse", name, "LIF", "r", "LIFBoxCell has no r; Norse logs 'The parameter r is expected "
                                                    "to be set to 1' and ignores it"))
    if np.any(np.asarray(node.v_reset) != 0):
        out.append(Limit("norse", name, "LIF", "v_reset", "LIFBoxParameters gets no v_reset: resets to 0"))
    if not np.allclose(node.v_leak, 0.0):
        out.append(Limit("norse", name, "LIF", "v_leak", "LIFBoxCell starts from v = v_leak (NIR: v = 0)"))
    return out


def _norse_cubalif(name: str, node: nir.CubaLIF, dt: float) -> list[Limit]:
    out = []
    if not np.allclose(node.v_leak, 0.0):
        out.append(Limit("norse", name, "CubaLIF", "v_leak", "imported as an LIBoxCell synapse with v_leak: the "
                                                             "current decays to v_leak (NIR: to 0)"))
    if np.any(np.asarray(node.v_reset) != 0):
        out.append(Limit("norse", name, "CubaLIF", "v_reset", "LIFBoxParameters gets no v_reset: resets to 0"))
    return out


def _norse_if(name: str, node: nir.IF, dt: float) -> list[Limit]:
    if np.allclose(np.asarray(node.r) * dt, 1.0) and not np.any(np.asarray(node.v_reset) != 0):
        return []
    return [Limit("norse", name, "IF", "r, dt, v_reset", "IAFCell computes v + x (no dt, no r) and resets to 0")]


def _mapped(name: str, node: Any) -> list[Limit]:
    return []


# node type -> check(name, node) for the stateless types the importer maps; types in neither table are unsupported.
_SUPPORTED: dict[str, dict[type, Callable[[str, Any], list[Limit]]]] = {
    "snntorch": {nir.Affine: _mapped, nir.Linear: _mapped, nir.Conv1d: _mapped, nir.Conv2d: _mapped,
                 nir.Flatten: _mapped, nir.AvgPool2d: _mapped, nir.SumPool2d: _pool_padding("snntorch")},
    "norse": {nir.Affine: _mapped, nir.Linear: _mapped, nir.Conv2d: _mapped, nir.Flatten: _mapped,
              nir.SumPool2d: _pool_padding("norse")},
}
# neuron type -> check(name, node, dt)
_NEURONS: dict[str, dict[type, Callable[[str, Any, float], list[Limit]]]] = {
    "snntorch": {
        nir.LIF: _snntorch_lif,
        nir.IF: lambda n, x, dt: [Limit("snntorch", n, "IF", "neuron",
                                        "mapped to snn.Leaky(beta=0.9, init_hidden=False): leaky, and returns a "
                                        "(spk, mem) tuple that nirtorch passes on as the output; r != 1: "
                                        "AssertionError: r != 1 not supported")],
        nir.CubaLIF: lambda n, x, dt: [] if np.allclose(x.r * dt, x.tau_mem) else [
            Limit("snntorch", n, "CubaLIF", "r", "AssertionError: r not supported in CubaLIF (needs r = tau_mem/dt)")],
    },
    "norse": {
        nir.LIF: _norse_lif,
        nir.IF: _norse_if,
        nir.CubaLIF: _norse_cubalif,
    },
}


def _edges_into(graph: nir.NIRGraph, name: str) -> list[str]:
    return [s for s, d in graph.edges if d == name]


def limits(graph: nir.NIRGraph, library: str, *, rewrite: bool = False) -> list[Limit]:
    """Everything in ``graph`` that ``library``'s importer cannot express (empty: it imports faithfully).

    Args:
        graph: an snnav graph (``metadata["dt"]``); never modified.
        library: "snntorch" or "norse".
        rewrite: judge the graph after `rewrite_equivalent` (as ``to_*(rewrite=True)`` imports it).
    """
    if library not in LIBRARIES:
        raise ValueError(f"library must be one of {LIBRARIES}, got {library!r}")
    if rewrite:
        graph = rewrite_equivalent(graph)[0]
    dt = _graph_dt(graph)
    found: list[Limit] = []
    inputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
    if len(inputs) > 1:
        msg = ("RuntimeError: Node redefined name is_none! (nirtorch.nir_to_torch builds one placeholder per Input)"
               if library == "snntorch" else
               "nirtorch.load's GraphExecutor feeds the data to one Input only, chosen by set order (logs 'Multiple "
               "input nodes found. Using the first node as the input.'); the other Inputs' branches never run")
        found.append(Limit(library, None, "NIRGraph", f"{len(inputs)} Input nodes {inputs}", msg))
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Output) and len(_edges_into(graph, name)) > 1:
            msg = ("nirtorch returns the incoming terms as separate outputs, not their sum"
                   if library == "snntorch" else "GraphExecutor returns the last executed term, not the sum")
            found.append(Limit(library, name, "Output", "fan-in", msg))
        if isinstance(node, (nir.Input, nir.Output)):
            continue
        if type(node) in _NEURONS[library]:
            found += _NEURONS[library][type(node)](name, node, dt)
        elif type(node) in _SUPPORTED[library]:
            found += _SUPPORTED[library][type(node)](name, node)
        elif library == "snntorch":
            found += _unknown_to_nirtorch("snntorch")(name, node)
        else:
            found += _dropped_by_norse(name, node)
    return found

# ---------------------------------------------------------------------------------------------- rewrites
def _integer_valued(graph: nir.NIRGraph, name: str) -> bool:
    """True if the node's output is integer-valued by construction: spikes, or pooled/flattened spikes."""
    node = graph.nodes[name]
    if isinstance(node, SPIKING_TYPES):
        return True
    if isinstance(node, (nir.SumPool2d, nir.Flatten)):
        srcs = _edges_into(graph, name)
        return bool(srcs) and all(_integer_valued(graph, s) for s in srcs)
    return False


def _pool_as_conv(node: nir.SumPool2d, dtype: np.dtype) -> nir.Conv2d:
    """``SumPool2d`` as a Conv2d whose kernel is 1 on the channel diagonal (``w[c, c] = ones(k)``), else 0.

    Depthwise (``groups = C``) would be cheaper, but nir 1.0.8 types a Conv2d's input as ``weight.shape[1]``
    channels whatever ``groups`` is, so a depthwise conv fails NIR's own type check.
    """
    c, h, w = (int(d) for d in node.input_type["input"])
    k = np.broadcast_to(np.asarray(node.kernel_size), (2,)).astype(int)
    weight = np.zeros((c, c, k[0], k[1]), dtype=dtype)
    weight[np.arange(c), np.arange(c)] = 1
    return nir.Conv2d(input_shape=(h, w), weight=weight,
                      stride=tuple(int(s) for s in np.broadcast_to(np.asarray(node.stride), (2,))),
                      padding=tuple(int(p) for p in np.broadcast_to(np.asarray(node.padding), (2,))),
                      dilation=1, groups=1, bias=np.zeros(c, dtype=dtype),
                      metadata={**(node.metadata or {}), "interop_rewrite": "SumPool2d"})


def _threshold_as_lif(node: nir.Threshold, dt: float) -> nir.LIF:
    th = np.asarray(node.threshold, dtype=np.float64)
    full = lambda v: np.full(th.shape, v, dtype=np.float64)  # noqa: E731
    return nir.LIF(tau=full(dt), r=full(1.0), v_leak=full(0.0), v_threshold=th, v_reset=full(0.0),
                   metadata={**(node.metadata or {}), "interop_rewrite": "Threshold"})


def rewrite_equivalent(graph: nir.NIRGraph) -> tuple[nir.NIRGraph, dict[str, str]]:
    """A copy of ``graph`` with the nodes no importer maps replaced by equal-valued standard nodes.

    * ``SumPool2d(k, s, p)`` over integer-valued input (spikes) -> ``Conv2d`` with a kernel of ones on the channel
      diagonal (zeros elsewhere), the same stride and padding, zero bias: the same window sums. Every product is
      0 or an input value, so the sums are sums of integers, exact in float32 below 2^24 in any order.
    * ``Threshold(th)`` over integer-valued input -> ``LIF(tau = dt, r = 1, v_leak = 0, v_threshold = th,
      v_reset = 0)``: ``v <- v + 1 * ((0 - v) + x) = x`` exactly for integers, then ``z = x > th``. (snnTorch
      imports it with beta = 0 exactly, so its membrane is ``0 * m + x = x`` for any finite x.)

    Names are kept, so a rewritten node's output is compared with the original node's. Nodes whose input is not
    integer-valued are left alone (and stay limits). Returns the copy and ``{node: what was done}``.
    """
    dt = _graph_dt(graph)
    nodes = copy.deepcopy(dict(graph.nodes))
    done: dict[str, str] = {}
    for name, node in graph.nodes.items():
        if not all(_integer_valued(graph, s) for s in _edges_into(graph, name)) or not _edges_into(graph, name):
            continue
        if isinstance(node, nir.SumPool2d):
            nodes[name] = _pool_as_conv(node, np.dtype((graph.metadata or {}).get("dtype", "float32")))
            done[name] = "SumPool2d -> Conv2d with ones on the channel diagonal (same stride/padding)"
        elif isinstance(node, nir.Threshold):
            nodes[name] = _threshold_as_lif(node, dt)
            done[name] = "Threshold -> LIF(tau=dt, r=1, v_leak=0, v_reset=0)"
    if not done:
        return copy.deepcopy(graph), done
    return make_graph(nodes, list(graph.edges), dict(graph.metadata or {})), done

# --------------------------------------------------------------------------------------------- subgraphs
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
        merged = [s for s in _edges_into(graph, input_at) if s not in keep]
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
    originals = [n for n, x in graph.nodes.items() if isinstance(x, nir.Output) and _edges_into(graph, n) == [output]]
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
    seeds += [(f"{n}_input", tuple(_edges_into(graph, n)), [n], n) for n in ok if len(_edges_into(graph, n)) > 1]
    parts: list[Part] = []
    for source, feeds, part, input_at in seeds:
        grew = True
        while grew:
            grew = False
            for n in ok:
                preds = _edges_into(graph, n)
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
        for s in _edges_into(graph, frontier.pop()):
            if s in within and s not in seen:
                seen.add(s)
                frontier.append(s)
    return seen

# ------------------------------------------------------------------------------------------------- report
def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

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
    report: dict[str, Any] = {"versions": _versions(), "dt": _graph_dt(graph)}
    for library in LIBRARIES:
        report[library] = {**_assess(graph, library, rewrite=False),
                           "rewritten": {**_assess(graph, library, rewrite=True), "rewrites": rewrites}}
    return report
