"""Sequential NIR chains -> lava-dl netx ``.net`` HDF5, with the integers snnav's Lava compiler runs (numpy/h5py/nir).

`write_netx(graph, path)` writes a chain ``Input -> (Conv2d | Conv1d | Affine | Linear [| SumPool2d | AvgPool2d])
-> neuron -> ... [Flatten]`` in the layout that ``lava.lib.dl.netx.hdf5.Network`` loads (lava-dl 0.6.0,
``lib/dl/netx/hdf5.py``; field by field in ``hardware_sims/netx/NETX.md``), and returns a `NetxReport` whose ``plan`` is
snnav's fixed-point Lava plan holding exactly the integers written: ``run_lava(report.plan, x, precision="fixed")``
and `run_netx` (netx's own loader on Lava) then compute the same spikes, which is the conformance check.

What the writer maps, per layer (``w``, ``b`` the plan's folded weights and neuron bias, ``S = 2**(12 + se)`` the
layer's state scale, ``se`` its ``state_exp``):

* weights: ``hardware_sims.fixed_point.quantize.quantize_weights(w, state_exp=se, input_exp=ie, target="conv")`` must give
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
from dataclasses import dataclass, field
from typing import Any

import h5py
import nir
import numpy as np

from export.ir.graph import flatten_graph
from export.ir.nirfile import read_graph
from hardware_sims.fixed_point import formats as lf
from hardware_sims.fixed_point.plan_quantizer import PlanQuant
from hardware_sims.fixed_point.quantize import (
    QuantLIF,
    QuantReport,
)
from hardware_sims.netx.limits import POOL_TYPES, NetxExportError, netx_limits
from hardware_sims.netx.quantize import check_dense_signs, quantize_layer
from hardware_sims.plan.errors import LavaBackendError
from hardware_sims.plan.lowering import build_plan
from hardware_sims.plan.plan import Plan

__all__ = ["NetxLayer", "NetxReport", "write_netx"]

logger = logging.getLogger(__name__)

NETX_REF_DELAY = 1
"""slayer's default ``refDelay``, written as slayer does; netx does not use it (Lava's LIF has no refractory period)."""


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
        report: every rounding and clip (``hardware_sims.fixed_point.quantize.QuantReport``; bias on netx's 2**6 grid).
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
    currents = sorted({p.node for p in plan.processes.values() if p.role == "bias"})
    if currents:
        raise NetxExportError(f"node(s) {currents} receive a constant into their current u (an upstream bias into a "
                              "CubaLIF); snnav's compiler adds a bias source for it, but a netx layer has a bias on v "
                              "only. Export the layer without bias")
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
        q, n, se = quantize_layer(syn.params["weights"] if syn.kind != "conv" else syn.params["weight"],
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
            check_dense_signs(q.mant, syn.node)
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
    attrs = {"writer": "snnav.hardware_sims.netx.write", "quant": quant, "input_exp": int(input_exp),
             "nir_input": input_name, "nir_input_shape": np.array(in_shape),
             **({"dt": float(plan.dt)} if plan.dt else {}),
             **({"time_steps": int(meta["time_steps"])} if meta.get("time_steps") else {})}
    path = os.fspath(path)
    _write_file(path, entries, attrs)
    logger.info("wrote %s: %d netx layers (%d spiking)", path, len(entries), len(pairs))
    return NetxReport(path, tuple(layers), input_name, in_shape, int(input_exp), quant, fixed, report, tuple(notes))
