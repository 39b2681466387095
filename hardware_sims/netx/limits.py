"""What netx can load: the node types and chain patterns a ``.net`` file expresses (`netx_limits`), and
`NetxExportError` listing every node it cannot.
"""

from __future__ import annotations

from typing import Any

import nir

from export.ir.extensions import is_extension
from export.ir.graph import flatten_graph
from snnav.errors import UnsupportedGraphError

__all__ = ['NetxExportError', 'netx_limits', 'NETX_MESSAGE_BITS']

SYNAPSE_TYPES = (nir.Conv2d, nir.Conv1d, nir.Affine, nir.Linear)
POOL_TYPES = (nir.SumPool2d, nir.AvgPool2d)
NEURON_TYPES = (nir.LIF, nir.IF, nir.CubaLIF, nir.Threshold)
WIRING_TYPES = (nir.Flatten, nir.Scale, nir.ir.graph.Identity, nir.Input, nir.Output)
READOUT_TYPES = (nir.LI, nir.I, nir.CubaLI)

NETX_NOT_IMPLEMENTED = "NotImplementedError('pool is not implemented.')"
"""What ``netx.hdf5.Network._create`` raises for a ``pool`` layer (likewise average, concat, convT, unpool)."""
NETX_MESSAGE_BITS = 24
"""``input_message_bits`` `run_netx` gives netx for graded (non-binary) inputs, as snnav's compiler does."""


class NetxExportError(UnsupportedGraphError, ValueError):
    """The graph (or a part of it) cannot be written as a netx network; the message lists every reason."""



# ------------------------------------------------------------------------------------------------ what netx takes


def _describe(name: str, node: Any) -> str:
    return f"node {name!r} ({getattr(node, 'type_name', type(node).__name__)})"


def _type_limit(name: str, node: Any, pool_as_conv: bool) -> str | None:
    if is_extension(node):
        return (f"{_describe(name, node)}: an snnav extension node; netx has no such layer (it loads input, conv, "
                "flatten, dense, dense_rec, dense_comp)")
    if isinstance(node, POOL_TYPES) and not pool_as_conv:
        return (f"{_describe(name, node)}: netx cannot load pool layers (hdf5.Network raises {NETX_NOT_IMPLEMENTED}); "
                "pass pool_as_conv=True to write it as a depthwise conv layer (groups = C, a constant kernel), "
                "which netx loads and which is exact on spikes")
    if isinstance(node, READOUT_TYPES):
        return (f"{_describe(name, node)}: a non-spiking readout (its output is the membrane); netx layers send "
                "spikes (CUBA neurons, vThMant <= 131071). End the chain at the last spiking layer")
    if isinstance(node, nir.Delay):
        return (f"{_describe(name, node)}: snnav does not write NIR delays into netx's synaptic 'delay' field "
                "(netx then builds DelayDense, which snnav's compiler does not use)")
    if isinstance(node, (*SYNAPSE_TYPES, *POOL_TYPES, *NEURON_TYPES, *WIRING_TYPES)):
        return None
    return f"{_describe(name, node)}: no netx layer type for this NIR node"


def _ancestors(preds: dict[str, list[str]], name: str) -> set[str]:
    seen, todo = set(), list(preds.get(name, []))
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo += preds.get(n, [])
    return seen


def _chain(flat) -> tuple[list[str], list[str]]:
    """The node names from the Input along the single path, and the topology limits (branches, fan-in, inputs)."""
    limits = []
    preds: dict[str, list[str]] = {n: [] for n in flat.nodes}
    succs: dict[str, list[str]] = {n: [] for n in flat.nodes}
    for e in flat.edges:
        preds[e.dst].append(e.src)
        succs[e.src].append(e.dst)
    if len(flat.inputs) != 1:
        limits.append(f"the graph has Inputs {list(flat.inputs)}: a netx network has one input (layer 0). Write each "
                      "input's chain separately (export.interop.parts.subgraph)")
    for name in flat.nodes:
        if len(succs[name]) > 1:
            limits.append(f"{_describe(name, flat.nodes[name])} feeds {succs[name]}: netx networks are a sequence of "
                          "layers, each feeding only the next (skip connections need 'concat', which raises "
                          "NotImplementedError)")
        if len(preds[name]) > 1:
            loop = [p for p in preds[name] if p in _descendants(succs, name) | {name}]
            why = (f"a recurrent edge from {loop} (netx's dense_rec is not written by snnav)" if loop else
                   "netx has no layer that adds two inputs (no add; concat raises NotImplementedError)")
            limits.append(f"{_describe(name, flat.nodes[name])} sums inputs from {preds[name]}: {why}")
    order = []
    if flat.inputs:
        node, seen = flat.inputs[0], set()
        while node is not None and node not in seen:
            seen.add(node)
            order.append(node)
            node = succs[node][0] if len(succs[node]) == 1 else None
    return order, limits


def _descendants(succs: dict[str, list[str]], name: str) -> set[str]:
    return _ancestors(succs, name)


def _pattern_limits(flat, order: list[str]) -> list[str]:
    """Layers must be (synapse, spiking neuron) pairs; the chain ends in a spiking neuron read by an Output."""
    limits, pending = [], None  # pending: the synapse waiting for its neuron
    for name in order[1:]:
        node = flat.nodes[name]
        if isinstance(node, (*SYNAPSE_TYPES, *POOL_TYPES)):
            if pending is not None:
                limits.append(f"{_describe(name, node)} follows {pending!r} without a neuron between: a netx layer is "
                              "one synapse and its neurons; fold the two linear layers into one or add a neuron")
            pending = name
        elif isinstance(node, NEURON_TYPES):
            if pending is None:
                limits.append(f"{_describe(name, node)} receives no synapse (it is fed by the input or another "
                              "neuron): every netx layer starts with weights; insert an identity Linear")
            pending = None
    if pending is not None:
        limits.append(f"the chain ends with {_describe(pending, flat.nodes[pending])} and no neuron: netx layers "
                      "send spikes; end the chain at a spiking neuron")
    spiking = [n for n in order if isinstance(flat.nodes[n], NEURON_TYPES)]
    if not spiking and flat.inputs:
        limits.append("the chain has no spiking layer: nothing for netx to build")
    return limits


def netx_limits(graph: nir.NIRGraph, *, pool_as_conv: bool = False) -> list[str]:
    """Everything in `graph` that netx cannot express, one message per node or property ([] when writable).

    Parameter checks that need the folded values (uniform tau/threshold, v_reset, weight range) happen in
    `write_netx` (through snnav's Lava planner) and are not listed here.
    """
    flat = flatten_graph(graph)
    limits = [msg for name, node in flat.nodes.items() if (msg := _type_limit(name, node, pool_as_conv))]
    order, topo = _chain(flat)
    limits += topo
    if not limits:
        limits += _pattern_limits(flat, order)
    return limits
