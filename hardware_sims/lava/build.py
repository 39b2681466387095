"""`Plan` -> Lava processes and connections (the only module, with `run`, that imports Lava).

Mapping (float: ``Loihi2SimCfg(select_tag="floating_pt")``, fixed: ``select_tag="fixed_pt"``):

=========  ===========================================================================================
plan kind  Lava process
=========  ===========================================================================================
input      `MemmapSource` (``procs/memmap_io.py``): graded values from a file, one row per step
dense      ``lava.proc.dense.process.Dense(weights, num_message_bits = 24 if graded input else 0)``
sparse     ``lava.proc.sparse.process.Sparse`` (CSR weights), same message bits
conv       ``lava.proc.conv.process.Conv`` (kernel and pairs converted in `layout`)
neuron     `hardware_sims.lava.procs.neuron.RecordedLIFReset(reset_interval = steps per sample,
           reset_offset = live step + 1)`: Lava's ``LIFReset`` (its models' own step), which zeroes u and v at the
           sample's live step (its ``time_step`` counts from 1), and can keep its own records
delay      `hardware_sims.lava.procs.delay.Delay`
extension  the registered builder's process (`registry`)
=========  ===========================================================================================

Records: a neuron (its ``s_out``, ``v``, ``u``) and snnav's extension processes (their ``s_out``) write them
themselves (``records`` process parameter, ``procs/memmap_io.RecordRows``); every other record is a `MemmapSink` on
the OutPort ("s_out", "a_out"). A sink is a Lava process the runtime steps and waits for at every step, and a RefPort
reader of a Var would add a phase to every step of every process (``procs/memmap_io.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import hardware_sims  # noqa: F401  (lava compatibility fixes first)
from hardware_sims.lava import layout
from hardware_sims.plan.errors import LavaBackendError
from hardware_sims.plan.plan import Plan, ProcessSpec
from hardware_sims.plan.registry import registered_builder

__all__ = ["LavaNetwork", "build_network", "extension_builder", "MESSAGE_BITS"]

MESSAGE_BITS = 24
"""``num_message_bits`` of a synapse fed graded values (Lava's graded-spike width)."""


@dataclass
class LavaNetwork:
    """The Lava processes of a plan, and the files through which inputs and records travel.

    Attributes:
        processes: plan process name -> Lava process.
        sources: Input node -> (memory-mapped input file, its path); rows are Lava steps.
        records: (plan process, var) -> (memory-mapped record file, path).
        resettable: extension processes with state (WINDOW and RUNNING), and their live step (``reset()`` there
            every sample).
        n_rows: rows of every input/record file (steps per run chunk).
    """

    processes: dict[str, Any]
    sources: dict[str, tuple[np.ndarray, str]] = field(default_factory=dict)
    records: dict[tuple[str, str], tuple[np.ndarray, str]] = field(default_factory=dict)
    resettable: list[tuple[Any, int]] = field(default_factory=list)
    n_rows: int = 0

    def any_process(self) -> Any:
        return next(iter(self.processes.values()))


def extension_builder(node: Any) -> Callable[..., Any] | None:
    """The Lava builder of an extension node: the one registered with ``register_extension``, else snnav's own
    (``hardware_sims.lava.procs.builders.EXTENSION_BUILDERS``), else None."""
    registered = registered_builder(node)
    if registered is not None:
        return registered
    from hardware_sims.lava.procs.builders import EXTENSION_BUILDERS  # noqa: PLC0415  (lava: optional, heavy)

    return EXTENSION_BUILDERS.get(getattr(node, "type_name", None))


def _bits(spec: ProcessSpec) -> int:
    return MESSAGE_BITS if spec.graded_in else 0


def _make(spec: ProcessSpec, period: int, fixed: dict | None) -> tuple[Any, Any]:
    """The Lava process of one spec, and the ExtensionBuild for extensions (else None)."""
    from lava.proc.conv.process import Conv  # noqa: PLC0415  (lava: optional, heavy)
    from lava.proc.dense.process import Dense  # noqa: PLC0415  (lava: optional, heavy)
    from lava.proc.sparse.process import Sparse  # noqa: PLC0415  (lava: optional, heavy)

    from hardware_sims.lava.procs.delay import Delay  # noqa: PLC0415  (lava: optional, heavy)
    from hardware_sims.lava.procs.neuron import RecordedLIFReset  # noqa: PLC0415  (lava: optional, heavy)

    p, q = spec.params, dict(fixed or {})  # q: fixed-point arguments, which override the float ones
    if spec.kind in ("dense", "sparse"):
        if q.get("sign_mode") is not None:  # fixed_point.formats.SignMode (same values) -> Lava's enum
            from lava.utils.weightutils import SignMode  # noqa: PLC0415  (lava: optional, heavy)

            q["sign_mode"] = SignMode(int(q["sign_mode"]))
        cls = Dense if spec.kind == "dense" else Sparse
        return cls(**{"weights": p["weights"], "num_message_bits": _bits(spec), "name": spec.name, **q}), None
    if spec.kind == "conv":
        pairs = {k: layout.xy_pair(p[k]) for k in ("stride", "padding", "dilation")}
        if max(*pairs["stride"], *pairs["padding"], *pairs["dilation"], *p["weight"].shape[2:]) > 127:
            raise LavaBackendError(f"process {spec.name!r}: Lava's Conv stores kernel size, stride, padding and "
                                   "dilation as int8; found a value above 127")
        weight = layout.conv_weight_to_lava(q.pop("weight", p["weight"]))
        return Conv(weight=weight, input_shape=layout.to_xyc_shape(spec.in_shape), groups=int(p["groups"]),
                    num_message_bits=_bits(spec), name=spec.name, **pairs, **q), None
    if spec.kind == "neuron":
        values = {"du": p["du"], "dv": p["dv"], "vth": p["vth"], "bias_mant": p["bias"], **q}
        return RecordedLIFReset(shape=spec.shape, reset_interval=period,
                                reset_offset=(spec.live_step + 1) % period, name=spec.name, **values), None
    if spec.kind == "delay":
        return Delay(shape=spec.shape, steps=p["steps"], period=period, live_step=spec.live_step,
                     mute_preroll=p["mute_preroll"], name=spec.name), None
    if spec.kind == "extension":
        extra = {"bias": p["bias"]} if p.get("bias") else {}  # real values; fixed point: mantissas in q
        built = extension_builder(p["node"])(p["node"], spec.name, **{**extra, **q})
        if int(built.latency) != int(p["window"]):
            raise LavaBackendError(f"extension process {spec.name!r}: its builder reports latency {built.latency}, the "
                                   f"plan expects the node's window {p['window']}; fix the builder")
        return built.process, built
    raise LavaBackendError(f"process {spec.name!r}: no Lava process for kind {spec.kind!r}")


def _out(spec: ProcessSpec, proc: Any, built: Any) -> tuple[Any, str, tuple[int, ...]]:
    if spec.kind == "conv":
        return proc.a_out, layout.XYC, spec.shape
    if spec.kind in ("dense", "sparse"):
        return proc.a_out, layout.NIR, (int(np.prod(spec.shape)),)  # a flat port
    return (built.out_port if built is not None else proc.s_out), layout.NIR, spec.shape


def _in(spec: ProcessSpec, proc: Any, built: Any, port: str) -> tuple[Any, str, tuple[int, ...]]:
    if spec.kind in ("dense", "sparse"):
        return proc.s_in, layout.NIR, (int(np.prod(spec.in_shape)),)
    if spec.kind == "conv":
        return proc.s_in, layout.XYC, spec.in_shape
    if spec.kind == "neuron":
        return proc.a_in, layout.NIR, spec.shape
    if spec.kind == "delay":
        return proc.s_in, layout.NIR, spec.shape
    if spec.kind == "extension":
        in_port = built.in_ports[port]
        return in_port, layout.NIR, tuple(in_port.shape)
    raise LavaBackendError(f"process {spec.name!r} ({spec.kind}) has no input port")


def _check_connected(plan: Plan) -> None:
    parent = {n: n for n in plan.processes}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for c in plan.connections:
        parent[find(c.src)] = find(c.dst)
    roots = {find(n) for n in plan.processes}
    if len(roots) > 1:
        groups = sorted(sorted(n for n in plan.processes if find(n) == r)[:3] for r in roots)
        raise LavaBackendError(f"the graph falls into {len(roots)} unconnected parts (e.g. {groups}); one Lava run "
                               "compiles one connected network. Run each part as its own graph")


def _memmap(path: str, rows: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(rows, *shape))


def build_network(plan: Plan, *, period: int, n_rows: int, workdir: str, record: set[tuple[str, str]],
                  fixed: dict[str, dict] | None = None) -> LavaNetwork:
    """Create every process of `plan`, connect them, and attach the input files and recorders.

    Args:
        plan: the plan (float, or fixed with per-process Lava arguments in `fixed`).
        period: Lava steps per sample (`Plan.steps_per_sample`).
        n_rows: rows of the input and record files (steps per run chunk, a multiple of `period`).
        workdir: an existing folder for the files.
        record: the (process, var) pairs to record ("s_out", "a_out", or a neuron's "v" or "u").
        fixed: process name -> extra keyword arguments of its Lava constructor (fixed point), or None.

    Returns:
        The `LavaNetwork`.
    """
    from hardware_sims.lava.procs.memmap_io import MemmapSink, MemmapSource  # noqa: PLC0415  (lava)

    _check_connected(plan)
    fixed = fixed or {}
    dtype = np.int32 if plan.precision == "fixed" else np.float64
    net = LavaNetwork({}, n_rows=n_rows)
    built: dict[str, Any] = {}
    for i, spec in enumerate(plan.processes.values()):
        if spec.kind == "input":
            path = os.path.join(workdir, f"input_{i}.npy")
            net.sources[spec.name] = (_memmap(path, n_rows, spec.shape, dtype), path)
            net.processes[spec.name] = MemmapSource(shape=spec.shape, path=path, n_steps=n_rows, name=spec.name)
            continue
        proc, built[spec.name] = _make(spec, period, dict(fixed.get(spec.name, {})))
        net.processes[spec.name] = proc
        if spec.kind == "extension" and (spec.params["window"] or spec.params.get("stateful")):
            net.resettable.append((proc, spec.live_step))
    specs = plan.processes
    for c in plan.connections:
        src, dst = specs[c.src], specs[c.dst]
        out_port, out_layout, out_shape = _out(src, net.processes[c.src], built.get(c.src))
        in_port, in_layout, in_shape = _in(dst, net.processes[c.dst], built.get(c.dst), c.port)
        layout.adapt(out_port, out_layout, out_shape, in_layout, in_shape).connect(in_port)
    kept: dict[str, dict[str, str]] = {}  # process -> {var: path}: the records it writes itself
    for j, (name, var) in enumerate(sorted(record)):
        spec = specs[name]
        if spec.kind == "input":  # the input file already holds what the source sends
            net.records[(name, var)] = net.sources[name]
            continue
        path = os.path.join(workdir, f"record_{j}.npy")
        net.records[(name, var)] = (_memmap(path, n_rows, spec.shape, np.float64), path)
        if _records_itself(spec, net.processes[name], var):
            kept.setdefault(name, {})[var] = path
            continue
        if var in ("v", "u"):
            raise LavaBackendError(f"process {spec.name!r} ({spec.kind}) has no state {var!r} to record; only a "
                                   "neuron's v and u can be recorded")
        sink = MemmapSink(shape=spec.shape, path=path, n_steps=n_rows, name=f"record:{name}")
        out_port, out_layout, out_shape = _out(spec, net.processes[name], built.get(name))
        layout.adapt(out_port, out_layout, out_shape, layout.NIR, spec.shape).connect(sink.a_in)
    for name, paths in kept.items():  # read by the models when the runtime is created (after this)
        net.processes[name].proc_params.overwrite("records", paths)
    return net


_SNNAV_PROCS = "hardware_sims.lava.procs."


def _records_itself(spec: ProcessSpec, proc: Any, var: str) -> bool:
    """Whether ``proc`` writes the record ``var`` itself: a neuron (``s_out``, ``v``, ``u``), or an extension process
    of snnav's own (``s_out``: its models run `hardware_sims.lava.procs.base.ExtensionModel`'s step, which keeps
    records; a registered builder's process gets a sink)."""
    if spec.kind == "neuron":
        return var in ("s_out", "v", "u")
    return spec.kind == "extension" and var == "s_out" and type(proc).__module__.startswith(_SNNAV_PROCS)

