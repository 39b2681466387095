"""Sequential NIR chains -> lava-dl netx ``.net`` HDF5, with the integers snnav's Lava compiler runs (numpy/h5py/nir).

`write_netx(graph, path)` writes a chain ``Input -> (Conv2d | Conv1d | Affine | Linear [| SumPool2d | AvgPool2d])
-> neuron -> ... [Flatten]`` in the layout that ``lava.lib.dl.netx.hdf5.Network`` loads (lava-dl 0.6.0,
``lib/dl/netx/hdf5.py``; field by field in ``hardware_sims/NETX.md``), and returns a `NetxReport` whose ``plan`` is
snnav's fixed-point Lava plan holding exactly the integers written: ``run_lava(report.plan, x, precision="fixed")``
and `run_netx` (netx's own loader on Lava) then compute the same spikes, which is the conformance check.

What the writer maps, per layer (``w``, ``b`` the plan's folded weights and neuron bias, ``S = 2**(12 + se)`` the
layer's state scale, ``se`` its ``state_exp``):

* weights: ``hardware_sims.quantize.quantize_weights(w, state_exp=se, input_exp=ie, target="conv")`` must give
  exponent 0: netx stores no weight exponent (it derives its own in ``utils.optimize_weight_bits`` and undoes it
  exactly) and its conv passes integers to Lava's ``Conv`` as they are. ``weight = mant`` (mixed sign: even values
  in [-256, 254], slayer's ``quantize_8bit`` grid at ``se = 0``);
* neuron (netx ``get_neuron_params``: ``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``, ``bias_exp = 6``):
  ``quantize_lif(dv, du, vth, b, state_exp=se)`` gives ``iDecay = du_fx + 1``, ``vDecay = dv_fx``, ``vThMant =
  vth_mant``; the bias goes on netx's fixed grid ``bias = rint(b * S / 2**6)`` (13-bit), written when nonzero.

``quant="slayer"`` (default) uses ``se = ie`` (0 for spikes): netx's documented convention ``vThMant = theta * 64``,
weights ``w * 64``. ``quant="fit"`` takes, per layer, the largest ``se`` whose weights still fit at exponent 0
(finer weights and threshold; nothing in the file marks the scale, netx needs none).

Anything netx cannot express raises `NetxExportError`, listing every offending node (`netx_limits` returns the list).
This module imports nir, numpy, h5py and snnav's torch-free Lava planner/quantizer; `run_netx` imports Lava.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import h5py
import nir
import numpy as np

from export.ir.extensions import is_extension
from export.ir.graph import flatten_graph
from hardware_sims import loihi_formats as lf
from hardware_sims.lava_backend.errors import LavaBackendError
from hardware_sims.lava_backend.plan import Plan, build_plan
from hardware_sims.plan_quantizer import PlanQuant
from hardware_sims.quantize import (
    STATE_EXP_MAX, STATE_EXP_MIN, QuantLIF, QuantReport, QuantWeights, choose_state_exp, quantize_lif,
    quantize_weights,
)
from snnav.errors import UnsupportedGraphError

__all__ = ["NetxExportError", "NetxLayer", "NetxReport", "NetxRun", "netx_limits", "write_netx", "read_netx_layers",
           "run_netx", "NETX_MESSAGE_BITS"]

logger = logging.getLogger(__name__)

SYNAPSE_TYPES = (nir.Conv2d, nir.Conv1d, nir.Affine, nir.Linear)
POOL_TYPES = (nir.SumPool2d, nir.AvgPool2d)
NEURON_TYPES = (nir.LIF, nir.IF, nir.CubaLIF, nir.Threshold)
WIRING_TYPES = (nir.Flatten, nir.Scale, nir.ir.graph.Identity, nir.Input, nir.Output)
READOUT_TYPES = (nir.LI, nir.I, nir.CubaLI)

NETX_NOT_IMPLEMENTED = "NotImplementedError('pool is not implemented.')"
"""What ``netx.hdf5.Network._create`` raises for a ``pool`` layer (likewise average, concat, convT, unpool)."""
NETX_MESSAGE_BITS = 24
"""``input_message_bits`` `run_netx` gives netx for graded (non-binary) inputs, as snnav's compiler does."""
NETX_REF_DELAY = 1
"""slayer's default ``refDelay``, written as slayer does; netx does not use it (Lava's LIF has no refractory period)."""


