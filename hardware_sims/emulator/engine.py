"""`emulate`: a plan's processes stepped through Lava's time steps, every sample of a batch at once.

The timing is the Lava backend's (``hardware_sims/lava_backend/SEMANTICS.md``): a synapse sends at step s what it
accumulated at s - 1, neurons, delays, inputs and per-step extensions send at the step they receive, a WINDOW
extension W steps later. Lava runs samples back to back and every stateful process zeroes its state at its live
step; what a process does before its live step is discarded by its consumers' resets, and nothing after its
``latency + T`` is read. So each process is stepped only over its **active range** (about ``[live_step, latency +
T)``, see `Network.active_ranges`) starting from zero state, outside which its output counts as zero; every value
read back is then the one Lava computes. Within a step the zero-latency processes run in topological order, then
the synapses take their input.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

import nir
import numpy as np

from hardware_sims.emulator import arith
from hardware_sims.emulator.extensions import ExtensionEmu
from hardware_sims.emulator.procs import DelayEmu, InputEmu, NeuronEmu, SynapseEmu
from hardware_sims.lava_backend.errors import LavaBackendError
from hardware_sims.lava_backend.fixed import prepare_fixed, record_scale
from hardware_sims.lava_backend.plan import SYNAPSE_KINDS, Plan, Readout, ReadTerm
from hardware_sims.lava_backend.run import LavaResult, _bind, _chosen_readouts, _load_plan

__all__ = ["emulate", "Network", "DEFAULT_BATCH", "with_membrane_readouts"]

DEFAULT_BATCH = 128
"""Samples emulated together (memory grows with it: a (8, 64, 64) layer holds 32k values per sample)."""


class Network:
    """The emulated processes of a (float or quantized) plan, and their schedule within a step."""

    def __init__(self, plan: Plan, fixed_args: Mapping[str, dict] | None) -> None:
        self.plan = plan
        self.fixed = plan.precision == "fixed"
        args = fixed_args or {}
        self.emus: dict[str, Any] = {}
        for spec in plan.processes.values():
            a = args.get(spec.name)
            if spec.kind == "input":
                emu = InputEmu(spec, self.fixed)
            elif spec.kind in SYNAPSE_KINDS:
                emu = SynapseEmu(spec, self.fixed, a)
            elif spec.kind == "neuron":
                emu = NeuronEmu(spec, self.fixed, a)
            elif spec.kind == "delay":
                emu = DelayEmu(spec, self.fixed)
            elif spec.kind == "extension":
                emu = ExtensionEmu(spec, self.fixed, a)
            else:
                raise LavaBackendError(f"process {spec.name!r}: the emulator has no model for kind {spec.kind!r}")
            self.emus[spec.name] = emu
        self.inbound: dict[str, list] = {name: [] for name in plan.processes}
        for c in plan.connections:
            self.inbound[c.dst].append(c)
        self.synapses = [p.name for p in plan.processes.values() if p.kind in SYNAPSE_KINDS]
        self.order = self._order()

    def _order(self) -> list[str]:
        """Non-synapse processes, each after the zero-latency sources it reads in the same step."""
        procs = self.plan.processes
        pending = [n for n, p in procs.items() if p.kind not in SYNAPSE_KINDS]
        deps = {n: {c.src for c in self.inbound[n] if procs[c.src].kind not in SYNAPSE_KINDS} for n in pending}
        order, done = [], set()
        while pending:
            ready = [n for n in pending if deps[n] <= done]
            if not ready:
                raise LavaBackendError(f"zero-latency cycle among {sorted(pending)[:5]}: no step order exists")
            order += ready
            done.update(ready)
            pending = [n for n in pending if n not in done]
        return order

    def _received(self, name: str, now: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        spec = self.plan.processes[name]
        ports: dict[str, list[np.ndarray]] = {}
        for c in self.inbound[name]:
            ports.setdefault(c.port, [])
            if c.src in now:
                ports[c.port].append(now[c.src])
        size = int(np.prod(spec.in_shape if spec.kind in SYNAPSE_KINDS else spec.shape))
        emu = self.emus[name]
        out = {}
        for port, terms in ports.items():
            shape = (batch, int(np.prod(emu.in_shapes[port]))) if spec.kind == "extension" else (batch, size)
            out[port] = arith.port_sum(terms, shape, self.fixed)
        if spec.kind == "extension":
            for port in emu.ports:
                out.setdefault(port, np.zeros((batch, int(np.prod(emu.in_shapes[port]))),
                                              dtype=np.int32 if self.fixed else np.float64))
        return out

    def active_ranges(self, steps: int) -> tuple[dict[str, int], dict[str, int]]:
        """``(first, last)``: each process runs at Lava steps ``[first, last)`` of a sample (a synapse's output is
        visible over that range, computed one step earlier).

        Stateful processes start at their live step (where Lava resets them), inputs at 0, stateless ones (synapses,
        per-step extensions) at their live step or as early as a consumer reads them. Every process runs until its
        own ``latency + T`` and as long as a consumer's outputs depend on it (a process shared by paths of different
        alignment, e.g. one delay process serving a NIR Delay and an alignment of the same length, is read later
        than its latency says), at most to the end of the sample (``T + max_latency``).
        """
        procs, period = self.plan.processes, self.plan.steps_per_sample(steps)
        stateless = {n for n, p in procs.items()
                     if p.kind in SYNAPSE_KINDS or (p.kind == "extension" and not p.params.get("window"))}
        first = {n: 0 if p.kind == "input" else p.live_step for n, p in procs.items()}
        last = {n: min(p.latency + steps, period) for n, p in procs.items()}

        def needed_until(c: str) -> int:
            """The step until which (exclusive) `c`'s outputs in its range depend on its input."""
            spec = procs[c]
            if spec.kind in SYNAPSE_KINDS:
                return last[c] - 1
            if spec.kind == "delay":
                lags = np.asarray(spec.params["steps"])
                return last[c] - (int(lags.min()) if lags.size else 0)
            window = int(spec.params.get("window") or 0) if spec.kind == "extension" else 0
            if window:  # the output at step s comes from the window that ended before s's window began
                return last[c] - 1 - (last[c] - 1 - first[c]) % window
            return last[c]

        changed = True
        while changed:
            changed = False
            for c in self.plan.connections:
                if c.src in stateless:
                    start = first[c.dst] - (1 if procs[c.src].kind in SYNAPSE_KINDS else 0)
                    if start < first[c.src]:
                        first[c.src], changed = max(start, 0), True
                need = min(needed_until(c.dst), period)
                if need > last[c.src]:
                    last[c.src], changed = need, True
        return first, last

    def run(self, data: Mapping[str, np.ndarray], steps: int, wanted: Iterable[tuple[str, str, int]]
            ) -> dict[tuple[str, str, int], np.ndarray]:
        """Emulate one chunk of samples.

        Args:
            data: Input process -> ``[T, B, *shape]`` (integers in fixed point).
            steps: T.
            wanted: ``(process, var, latency)``: record ``var`` ("s_out", "a_out", "v") at Lava steps
                ``[latency, latency + T)``.

        Returns:
            ``(process, var, latency)`` -> ``[T, B, size]`` raw values (integers in fixed point).
        """
        procs = self.plan.processes
        batch = next(iter(data.values())).shape[1]
        first, last = self.active_ranges(steps)
        for name, emu in self.emus.items():
            if isinstance(emu, InputEmu):
                emu.start(data[name])
            elif not isinstance(emu, SynapseEmu):
                emu.start(batch)
        wanted = list(wanted)
        recs = {key: None for key in wanted}
        for proc, var, lat in wanted:
            if not first[proc] <= lat or lat + steps > last[proc]:
                raise LavaBackendError(f"cannot record {proc}.{var} from step {lat}: outside its active range")
        sent: dict[str, np.ndarray] = {}  # synapse outputs visible at this step (accumulated at the previous one)
        for s in range(min(first.values()), max(last.values())):
            now = {n: x for n, x in sent.items()}
            for name in self.order:
                if not first[name] <= s < last[name]:
                    continue
                emu = self.emus[name]
                k = s - first[name]
                if isinstance(emu, InputEmu):
                    now[name] = emu.step(k)
                elif isinstance(emu, ExtensionEmu):
                    now[name] = emu.step(self._received(name, now, batch))
                else:
                    port = "a_in" if isinstance(emu, NeuronEmu) else "s_in"
                    now[name] = emu.step(self._received(name, now, batch)[port])
            nxt = {}
            for name in self.synapses:
                if first[name] <= s < last[name] - 1:  # visible one step later
                    nxt[name] = self.emus[name].step(self._received(name, now, batch)["s_in"])
            for key in wanted:
                proc, var, lat = key
                if lat <= s < lat + steps:
                    value = self.emus[proc].v if var == "v" else now.get(proc)
                    if value is None:
                        value = np.zeros((batch, int(np.prod(procs[proc].shape))))
                    if recs[key] is None:
                        recs[key] = np.zeros((steps, *value.shape), dtype=np.float64)
                    recs[key][s - lat] = value
            sent = nxt
        return recs


