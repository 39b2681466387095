"""`emulate`: a plan's processes stepped through Lava's time steps, every sample of a batch at once.

The timing is the Lava backend's (``hardware_sims/plan/SEMANTICS.md``): a synapse sends at step s what it
accumulated at s - 1, neurons, delays, inputs and per-step extensions send at the step they receive, a WINDOW
extension W steps later. Lava runs samples back to back and every stateful process zeroes its state at its live
step; what a process does before its live step is discarded by its consumers' resets, and nothing after its
``latency + T`` is read. So each process is stepped only over its **active range** (about ``[live_step, latency +
T)``, see `Network.active_ranges`) starting from zero state, outside which its output counts as zero; every value
read back is then the one Lava computes. Within a step the zero-latency processes run in topological order, then
the synapses take their input.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

import nir
import numpy as np

from hardware_sims.emulator import arith
from hardware_sims.emulator.extensions import ExtensionEmu
from hardware_sims.emulator.procs import DelayEmu, InputEmu, NeuronEmu, SynapseEmu
from hardware_sims.fixed_point.prepare import prepare_fixed, record_scale
from hardware_sims.plan.errors import LavaBackendError
from hardware_sims.plan.plan import SYNAPSE_KINDS, Plan, Readout, with_state_readouts
from hardware_sims.runs import RunResult, assemble_readout, set_up_run

__all__ = ["emulate", "Network", "DEFAULT_BATCH", "with_membrane_readouts", "profile_key"]

DEFAULT_BATCH = 128
"""Samples emulated together (memory grows with it: a (8, 64, 64) layer holds 32k values per sample)."""


def _numpy_models() -> dict[str, Any]:
    return {"input": lambda s, f, a: InputEmu(s, f), "synapse": SynapseEmu, "neuron": NeuronEmu,
            "delay": lambda s, f, a: DelayEmu(s, f), "extension": ExtensionEmu}


def _torch_models(device: Any) -> dict[str, Any]:
    from hardware_sims.emulator import torch_procs as tp  # noqa: PLC0415  (torch: optional, heavy; only for a device)

    tp.check_exact_matmul()
    return {"input": lambda s, f, a: tp.TorchInputEmu(s, f, device),
            "synapse": lambda s, f, a: tp.TorchSynapseEmu(s, f, a, device),
            "neuron": lambda s, f, a: tp.TorchNeuronEmu(s, f, a, device),
            "delay": lambda s, f, a: tp.TorchDelayEmu(s, f, device),
            "extension": lambda s, f, a: tp.HostExtension(s, f, a, device)}


def profile_key(spec: Any) -> str:
    """The profile bucket of a process: ``input``, ``synapse:dense|sparse|conv``, ``neuron``, ``delay``,
    ``extension:<type name>``."""
    if spec.kind in SYNAPSE_KINDS:
        return f"synapse:{spec.kind}"
    if spec.kind == "extension":
        return f"extension:{spec.params['type_name']}"
    return spec.kind


class Network:
    """The emulated processes of a (float or quantized) plan, and their schedule within a step.

    ``device`` None runs numpy arrays (`procs`); a torch device ("cpu", "cuda") runs torch tensors (`torch_procs`,
    the same arithmetic; extensions in numpy on the host).
    """

    def __init__(self, plan: Plan, fixed_args: Mapping[str, dict] | None, device: Any = None) -> None:
        self.plan = plan
        self.fixed = plan.precision == "fixed"
        self.device = device
        if device is not None:
            import torch  # noqa: PLC0415  (torch: optional, heavy; only for a device)

            self.device = torch.device(device)
        models = _numpy_models() if device is None else _torch_models(self.device)
        args = fixed_args or {}
        self.emus: dict[str, Any] = {}
        for spec in plan.processes.values():
            kind = "synapse" if spec.kind in SYNAPSE_KINDS else spec.kind
            if kind not in models:
                raise LavaBackendError(f"process {spec.name!r}: the emulator has no model for kind {spec.kind!r}")
            self.emus[spec.name] = models[kind](spec, self.fixed, args.get(spec.name))
        self.keys = {name: profile_key(spec) for name, spec in plan.processes.items()}
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

    def _zeros(self, shape: tuple[int, ...]) -> Any:
        if self.device is None:
            return np.zeros(shape, dtype=np.int32 if self.fixed else np.float64)
        import torch  # noqa: PLC0415  (torch: optional, heavy; only for a device)

        return torch.zeros(shape, dtype=torch.int32 if self.fixed else torch.float64, device=self.device)

    def _sync(self) -> None:
        """Wait for the device (profiling a CUDA run times kernels, not their launches)."""
        if self.device is not None and self.device.type == "cuda":
            import torch  # noqa: PLC0415  (torch: optional, heavy; only for a device)

            torch.cuda.synchronize(self.device)

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
            out[port] = arith.port_sum(terms, shape, self.fixed) if terms else self._zeros(shape)
        if spec.kind == "neuron" and "a_in" not in out:  # a bias source has no input
            out["a_in"] = self._zeros((batch, size))
        if spec.kind == "extension":
            for port in emu.ports:
                if port not in out:
                    out[port] = self._zeros((batch, int(np.prod(emu.in_shapes[port]))))
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
                     if p.kind in SYNAPSE_KINDS or (p.kind == "extension" and not p.params.get("window")
                                                    and not p.params.get("stateful"))}
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

    def run(self, data: Mapping[str, np.ndarray], steps: int, wanted: Iterable[tuple[str, str, int]],
            profile: dict[str, float] | None = None) -> dict[tuple[str, str, int], np.ndarray]:
        """Emulate one chunk of samples.

        Args:
            data: Input process -> ``[T, B, *shape]`` (integers in fixed point).
            steps: T.
            wanted: ``(process, var, latency)``: record ``var`` ("s_out", "a_out", a neuron's "v" or "u") at Lava
                steps ``[latency, latency + T)``.
            profile: if a dict, seconds spent are added to it per `profile_key` (each process's step, its port
                sums included; a CUDA device is synchronized around each), and under ``"record"``. None (the
                default) adds no timing at all.

        Returns:
            ``(process, var, latency)`` -> ``[T, B, size]`` raw values (integers in fixed point).
        """
        procs = self.plan.processes
        batch = next(iter(data.values())).shape[1]
        first, last = self.active_ranges(steps)
        for name, emu in self.emus.items():
            kind = procs[name].kind
            if kind == "input":
                emu.start(data[name])
            elif kind not in SYNAPSE_KINDS:
                emu.start(batch)
        wanted = list(wanted)
        recs = {key: None for key in wanted}
        for proc, var, lat in wanted:
            if not first[proc] <= lat or lat + steps > last[proc]:
                raise LavaBackendError(f"cannot record {proc}.{var} from step {lat}: outside its active range")
        timed = profile is not None
        if timed:
            self._sync()
        sent: dict[str, Any] = {}  # synapse outputs visible at this step (accumulated at the previous one)
        for s in range(min(first.values()), max(last.values())):
            now = {n: x for n, x in sent.items()}
            for name in self.order:
                if not first[name] <= s < last[name]:
                    continue
                t0 = time.perf_counter() if timed else 0.0
                kind = procs[name].kind
                emu = self.emus[name]
                if kind == "input":
                    now[name] = emu.step(s - first[name])
                elif kind == "extension":
                    now[name] = emu.step(self._received(name, now, batch))
                else:
                    port = "a_in" if kind == "neuron" else "s_in"
                    now[name] = emu.step(self._received(name, now, batch)[port])
                if timed:
                    self._sync()
                    profile[self.keys[name]] = profile.get(self.keys[name], 0.0) + time.perf_counter() - t0
            nxt = {}
            for name in self.synapses:
                if first[name] <= s < last[name] - 1:  # visible one step later
                    t0 = time.perf_counter() if timed else 0.0
                    nxt[name] = self.emus[name].step(self._received(name, now, batch)["s_in"])
                    if timed:
                        self._sync()
                        profile[self.keys[name]] = profile.get(self.keys[name], 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter() if timed else 0.0
            for key in wanted:
                proc, var, lat = key
                if lat <= s < lat + steps:
                    value = getattr(self.emus[proc], var) if var in ("v", "u") else now.get(proc)
                    if value is None:
                        value = np.zeros((batch, int(np.prod(procs[proc].shape))))
                    elif self.device is not None:
                        value = value.detach().cpu().numpy()
                    if recs[key] is None:
                        recs[key] = np.zeros((steps, *value.shape), dtype=_record_dtype(procs[proc], var))
                    recs[key][s - lat] = value
            if timed:
                profile["record"] = profile.get("record", 0.0) + time.perf_counter() - t0
            sent = nxt
        return recs


def _record_dtype(spec: Any, var: str) -> type:
    """A neuron's spikes are recorded as int8 (they are 0 or 1: an eighth of a float64 record's memory traffic,
    which counting reads several times); every other record as float64."""
    return np.int8 if spec.kind == "neuron" and var == "s_out" else np.float64


def with_membrane_readouts(plan: Plan, neurons: Iterable[str] | None = None) -> Plan:
    """`plan` plus a readout ``"<node>#v"`` of the membrane of each named neuron node (default: every spiking
    one), aligned like its spikes (``plan.plan.with_state_readouts`` with ``v`` only; ``record_state`` of
    `emulate`/`run_lava` records ``v`` and ``u``). Both `run_lava` (the neuron process writes its own ``v``) and `emulate`
    record it."""
    return with_state_readouts(plan, neurons, ("v",))


def _direct_key(readout: Readout, plan: Plan) -> tuple[str, str, int] | None:
    """The record a readout is exactly (one term, no shift, factor, scale or bias), else None."""
    if len(readout.terms) != 1 or readout.bias is not None:
        return None
    term = readout.terms[0]
    if term.factor is not None or np.ndim(term.shift) != 0 or int(term.shift) != 0:
        return None
    if record_scale(plan, term.proc, term.var) != 1.0:
        return None
    return (term.proc, term.var, term.latency)


def _assemble(readout: Readout, recs: dict, plan: Plan, steps: int, batch: int) -> np.ndarray:
    """``[T, B, *shape]`` of one readout from the raw records (rows = NIR steps of each term's process)."""
    return assemble_readout(readout, plan, steps, batch,
                            lambda term: recs[(term.proc, term.var, term.latency)].reshape(steps, batch, -1))


def emulate(graph: nir.NIRGraph | Plan | str | os.PathLike, inputs: Mapping[str, Any] | Any, *,
            precision: str = "fixed", record: bool | str | Iterable[str] = True, dt: float | None = None,
            quant_options: Mapping[str, Any] | None = None, batch_size: int = DEFAULT_BATCH,
            record_state: str | Iterable[str] | None = None, device: Any = None,
            profile: bool = False, convention: str | None = None) -> RunResult:
    """Run a NIR graph (or a `Plan`) the way `run_lava` does, all samples of a batch at once, without Lava.

    Arguments and result are `hardware_sims.lava.run.run_lava`'s: the plan, its quantization
    (`prepare_fixed`, the same call), the inputs' binding, the records and their NIR-step alignment are the same, so
    ``emulate(g, x, precision=p).records`` equals ``run_lava(g, x, precision=p).records`` -- bit for bit in fixed
    point; in float the sums may associate differently (last-bit differences, spikes equal but at exact ties).

    Args:
        graph: a ``nir.NIRGraph``, a ``.nir`` path, or a `Plan` (float, or already quantized).
        inputs: Input name -> ``[T, B, *shape]`` (a bare array for a one-input graph).
        precision: "fixed" (Lava's ``fixed_pt`` models) or "float" (``floating_pt``).
        record: True (every readable node), False (Outputs only) or node names, as for `run_lava`.
        dt: seconds per step; default the graph's ``metadata["dt"]``.
        quant_options: keyword arguments of ``hardware_sims.fixed_point.plan_quantizer.quantize_plan`` (fixed point, float plan).
        batch_size: samples emulated together.
        record_state: neuron node names whose membrane and current to record (``records["<node>#v"]``,
            ``records["<node>#u"]``), as for `run_lava`.
        device: None (numpy, the default) or a torch device ("cpu", "cuda", "cuda:1"): the same arithmetic on
            torch tensors (`torch_procs`; fixed point identical bit for bit); extensions still run in numpy.
        profile: add ``timing["profile:<bucket>"]``: seconds per process kind (`profile_key`: ``synapse:conv``,
            ``neuron``, ``extension:<type>``, ...) and ``profile:record``; off by default (then nothing is timed).
        convention: "nir" (default), "snntorch", "norse" or "auto", as for `run_lava`.

    Returns:
        A `RunResult` (``timing``: ``quantize_s`` (fixed point), ``build_s`` (the emulated processes),
        ``run_s``, ``samples_per_s``; ``cleanup`` empty).
    """
    setup = set_up_run(graph, inputs, precision=precision, dt=dt, record=record, record_state=record_state,
                       convention=convention, backend="the emulator")
    plan, xs, steps, batch, readouts = setup.plan, setup.inputs, setup.steps, setup.batch, setup.readouts
    fixed_args = None
    t0 = time.perf_counter()
    if precision == "fixed":
        plan, fixed_args, xs = prepare_fixed(plan, xs, **dict(quant_options or {}))
    t1 = time.perf_counter()
    net = Network(plan, fixed_args, device)
    timing = {"quantize_s": t1 - t0, "build_s": time.perf_counter() - t1, "run_s": 0.0}
    prof: dict[str, float] | None = {} if profile else None
    wanted = sorted({(t.proc, t.var, t.latency) for r in readouts.values() for t in r.terms})
    one_chunk = batch <= max(1, int(batch_size))
    results = {} if one_chunk else {n: np.zeros((steps, batch, *r.shape)) for n, r in readouts.items()}
    t0 = time.perf_counter()
    for b0 in range(0, batch, max(1, int(batch_size))):
        b1 = min(batch, b0 + max(1, int(batch_size)))
        recs = net.run({proc: xs[name][:, b0:b1] for name, proc in plan.inputs.items()}, steps, wanted, prof)
        taken = set()
        for name, readout in readouts.items():
            key = _direct_key(readout, plan)
            if one_chunk and key is not None and key not in taken:  # the record itself: no copies of big arrays
                taken.add(key)
                results[name] = recs[key].reshape(steps, batch, *readout.shape)
            elif one_chunk:
                results[name] = _assemble(readout, recs, plan, steps, b1 - b0)
            else:
                results[name][:, b0:b1] = _assemble(readout, recs, plan, steps, b1 - b0)
    timing["run_s"] = time.perf_counter() - t0
    timing["samples_per_s"] = batch / max(timing["run_s"], 1e-12)
    timing.update({f"profile:{k}": v for k, v in sorted((prof or {}).items())})
    outputs = {n: results[n] for n in plan.outputs}
    step = plan.metadata.get("readout_step")
    return RunResult(outputs, results, dict(plan.node_latency), plan.steps_per_sample(steps), plan, timing,
                     None if step is None else int(step), {}, backend="emulator")