class NetxExportError(UnsupportedGraphError, ValueError):
    """The graph (or a part of it) cannot be written as a netx network; the message lists every reason."""


@dataclass(frozen=True)
class NetxLayer:
    """One ``/layer/<index>`` entry of the file.

    Attributes:
        index: position in ``/layer``.
        type: "input", "flatten", "dense" or "conv".
        synapse: NIR node of the layer's weights (None for input/flatten).
        neuron: NIR node of the layer's neurons, whose spikes the layer sends (None for input/flatten).
        shape: NIR shape of the layer's output (C-order, e.g. ``(C, H, W)``); the file stores it as written here and
            netx reverses it to Lava's ``(x, y, z) = (W, H, C)``.
        state_exp: the layer's ``state_exp`` (real v = integer / 2**(12 + state_exp)).
        latency: Lava step (within a sample) at which the layer's spikes of NIR step 0 appear: netx's k-th spiking
            layer (from 1) has latency k, as in snnav's compiler.
        fields: the netx fields written (scalars; array fields summarised).
    """

    index: int
    type: str
    synapse: str | None
    neuron: str | None
    shape: tuple[int, ...]
    state_exp: int | None = None
    latency: int | None = None
    fields: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class NetxReport:
    """What `write_netx` wrote.

    Attributes:
        path: the ``.net`` file.
        layers: every ``/layer`` entry in order.
        input_name, input_shape: the graph's Input node and its NIR shape.
        input_exp: fractional bits of the input messages (``m = rint(x * 2**input_exp)``; 0 for spikes/integers).
        quant: "slayer" or "fit".
        plan: snnav's fixed-point plan with the written integers: ``run_lava(plan, x, precision="fixed")``.
        report: every rounding and clip (``hardware_sims.quantize.QuantReport``; bias on netx's 2**6 grid).
        notes: rewrites and conventions applied (pool as conv, Threshold as a CUBA neuron, ...).
    """

    path: str
    layers: tuple[NetxLayer, ...]
    input_name: str
    input_shape: tuple[int, ...]
    input_exp: int
    quant: str
    plan: Plan
    report: QuantReport
    notes: tuple[str, ...] = ()

    @property
    def spiking_layers(self) -> tuple[NetxLayer, ...]:
        return tuple(layer for layer in self.layers if layer.neuron is not None)

    def steps_per_sample(self, time_steps: int) -> int:
        """Lava steps per sample: T plus one per spiking layer (``plan.steps_per_sample``)."""
        return int(time_steps) + len(self.spiking_layers)

    def to_dict(self) -> dict:
        return {"path": self.path, "layers": [layer.to_dict() for layer in self.layers], "input_name": self.input_name,
                "input_shape": list(self.input_shape), "input_exp": self.input_exp, "quant": self.quant,
                "report": self.report.to_dict(), "notes": list(self.notes)}


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


# ---------------------------------------------------------------------------------------------- quantization