def with_membrane_readouts(plan: Plan, neurons: Iterable[str] | None = None) -> Plan:
    """`plan` plus a readout ``"<process>#v"`` of the membrane of each named neuron process (default: every spiking
    one), aligned like its spikes. Both `run_lava` (a ``MemmapVarReader`` on ``v``) and `emulate` record it."""
    names = set(neurons) if neurons is not None else None
    extra = {f"{p.name}#v": Readout(p.name, p.shape, (ReadTerm(p.name, "v", p.latency),))
             for p in plan.of_kind("neuron")
             if (p.name in names if names is not None else p.params["read"] == "s_out")}
    return dataclasses.replace(plan, readouts={**plan.readouts, **extra})


def _assemble(readout: Readout, recs: dict, plan: Plan, steps: int, batch: int) -> np.ndarray:
    """``[T, B, *shape]`` of one readout from the raw records (rows = NIR steps of each term's process)."""
    out = np.zeros((steps, batch, *readout.shape))
    t = np.arange(steps)
    for term in readout.terms:
        raw = recs[(term.proc, term.var, term.latency)].reshape(steps, batch, -1)  # [T, B, size]
        shift = np.asarray(term.shift)
        if shift.ndim == 0:
            seg = np.zeros_like(raw)
            s = int(shift)
            if s < steps:
                seg[s:] = raw[: steps - s]
        else:  # per element
            rows = t[:, None] - shift.reshape(1, -1)  # (T, size)
            seg = raw[np.clip(rows, 0, None), :, np.arange(raw.shape[2])[None, :]]  # (T, size, B)
            seg = np.where((rows >= 0)[:, :, None], seg, 0.0).transpose(0, 2, 1)
        seg = seg.reshape(steps, batch, *readout.shape)
        scale = record_scale(plan, term.proc, term.var)
        if scale != 1.0:
            seg = seg * scale
        out += seg if term.factor is None else seg * term.factor
    if readout.bias is not None:
        out += readout.bias
    return out


