"""What snnTorch's and Norse's NIR importers cannot express, and rewrites of snnav nodes they can.

* `limits` names everything in a graph that a library's importer cannot express, with the library's exact message;
* `rewrite_equivalent` replaces SumPool2d/Threshold over spikes by standard nodes that compute the same values.

The full table is ``export/interop/INTEROP.md``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import nir
import numpy as np

from export.ir.nirfile import make_graph
from snnav.errors import UnsupportedGraphError

__all__ = ["LIBRARIES", "SNNTORCH_DT_S", "SPIKING_TYPES", "InteropError", "Limit", "edges_into", "graph_dt", "limits", "rewrite_equivalent"]

LIBRARIES: tuple[str, ...] = ("snntorch", "norse")
SNNTORCH_DT_S = 1e-4  # snntorch/import_nir.py, LIF / CubaLIF / RNN branches: `dt = 1e-4`
class InteropError(UnsupportedGraphError, ValueError):
    """A graph cannot be imported into a library without computing something else; the message lists why."""


SPIKING_TYPES: tuple[type, ...] = (nir.LIF, nir.IF, nir.CubaLIF, nir.Threshold)


def graph_dt(graph: nir.NIRGraph) -> float:
    dt = (graph.metadata or {}).get("dt")
    if not isinstance(dt, (int, float)) or not np.isfinite(dt) or dt <= 0:
        raise InteropError(f"graph.metadata['dt'] must be a positive number of seconds, found {dt!r}; snnav's "
                           "exporter writes it. For a third-party graph set graph.metadata['dt'] first.")
    return float(dt)

# ---------------------------------------------------------------------------------------------- importers


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


def edges_into(graph: nir.NIRGraph, name: str) -> list[str]:
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
    dt = graph_dt(graph)
    found: list[Limit] = []
    inputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
    if len(inputs) > 1:
        msg = ("RuntimeError: Node redefined name is_none! (nirtorch.nir_to_torch builds one placeholder per Input)"
               if library == "snntorch" else
               "nirtorch.load's GraphExecutor feeds the data to one Input only, chosen by set order (logs 'Multiple "
               "input nodes found. Using the first node as the input.'); the other Inputs' branches never run")
        found.append(Limit(library, None, "NIRGraph", f"{len(inputs)} Input nodes {inputs}", msg))
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Output) and len(edges_into(graph, name)) > 1:
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
        srcs = edges_into(graph, name)
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
    dt = graph_dt(graph)
    nodes = copy.deepcopy(dict(graph.nodes))
    done: dict[str, str] = {}
    for name, node in graph.nodes.items():
        if not all(_integer_valued(graph, s) for s in edges_into(graph, name)) or not edges_into(graph, name):
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