def _quantize_layer(w, neuron: dict, *, ie: int, quant: str, graded: bool, name: str) -> tuple[QuantWeights,
                                                                                               QuantLIF, int]:
    """Weights at exponent 0 and the neuron on netx's bias grid, at the layer's state_exp."""
    vth, bias = float(neuron["vth"]), np.asarray(neuron.get("bias", 0.0), dtype=np.float64)
    bias_max = float(np.abs(bias).max(initial=0.0))

    if hasattr(w, "tocsr"):  # canonical CSR: quantize_weights rebuilds the matrix with w.astype, which sorts indices
        w = w.tocsr(copy=True)
        w.sum_duplicates()

    def weights(se: int) -> QuantWeights:
        return quantize_weights(w, state_exp=se, input_exp=ie, target="conv", signed_input=graded)

    if quant == "slayer":
        se = ie
        q = weights(se)
        if q.exp != 0:
            raise NetxExportError(
                f"layer {name!r}: weights up to {np.abs(q.dequantize()).max():.4g} (real, folded) exceed netx's 8-bit "
                f"range at state_exp {se} (slayer's w * 64 in [-256, 254]); they would need weight exponent {q.exp}, "
                "which netx cannot store. Pass quant='fit' (a coarser state scale for this layer)")
    elif quant == "fit":
        top = choose_state_exp(vth, bias_max=0.0)
        ok_bias = [s for s in range(STATE_EXP_MIN, STATE_EXP_MAX + 1)
                   if np.rint(bias_max * lf.state_scale(s) / 2**lf.NETX_BIAS_EXP) <= lf.BIAS_MANT_MAX]
        top = min(top, max(ok_bias, default=STATE_EXP_MIN))
        se = next((s for s in range(top, STATE_EXP_MIN - 1, -1) if weights(s).exp == 0), STATE_EXP_MIN)
        q = weights(se)
        if q.exp != 0:
            raise NetxExportError(f"layer {name!r}: weights up to {np.abs(q.dequantize()).max():.4g} (real, folded) "
                                  f"do not fit 8 bits at any state scale (state_exp >= {STATE_EXP_MIN})")
    else:
        raise ValueError(f"quant must be 'slayer' or 'fit', found {quant!r}")
    n = quantize_lif(float(neuron["dv"]), float(neuron["du"]), vth, bias, state_exp=se)
    if "vth" in n.clipped:
        raise NetxExportError(f"layer {name!r}: threshold {vth:g} needs vThMant > {lf.VTH_MANT_MAX} at state_exp {se}"
                              " (17 bits); use quant='fit' or rescale the layer")
    raw = np.rint(bias * lf.state_scale(se) / 2**lf.NETX_BIAS_EXP)  # netx: bias_exp = 6 for every CUBA neuron
    mant = np.clip(raw, lf.BIAS_MANT_MIN, lf.BIAS_MANT_MAX).astype(np.int32)
    real = mant * 2.0**lf.NETX_BIAS_EXP / lf.state_scale(se)
    err = np.abs(real - bias)
    norm = float(np.linalg.norm(bias))
    errors = {**n.errors, "bias": float(err.max(initial=0.0)),
              "bias_rel": float(np.linalg.norm(real - bias)) / norm if norm > 0 else 0.0}
    clipped = tuple(c for c in n.clipped if not c.startswith("bias")) + tuple(
        f"bias[{i}]" for i in np.flatnonzero(mant.reshape(-1) != raw.reshape(-1)))
    n = dataclasses.replace(n, bias_mant=mant.reshape(bias.shape or (1,)), bias_exp=lf.NETX_BIAS_EXP, errors=errors,
                            clipped=clipped)
    return q, n, se


def _check_dense_signs(mant, name: str) -> None:
    """netx cannot load a dense matrix without a positive weight exactly (see NETX.md, 'weights')."""
    values = mant.data if hasattr(mant, "tocsr") else np.asarray(mant)
    if values.size == 0 or not np.any(values):
        raise NetxExportError(f"layer {name!r}: all weights quantize to 0; netx's optimize_weight_bits divides by the "
                              "largest weight and fails on an all-zero matrix")
    if values.max() <= 0:
        raise NetxExportError(
            f"layer {name!r}: every weight is <= 0 (inhibitory); netx shifts such a matrix to a minimum of -256, "
            "which Lava's inhibitory clip turns into -255 and truncates (weights change). Not written")


# ---------------------------------------------------------------------------------------------------- writing


def _neuron_fields(n: QuantLIF) -> dict[str, Any]:
    return {"type": "CUBA", "iDecay": int(n.du) + lf.DU_OFFSET, "vDecay": int(n.dv), "vThMant": int(n.vth_mant),
            "refDelay": NETX_REF_DELAY, "gradedSpike": False}


def _put(h: h5py.Group, key: str, value: Any) -> None:
    if key == "type":  # as slayer's export_hdf5: a (1,) fixed-length ASCII array
        h.create_dataset(key, (1,), "S10", [str(value).encode("ascii")])
    elif isinstance(value, np.ndarray) and value.size > 4096:
        h.create_dataset(key, data=value, compression="gzip")
    else:
        h.create_dataset(key, data=value)