def emulate(graph: nir.NIRGraph | Plan | str | os.PathLike, inputs: Mapping[str, Any] | Any, *,
            precision: str = "fixed", record: bool | str | Iterable[str] = True, dt: float | None = None,
            quant_options: Mapping[str, Any] | None = None, batch_size: int = DEFAULT_BATCH) -> LavaResult:
    """Run a NIR graph (or a `Plan`) the way `run_lava` does, all samples of a batch at once, without Lava.

    Arguments and result are `hardware_sims.lava_backend.run_lava`'s: the plan, its quantization
    (`prepare_fixed`, the same call), the inputs' binding, the records and their NIR-step alignment are the same, so
    ``emulate(g, x, precision=p).records`` equals ``run_lava(g, x, precision=p).records`` -- bit for bit in fixed
    point; in float the sums may associate differently (last-bit differences, spikes equal but at exact ties).

    Args:
        graph: a ``nir.NIRGraph``, a ``.nir`` path, or a `Plan` (float, or already quantized).
        inputs: Input name -> ``[T, B, *shape]`` (a bare array for a one-input graph).
        precision: "fixed" (Lava's ``fixed_pt`` models) or "float" (``floating_pt``).
        record: True (every readable node), False (Outputs only) or node names, as for `run_lava`.
        dt: seconds per step; default the graph's ``metadata["dt"]``.
        quant_options: keyword arguments of ``hardware_sims.quantize.quantize_plan`` (fixed point, float plan).
        batch_size: samples emulated together.

    Returns:
        A `LavaResult` (``timing``: ``build_s``, ``run_s``, ``samples_per_s``; ``cleanup`` empty).
    """
    if precision not in ("float", "fixed"):
        raise ValueError(f"precision must be 'float' or 'fixed', found {precision!r}")
    plan = _load_plan(graph, dt, record)
    if plan.precision == "fixed" and precision != "fixed":
        raise ValueError("this plan is quantized (precision='fixed'); emulate it with precision='fixed' or pass the "
                         "float plan")
    xs, steps, batch = _bind(plan, inputs)
    readouts = _chosen_readouts(plan, record)
    fixed_args = None
    t0 = time.perf_counter()
    if precision == "fixed":
        plan, fixed_args, xs = prepare_fixed(plan, xs, **dict(quant_options or {}))
    net = Network(plan, fixed_args)
    timing = {"build_s": time.perf_counter() - t0, "run_s": 0.0}
    wanted = sorted({(t.proc, t.var, t.latency) for r in readouts.values() for t in r.terms})
    results = {n: np.zeros((steps, batch, *r.shape)) for n, r in readouts.items()}
    t0 = time.perf_counter()
    for b0 in range(0, batch, max(1, int(batch_size))):
        b1 = min(batch, b0 + max(1, int(batch_size)))
        recs = net.run({proc: xs[name][:, b0:b1] for name, proc in plan.inputs.items()}, steps, wanted)
        for name, readout in readouts.items():
            results[name][:, b0:b1] = _assemble(readout, recs, plan, steps, b1 - b0)
    timing["run_s"] = time.perf_counter() - t0
    timing["samples_per_s"] = batch / max(timing["run_s"], 1e-12)
    outputs = {n: results[n] for n in plan.outputs}
    step = plan.metadata.get("readout_step")
    return LavaResult(outputs, results, dict(plan.node_latency), plan.steps_per_sample(steps), plan, timing,
                      None if step is None else int(step), {})