def _write_file(path: str, entries: list[dict], attrs: dict[str, Any]) -> None:
    """Write to a temporary file beside `path`, then rename (an existing file is never left half-written)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".netx-", suffix=".net", dir=folder)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            for key, value in attrs.items():
                f.attrs[key] = value
            layers = f.create_group("layer")
            for i, entry in enumerate(entries):
                h = layers.create_group(str(i))
                for key, value in entry["fields"].items():
                    _put(h, key, value)
                for key, value in entry.get("neuron", {}).items():
                    h.create_dataset(f"neuron/{key}", data=value)
                for key, value in entry.get("attrs", {}).items():
                    h.attrs[key] = value
            if attrs.get("time_steps"):
                f.create_dataset("simulation/Ts", data=1)
                f.create_dataset("simulation/tSample", data=int(attrs["time_steps"]))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _summary(fields: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in fields.items():
        if isinstance(value, np.ndarray) and value.size > 4:
            out[key] = {"shape": list(value.shape), "min": float(value.min()), "max": float(value.max())}
        elif isinstance(value, np.ndarray):
            out[key] = value.tolist()
        else:
            out[key] = value
    return out


def _conv_bias(mant: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """netx broadcasts a (C,) bias over a conv layer; a per-neuron one must be in Lava's (x, y, z) order."""
    full = np.broadcast_to(mant, shape)  # (C, H, W)
    per_channel = full.reshape(shape[0], -1)
    if np.all(per_channel == per_channel[:, :1]):
        return per_channel[:, 0].astype(np.float32)
    return full.transpose(2, 1, 0).astype(np.float32)  # netx: list(bias.shape) == list(self.shape) (x, y, z)


def _plan_chain(plan: Plan) -> list[tuple[Any, Any]]:
    """(synapse spec, neuron spec) pairs from the input, checking that the plan is a plain chain."""
    extra = [p.name for p in plan.processes.values() if p.kind in ("delay", "extension") or p.role not in
             ("node", "gain")]
    if extra:
        raise NetxExportError(f"snnav's planner needs processes {extra} that netx cannot express (delays, extension "
                              "processes or readout synapses)")
    out = {}
    for c in plan.connections:
        out.setdefault(c.src, []).append(c.dst)
    (inp,) = plan.inputs.values()
    pairs, node = [], inp
    while out.get(node):
        (syn,) = out[node]
        (neu,) = out[syn]
        pairs.append((plan.processes[syn], plan.processes[neu]))
        node = neu
    return pairs


def write_netx(graph: nir.NIRGraph | str | os.PathLike, path: str | os.PathLike, *, quant: str = "slayer",
               input_exp: int = 0, pool_as_conv: bool = False, dt: float | None = None) -> NetxReport:
    """Write a sequential NIR chain as a netx ``.net`` file.

    Args:
        graph: a ``nir.NIRGraph`` (or a ``.nir`` path) with one Input and a chain of (synapse, spiking neuron)
            layers; Flatten, Scale and Identity nodes are folded.
        path: the ``.net`` file to write (replaced atomically).
        quant: "slayer" (``state_exp = input_exp``: ``vThMant = theta * 64``, weights ``w * 64``) or "fit" (per
            layer the finest state scale whose weights fit 8 bits at exponent 0).
        input_exp: fractional bits of the input messages (0: spikes or integer counts). `run_netx` and
            ``run_lava(report.plan, ...)`` both send ``rint(x * 2**input_exp)``.
        pool_as_conv: write SumPool2d/AvgPool2d as a depthwise conv layer (netx cannot load ``pool``).
        dt: seconds per step; default ``graph.metadata["dt"]``.

    Returns:
        A `NetxReport` (``report.plan`` runs the same integers in snnav's compiler).

    Raises:
        NetxExportError: every part of the graph netx cannot express, or weights/thresholds outside netx's formats.
    """
    if not isinstance(graph, nir.NIRGraph):
        from export.ir.nirfile import read_graph  # noqa: PLC0415 - h5py only

        graph = read_graph(graph)
    if quant not in ("slayer", "fit"):
        raise ValueError(f"quant must be 'slayer' or 'fit', found {quant!r}")
    limits = netx_limits(graph, pool_as_conv=pool_as_conv)
    if limits:
        raise NetxExportError("cannot write this graph as a netx network:\n  - " + "\n  - ".join(limits))
    flat = flatten_graph(graph)
    try:
        plan = build_plan(graph, dt=dt)
    except LavaBackendError as exc:  # non-uniform tau/threshold, v_reset != 0, constants into Cuba neurons, ...
        raise NetxExportError(f"netx's CUBA layers use the same Lava LIF as snnav's compiler, which refuses this graph:"
                              f" {exc}") from exc
    pairs = _plan_chain(plan)
    (input_name,) = plan.inputs
    in_shape = tuple(int(d) for d in plan.input_shapes[input_name])
    entries: list[dict] = [{"fields": {"type": "input", "shape": np.array(in_shape)},
                            "attrs": {"nir_node": input_name, "nir_shape": np.array(in_shape)}}]
    layers = [NetxLayer(0, "input", None, None, in_shape, fields={"shape": list(in_shape)})]
    synapses, neurons, state_exps, message_exps, reports = {}, {}, {}, {input_name: int(input_exp)}, []
    notes, prev_dims, ie = [], len(in_shape), int(input_exp)
    for k, (syn, neu) in enumerate(pairs):
        node = flat.nodes.get(syn.node)
        q, n, se = _quantize_layer(syn.params["weights"] if syn.kind != "conv" else syn.params["weight"],
                                   dict(neu.params), ie=ie, quant=quant, graded=syn.graded_in, name=syn.node)
        bias = np.asarray(n.bias_mant)
        if syn.kind == "conv":
            if prev_dims != 3:
                raise NetxExportError(f"layer {syn.node!r}: a conv layer after a dense one; netx has no unflatten")
            c_out = int(syn.shape[0])
            w = np.asarray(q.conv_weight(), dtype=np.float32)  # (C_out, C_in/groups, kh, kw), cross-correlation
            p = syn.params
            fields = {"type": "conv", "shape": np.array(syn.shape), "inChannels": int(syn.in_shape[0]),
                      "outChannels": c_out, "kernelSize": np.array(w.shape[2:]), "stride": np.array(p["stride"]),
                      "padding": np.array(p["padding"]), "dilation": np.array(p["dilation"]),
                      "groups": int(p["groups"]), "weight": w}
            if np.any(bias):
                fields["bias"] = _conv_bias(bias, tuple(neu.shape))
            if isinstance(node, POOL_TYPES):
                notes.append(f"{syn.node!r} ({type(node).__name__}) written as a depthwise conv layer (groups = "
                             f"{int(p['groups'])}, kernel {w.shape[2:]} of {np.unique(w).tolist()})")
        else:
            if prev_dims == 3:  # netx: 'flatten' makes the next dense read (x, y, z) transposed to (C, H, W)
                size = int(np.prod(syn.in_shape))
                entries.append({"fields": {"type": "flatten", "shape": np.array([size, 1, 1])}})
                layers.append(NetxLayer(len(layers), "flatten", None, None, (size,)))
            mant = q.mant.toarray() if hasattr(q.mant, "toarray") else np.asarray(q.mant)
            _check_dense_signs(q.mant, syn.node)
            out_size, in_size = mant.shape
            fields = {"type": "dense", "shape": np.array([out_size]), "inFeatures": in_size,
                      "outFeatures": out_size, "weight": mant.astype(np.float32)}
            if np.any(bias):
                fields["bias"] = np.broadcast_to(bias, neu.shape).reshape(-1).astype(np.float32)
        neuron_fields = _neuron_fields(n)
        entries.append({"fields": fields, "neuron": neuron_fields,
                        "attrs": {"nir_node": neu.node, "nir_synapse": syn.node, "nir_shape": np.array(neu.shape),
                                  "state_exp": se}})
        layers.append(NetxLayer(len(layers), fields["type"], syn.node, neu.node, tuple(int(d) for d in neu.shape), se,
                                int(neu.latency), {**_summary(fields), "neuron": neuron_fields}))
        synapses[syn.name], neurons[neu.name] = q, n
        state_exps[syn.name] = state_exps[neu.name] = se
        message_exps[syn.name], message_exps[neu.name] = lf.ACT_SHIFT + se, 0
        reports += [q.report(syn.name), n.report(neu.name)]
        if neu.params["nir_type"] == "Threshold":
            notes.append(f"{neu.node!r} (Threshold) written as a CUBA neuron with iDecay = {n.du + 1}, vDecay = "
                         f"{n.dv}, as snnav's compiler runs it (Lava's dv cannot reach 4096: v keeps v >> 12)")
        prev_dims, ie = (3 if syn.kind == "conv" else 1), 0
    report = QuantReport(tuple(reports))
    quant_data = PlanQuant(synapses, neurons, state_exps, message_exps, {}, report)
    fixed = dataclasses.replace(plan, precision="fixed", quant=quant_data)
    meta = graph.metadata or {}
    attrs = {"writer": "snnav.hardware_sims.netx_export", "quant": quant, "input_exp": int(input_exp),
             "nir_input": input_name, "nir_input_shape": np.array(in_shape),
             **({"dt": float(plan.dt)} if plan.dt else {}),
             **({"time_steps": int(meta["time_steps"])} if meta.get("time_steps") else {})}
    path = os.fspath(path)
    _write_file(path, entries, attrs)
    logger.info("wrote %s: %d netx layers (%d spiking)", path, len(entries), len(pairs))
    return NetxReport(path, tuple(layers), input_name, in_shape, int(input_exp), quant, fixed, report, tuple(notes))


# ---------------------------------------------------------------------------------------------------- running


def read_netx_layers(path: str | os.PathLike) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The layers of a ``.net`` file written here and the file's attributes.

    Returns:
        ``(layers, attrs)``: per layer ``type``, ``nir_node`` and ``nir_shape`` (None for input/flatten layers);
        ``attrs`` with ``input_exp``, ``nir_input``, ``nir_input_shape``, ``quant``, ``dt``, ``time_steps``.
    """
    with h5py.File(path, "r") as f:
        layers = []
        for i in range(len(f["layer"])):
            h = f["layer"][str(i)]
            node = h.attrs.get("nir_node") if "neuron" in h else None
            layers.append({"type": h["type"][0].decode("ascii"), "nir_node": node,
                           "nir_shape": tuple(int(d) for d in h.attrs["nir_shape"]) if node is not None else None})
        attrs = dict(f.attrs)
    if "nir_input_shape" not in attrs:
        raise ValueError(f"{os.fspath(path)!r} was not written by hardware_sims.netx_export (no nir_input_shape "
                         "attribute); run it with lava.lib.dl.netx.hdf5.Network directly")
    return layers, attrs


@dataclass(frozen=True)
class NetxRun:
    """Spikes of every netx layer, aligned to NIR steps like ``run_lava``'s records.

    Attributes:
        records: NIR neuron node -> ``[T, B, *shape]`` spikes (0/1).
        latency: NIR neuron node -> Lava step of its NIR step 0 within a sample.
        steps_per_sample: ``T + number of spiking layers``.
        table: netx's own layer table (``str(Network)``).
        timing: ``build_s``, ``run_s``, ``lava_steps``.
    """

    records: dict[str, np.ndarray]
    latency: dict[str, int]
    steps_per_sample: int
    table: str
    timing: dict[str, float]


def _to_lava(x: np.ndarray) -> np.ndarray:
    """``[N, *nir]`` -> ``[N, *lava]``: (C, H, W) -> (W, H, C) for conv inputs, C-order flatten otherwise."""
    return x.transpose(0, 3, 2, 1) if x.ndim == 4 else x.reshape(x.shape[0], -1)


def run_netx(path: str | os.PathLike, x: Any) -> NetxRun:
    """Load a ``.net`` written by `write_netx` with ``lava.lib.dl.netx.hdf5.Network`` and run it on Lava.

    Samples run back to back as in ``run_lava``: sample b on Lava steps ``[bP, (b+1)P)``, ``P = T + L`` (L spiking
    layers), inputs zero after T; netx's ``reset_interval = P``, ``reset_offset = 1`` zeroes layer k's neurons at
    the step its input carries NIR step 0 (snnav's compiler resets at the same step). Input: a
    ``lava.proc.io.source.RingBuffer``; every layer's spikes go to a ``lava.proc.io.sink.RingBuffer``;
    ``Loihi2SimCfg(select_tag="fixed_pt")`` (netx's block models exist only in fixed point).

    Args:
        path: the ``.net`` file.
        x: ``[T, B, *input shape]`` real input; sent as ``rint(x * 2**input_exp)`` (binary data as 1-bit spikes,
            anything else with ``input_message_bits = 24``).
    """
    import hardware_sims  # noqa: F401, PLC0415 (lava compatibility fixes first)
    from lava.lib.dl.netx.hdf5 import Network  # noqa: PLC0415
    from lava.magma.core.run_conditions import RunSteps  # noqa: PLC0415
    from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: PLC0415
    from lava.proc.io.sink import RingBuffer as Sink  # noqa: PLC0415
    from lava.proc.io.source import RingBuffer as Source  # noqa: PLC0415

    layers, attrs = read_netx_layers(path)
    spiking = [layer for layer in layers if layer["nir_node"] is not None]
    x = np.asarray(x, dtype=np.float64)
    in_shape = tuple(int(d) for d in attrs["nir_input_shape"])
    if x.ndim != len(in_shape) + 2 or tuple(x.shape[2:]) != in_shape:
        raise ValueError(f"expected the input as [T, B, *{in_shape}], found shape {x.shape}")
    steps, batch = x.shape[:2]
    period = steps + len(spiking)
    m = np.rint(x * 2.0 ** int(attrs.get("input_exp", 0))).astype(np.int64)
    bits = 0 if np.isin(m, (0, 1)).all() else NETX_MESSAGE_BITS
    rows = np.zeros((batch, period, *in_shape), dtype=np.int64)
    rows[:, :steps] = m.swapaxes(0, 1)  # (B, P, *in)
    data = _to_lava(rows.reshape(batch * period, *in_shape))  # (B P, *lava)
    root = logging.getLogger()
    handlers = list(root.handlers)
    t0 = time.perf_counter()
    net = Network(net_config=os.fspath(path), reset_interval=period, reset_offset=1, input_message_bits=bits)
    if len(net.layers) != len(spiking):
        raise ValueError(f"netx built {len(net.layers)} layers, the file lists {len(spiking)} spiking layers")
    source = Source(data=np.moveaxis(data, 0, -1))
    source.s_out.connect(net.inp)
    sinks = []
    for block in net.layers:
        sinks.append(Sink(shape=block.out.shape, buffer=batch * period))
        block.out.connect(sinks[-1].a_in)
    timing = {"build_s": time.perf_counter() - t0}
    try:
        t0 = time.perf_counter()
        net.run(condition=RunSteps(num_steps=batch * period), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        raw = [np.asarray(s.data.get()) for s in sinks]
        timing.update(run_s=time.perf_counter() - t0, lava_steps=batch * period)
    finally:
        try:
            if net.runtime is not None:
                net.stop()
        finally:
            for handler in root.handlers[:]:
                if handler not in handlers:
                    root.removeHandler(handler)
    records, latency = {}, {}
    for k, (layer, rec) in enumerate(zip(spiking, raw)):
        rec = np.moveaxis(rec, -1, 0)  # (B P, *lava)
        shape = layer["nir_shape"]
        rec = rec.transpose(0, 3, 2, 1) if rec.ndim == 4 else rec.reshape(rec.shape[0], *shape)  # NIR layout
        rec = rec.reshape(batch, period, *shape)[:, k + 1 : k + 1 + steps]  # layer k's NIR step 0 at Lava step k+1
        records[layer["nir_node"]] = (rec.swapaxes(0, 1) != 0).astype(np.float64)
        latency[layer["nir_node"]] = k + 1
    return NetxRun(records, latency, period, str(net), timing)
