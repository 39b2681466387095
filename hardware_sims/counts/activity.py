"""`count_activity`: the facts of a run (spikes, synaptic events, MACs, neuron updates, extension operations) per
node and sample, from a `RunResult` of ``run_lava`` or ``emulate``; `spike_raster` for plots.

Counts are functions of the run's records and plan only, so a Lava run and an emulator run of the same graph,
inputs and precision give identical counts. Definitions: ``hardware_sims/counts/COUNTS.md``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import nir
import numpy as np

from export.ir.nirfile import read_graph
from hardware_sims.counts.extensions import extension_ops
from hardware_sims.counts.neurobench import (
    NEUROBENCH_LAYERS,
    POOL_LAYERS,
    NirValues,
    dense_synapses,
    input_summary,
)
from hardware_sims.counts.record import COUNT_FIELDS, NODE_FIELDS, ActivityCounts, NeuroBenchCounts, NodeCounts, RunInfo
from hardware_sims.counts.signals import SIGNAL_KINDS, PlanSignals, binary_matrix
from hardware_sims.plan.linear import ConvGeometry, LinearOp, op_matrix
from hardware_sims.plan.plan import SYNAPSE_KINDS, Plan, ProcessSpec
from snnav.errors import InputError

__all__ = ["count_activity", "ActivityCounter", "spike_raster", "restrict_run", "MissingRecordError",
           "COUNTED_SYNAPSE_ROLES"]

COUNTED_SYNAPSE_ROLES: tuple[str, ...] = ("node", "readout")
"""Synapse processes counted as their NIR node's synaptic work; "gain" synapses (a neuron's input gain where NIR
has no layer) are a mapping artefact and only make their neuron's updates active (COUNTS.md §3)."""


class MissingRecordError(InputError, ValueError):
    """The result does not carry the record of a node that counting needs."""


def _backend_of(result: Any) -> str:
    timing = getattr(result, "timing", {}) or {}
    if "lava_steps" in timing:
        return "lava"
    if "samples_per_s" in timing:
        return "emulator"
    raise ValueError("cannot tell whether the result came from run_lava or emulate (its timing has neither "
                     "'lava_steps' nor 'samples_per_s'); pass backend='lava' or backend='emulator'")


def _load_graph(graph: nir.NIRGraph | str | os.PathLike | None) -> nir.NIRGraph | None:
    if graph is None or isinstance(graph, nir.NIRGraph):
        return graph

    return read_graph(graph)


def _check_records(plan: Plan, records: dict) -> tuple[int, int]:
    needed = [p.name for p in plan.processes.values() if p.kind in SIGNAL_KINDS and p.role != "bias"]
    missing = [n for n in needed if n not in records]
    if missing:
        raise MissingRecordError(
            f"counting needs the records of every input, neuron and extension node; the result lacks {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''} ({len(missing)} of {len(needed)}). Run with record=True "
            "(run_lava(..., record=True) or emulate(..., record=True), the default)")
    steps, batch = np.shape(records[needed[0]])[:2]
    return int(steps), int(batch)


def _neuron_bias(plan: Plan, spec: ProcessSpec) -> np.ndarray:
    """Elements with a constant input current (the bias the run used; quantized in fixed point), flat bool."""
    if plan.precision == "fixed":
        bias = plan.quant.neurons[spec.name].bias_mant
    else:
        bias = spec.params["bias"]
    return np.broadcast_to(np.asarray(bias) != 0, spec.shape).reshape(-1)


def _plan_linear_type(spec: ProcessSpec) -> str:
    """A linear node's NIR type guessed from its synapse process (only when no graph is given)."""
    if spec.kind != "conv":
        return "Linear"
    w = np.asarray(spec.params["weight"])
    groups = int(spec.params["groups"])
    if w.shape[1] == 1 and groups == w.shape[0] == spec.in_shape[0] and np.all(w == w.flat[0]):
        return "AvgPool2d" if np.isclose(w.flat[0] * w.shape[2] * w.shape[3], 1.0) and w.flat[0] != 1 else "SumPool2d"
    return "Conv2d"


def _plan_dense(spec: ProcessSpec) -> int:
    """Synapses of a synapse process with every weight counted, from the plan alone: a convolution's in-bounds
    kernel taps; a matrix's stored entries (zero weights of the NIR node are not in it)."""
    if spec.kind == "conv":
        p = spec.params
        ph, pw = p["padding"]
        geom = ConvGeometry(np.ones_like(np.asarray(p["weight"], dtype=np.float64)), tuple(p["stride"]),
                            (ph, ph, pw, pw), tuple(p["dilation"]), int(p["groups"]))
        return int(binary_matrix(op_matrix(LinearOp(spec.node, "conv", tuple(spec.in_shape), tuple(spec.shape),
                                                     conv=geom))).nnz)
    w = spec.params["weights"]
    return int(w.nnz) if hasattr(w, "nnz") else int(np.count_nonzero(w))


def _buffer_key(x: np.ndarray) -> tuple:
    """Identifies a layer input by its memory: reshaped views of one record (the plan's synapse input and the
    graph's node input are often the same record) share their summary; anything else is keyed by its id."""
    if x.flags.c_contiguous:
        return (x.__array_interface__["data"][0], x.shape[0], x.shape[1], x.nbytes, x.dtype.str)
    return (id(x),)


class _Counter:
    """Builds the per-sample arrays of every node."""

    def __init__(self, result: Any, graph: nir.NIRGraph | None, backend: str,
                 plan_cache: dict | None = None, graph_cache: dict | None = None) -> None:
        self.plan: Plan = result.plan
        self.steps, self.batch = _check_records(self.plan, result.records)
        self.records = result.records
        self.static = {} if plan_cache is None else plan_cache  # what depends on the plan only
        self.sig = PlanSignals(self.plan, result.records, self.steps, self.batch, self.static.setdefault("sig", {}))
        self.backend = backend
        self.nir = None if graph is None else NirValues(graph, result.records, self.steps, self.batch, self.plan.dt,
                                                        graph_cache)
        if self.nir is not None:
            unknown = sorted({p.node for p in self.plan.processes.values()} - set(self.nir.nodes))
            if unknown:
                raise ValueError(f"the graph does not match the result's plan: plan nodes {unknown[:5]} are not in "
                                 "the graph; pass the graph the result was run from")
        self.syn_of: dict[str, list[str]] = {}
        for p in self.plan.processes.values():
            if p.kind in SYNAPSE_KINDS and p.role in COUNTED_SYNAPSE_ROLES:
                self.syn_of.setdefault(p.node, []).append(p.name)
        self.arrays: dict[str, dict[str, np.ndarray]] = {}
        self._summaries: dict[tuple, tuple[np.ndarray, tuple]] = {}  # _buffer_key -> (input, input_summary)
        self.info: dict[str, tuple[str, int, bool | None, bool]] = {}  # type, neurons, binary_input, spiking
        self._nb: dict[str, np.ndarray] | None = None  # NeuroBench's per-sample figures, once computed

    def ops(self, x: np.ndarray, synapses: Any) -> tuple[np.ndarray, np.ndarray]:
        """`layer_ops`, summarizing each layer input once (several synapses and NeuroBench read the same one)."""
        key = _buffer_key(x)
        if key not in self._summaries:
            self._summaries[key] = (x, input_summary(x))  # x kept alive: its buffer stays unique
        nonzero, binary = self._summaries[key][1]
        fan_outs = self.static.setdefault("fan_out", {})  # the synapse matrices are cached: id -> (matrix, fan-out)
        if id(synapses) not in fan_outs:
            fan_outs[id(synapses)] = (synapses, np.asarray(synapses.sum(axis=0)).reshape(-1))
        return nonzero @ fan_outs[id(synapses)][1], binary.copy()  # = layer_ops(x, synapses)

    def zeros(self) -> dict[str, np.ndarray]:
        return {k: np.zeros(self.batch) for k in NODE_FIELDS}

    def order(self) -> list[str]:
        # a bias source (role "bias") is the compiler's way to put a constant into a current, not a NIR node: its
        # constant makes the neuron it feeds active (`PlanSignals.received`), like a bias on v
        names = [p.name for p in self.plan.processes.values()
                 if p.kind in SIGNAL_KINDS and p.role != "bias"] + list(self.syn_of)
        if self.nir is not None:
            rank = {n: i for i, n in enumerate(self.nir.sched.order)}
            names.sort(key=lambda n: rank.get(n, len(rank)))
        return names

    def node_type(self, name: str) -> str:
        if self.nir is not None:
            node = self.nir.nodes[name]
            return getattr(node, "type_name", None) or type(node).__name__
        spec = self.plan.processes.get(name)
        if spec is not None and spec.kind == "input":
            return "Input"
        if spec is not None and spec.kind == "neuron":
            return str(spec.params["nir_type"])
        if spec is not None and spec.kind == "extension":
            return str(spec.params["type_name"])
        return _plan_linear_type(self.plan.processes[self.syn_of[name][0]])

    # ---------------------------------------------------------------------------------------------- per kind
    def neuron(self, spec: ProcessSpec) -> None:
        a = self.zeros()
        size = int(np.prod(spec.shape))
        rec = np.asarray(self.records[spec.name]).reshape(self.steps, self.batch, size)
        key = ("unbiased", spec.name)
        if key not in self.static:  # elements without a constant input: active only when they receive or fire
            self.static[key] = np.flatnonzero(~_neuron_bias(self.plan, spec))
        rows = self.static[key]
        active = self.sig.received(spec.name, rows)  # the biased elements are active at every step
        if spec.spiking:
            fired = rec != 0
            a["spikes"] = np.count_nonzero(fired, axis=(0, 2)).astype(np.float64)
            active |= fired[..., rows]
        a["neuron_updates_active"] = (self.steps * (size - len(rows))
                                      + np.count_nonzero(active, axis=(0, 2))).astype(np.float64)
        a["neuron_updates_idle"] = self.steps * size - a["neuron_updates_active"]
        self.arrays[spec.name] = a
        self.info[spec.name] = (self.node_type(spec.name), size, None, spec.spiking)

    def extension(self, spec: ProcessSpec) -> None:
        node = spec.params["node"]
        ports = {port: x.reshape(self.steps, self.batch, *np.asarray(node.input_type[port], dtype=int))
                 for port, x in self.sig.port_values(spec.name).items()}
        a = self.zeros()
        a["ext_acs"], a["ext_macs"] = extension_ops(node, ports)
        binary = all(bool(np.all((x == 0) | (np.abs(x) == 1))) for x in ports.values())
        self.arrays[spec.name] = a
        self.info[spec.name] = (self.node_type(spec.name), int(np.prod(spec.shape)), binary, False)

    def linear(self, name: str) -> None:
        a = self.zeros()
        binary_all = True
        for syn in self.syn_of[name]:
            ops, binary = self.ops(self.sig.synapse_input(syn), self.sig.synapses_of(syn))
            a["synaptic_events"] += np.where(binary, ops, 0.0)
            a["dense_macs"] += np.where(binary, 0.0, ops)
            binary_all &= bool(binary.all())
        first = self.plan.processes[self.syn_of[name][0]]
        key = ("dense", name, self.nir is not None)
        if key not in self.static:
            if self.nir is not None:
                self.static[key] = dense_synapses(name, self.nir.nodes[name], tuple(first.in_shape))
            else:
                self.static[key] = _plan_dense(first)
        per_step = self.static[key]
        a["dense_synapses"][:] = self.steps * per_step
        self.arrays[name] = a
        self.info[name] = (self.node_type(name), int(np.prod(first.shape)), binary_all, False)

    def run(self) -> None:
        for spec in self.plan.processes.values():
            if spec.kind == "input":
                self.arrays[spec.name] = self.zeros()
                self.info[spec.name] = (self.node_type(spec.name), int(np.prod(spec.shape)), None, False)
            elif spec.kind == "neuron" and spec.role != "bias":
                self.neuron(spec)
            elif spec.kind == "extension":
                self.extension(spec)
        for name in self.syn_of:
            self.linear(name)

    # -------------------------------------------------------------------------------------------- neurobench
    def _nir_input(self, name: str) -> tuple[np.ndarray, Any]:
        """A linear node's NIR input ``[T, B, in]`` and its synapses (graph), or the plan's approximation."""
        first = self.plan.processes[self.syn_of[name][0]]
        if self.nir is not None:
            x = self.nir.input_of(name).reshape(self.steps, self.batch, -1)
            return x, self.nir.linear_synapses(name, tuple(first.in_shape))
        seen, x = set(), 0.0
        for syn in self.syn_of[name]:  # one term per source path; Scale factors are folded, so not applied
            key = (self.sig.inbound[syn][0].src, self.sig.window(syn))
            if key not in seen:
                seen.add(key)
                x = x + self.sig.synapse_input(syn)
        return np.asarray(x), self.sig.synapses_of(first.name)

    def _neurobench_arrays(self) -> dict[str, np.ndarray]:
        """NeuroBench's per-sample figures (computed once per run): MACs, ACs and pooling events of every sample."""
        if self._nb is not None:
            return self._nb
        macs = acs = pool = np.zeros(self.batch)
        dense = 0.0
        for name in self.syn_of:
            node_type = self.info[name][0]
            counted = node_type in {c.__name__ for c in NEUROBENCH_LAYERS}
            pooling = node_type in {c.__name__ for c in POOL_LAYERS}
            if not (counted or pooling):
                continue
            x, synapses = self._nir_input(name)
            ops, binary = self.ops(x, synapses)
            if pooling:
                pool = pool + ops
                continue
            acs = acs + np.where(binary, ops, 0.0)
            macs = macs + np.where(binary, 0.0, ops)
            dense += float(self.arrays[name]["dense_synapses"].mean())
        self._nb = {"macs": macs, "acs": acs, "pool": pool, "dense": np.full(self.batch, dense)}
        return self._nb

    def neurobench(self, select: np.ndarray) -> NeuroBenchCounts:
        nb = {k: v[select] for k, v in self._neurobench_arrays().items()}
        spiking = [n for n, (_, _, _, s) in self.info.items() if s]
        total = sum(self.info[n][1] for n in spiking) * self.steps
        fired = sum(float(self.arrays[n]["spikes"][select].mean()) for n in spiking)
        return NeuroBenchCounts(
            activation_sparsity=1.0 - fired / total if total else 0.0, effective_macs=float(nb["macs"].mean()),
            effective_acs=float(nb["acs"].mean()), dense=float(nb["dense"].mean()),
            missed_ext_acs=float(sum(a["ext_acs"][select].mean() for a in self.arrays.values())),
            missed_ext_macs=float(sum(a["ext_macs"][select].mean() for a in self.arrays.values())),
            missed_pooling_events=float(nb["pool"].mean()))

    def counts(self, select: np.ndarray | None = None) -> ActivityCounts:
        """The counts of the samples ``select`` (indices into the batch; all when None)."""
        if not self.arrays:
            self.run()
        select = np.arange(self.batch) if select is None else np.asarray(select, dtype=np.int64)
        nodes = {}
        for name in self.order():
            a = self.arrays[name]
            node_type, neurons, binary, spiking = self.info[name]
            means = {k: float(a[k][select].mean()) for k in NODE_FIELDS}
            rate = means["spikes"] / max(1, neurons * self.steps) if spiking else None
            nodes[name] = NodeCounts(node_type, neurons, binary, firing_rate=rate, **means)
        per_sample = {k: tuple(float(v) for v in sum(a[k] for a in self.arrays.values())[select])
                      for k in COUNT_FIELDS}
        run = RunInfo(self.backend, self.plan.precision, len(select), self.steps,
                      None if self.plan.dt is None else float(self.plan.dt))
        return ActivityCounts(run, nodes, per_sample, self.neurobench(select))


def restrict_run(result: Any, steps: int | None = None, samples: Sequence[int] | np.ndarray | None = None) -> Any:
    """The run ``result`` seen through its first ``steps`` NIR steps and the batch entries ``samples``.

    Records (and outputs) are cut to rows ``[0, steps)`` and to the chosen samples, so counting the restricted run
    counts what every node did at its NIR steps ``0 .. steps-1`` (COUNTS.md §2 "Which steps count"). For a graph
    in which no node reads later steps (no WINDOW extension node) the node values at those steps depend on the
    input steps ``0 .. steps-1`` only, so the counts equal those of a run on the first ``steps`` input steps.

    Raises:
        InputError: ``steps`` outside ``1 .. T``.
    """
    T = int(np.shape(next(iter(result.records.values())))[0]) if result.records else 0
    if steps is not None and not 1 <= int(steps) <= T:
        raise InputError(f"a prefix of {steps} steps is outside 1..{T} (the run's NIR steps)")
    rows = slice(None) if steps is None else slice(0, int(steps))
    idx = slice(None) if samples is None else np.asarray(samples, dtype=np.int64)

    def cut(x: Any) -> np.ndarray:
        return np.asarray(x)[rows][:, idx]

    return replace(result, records={k: cut(v) for k, v in result.records.items()},
                   outputs={k: cut(v) for k, v in result.outputs.items()})


class ActivityCounter:
    """`count_activity` for many runs of one graph (e.g. the chunks of a test set): what depends on the graph and
    the plan only (synapse matrices, the graph's schedule, dense synapse counts) is built once and reused while the
    runs share their plan object (pass the same quantized `Plan` to every ``emulate``/``run_lava`` call).

    ``counter(result)`` returns what ``count_activity(result, graph, backend=backend)`` returns.
    """

    def __init__(self, graph: nir.NIRGraph | str | os.PathLike | None = None, *, backend: str | None = None) -> None:
        if backend not in (None, "lava", "emulator"):
            raise ValueError(f"backend must be 'lava' or 'emulator', found {backend!r}")
        self.graph = _load_graph(graph)
        self.backend = backend
        self._graph_cache: dict = {}
        self._plan: Plan | None = None
        self._plan_cache: dict = {}

    def __call__(self, result: Any, *, steps: int | None = None,
                 samples: Sequence[int] | np.ndarray | None = None) -> ActivityCounts:
        """The counts of ``result``; with ``steps``, of its first ``steps`` NIR steps only, and with ``samples``, of
        those batch entries only (`restrict_run`)."""
        return self._counter(result, steps, samples).counts()

    def by_sample(self, result: Any, *, steps: int | None = None,
                  samples: Sequence[int] | np.ndarray | None = None) -> list[ActivityCounts]:
        """One `ActivityCounts` per sample (``run.samples`` = 1 each; same order), counted in one pass."""
        counter = self._counter(result, steps, samples)
        counter.run()
        return [counter.counts(np.array([i])) for i in range(counter.batch)]

    def _counter(self, result: Any, steps: int | None, samples: Sequence[int] | np.ndarray | None) -> _Counter:
        backend = self.backend or _backend_of(result)
        if result.plan is not self._plan:  # another plan: its weights may differ
            self._plan, self._plan_cache = result.plan, {}
        if steps is not None or samples is not None:
            result = restrict_run(result, steps, samples)
        return _Counter(result, self.graph, backend, self._plan_cache, self._graph_cache)


def count_activity(result: Any, graph: nir.NIRGraph | str | os.PathLike | None = None, *,
                   backend: str | None = None) -> ActivityCounts:
    """Count what a run did, per node and per sample (definitions: ``hardware_sims/counts/COUNTS.md``).

    Args:
        result: a `RunResult` of ``run_lava`` or ``emulate``, run with ``record=True`` (every signal node's
            record is needed).
        graph: the NIR graph (or ``.nir`` path) the result ran. Recommended: it gives the nodes' NIR types, the
            Scale factors in NeuroBench's input test and the dense synapse counts with zero weights included.
            Without it these come from the plan (types guessed, Scales not applied, zero weights not counted).
        backend: "lava" or "emulator"; default: told from ``result.timing``.

    Returns:
        The `ActivityCounts` (identical for a Lava and an emulator run of the same graph, inputs and precision,
        apart from ``run.backend``).

    Raises:
        MissingRecordError: the result lacks a node's record (run with ``record=True``).
        ValueError: the graph does not match the result's plan; an extension type without a counter.
    """
    return ActivityCounter(graph, backend=backend)(result)


def spike_raster(result: Any, sample: int = 0, nodes: Iterable[str] | None = None,
                 max_neurons: int = 256) -> dict[str, list[tuple[int, int]]]:
    """The spikes of one sample as ``(step, neuron index)`` pairs per node, for a raster plot.

    Args:
        result: a `RunResult` with the nodes' records.
        sample: which sample of the batch.
        nodes: node names (default: every spiking neuron node of the plan, in plan order).
        max_neurons: keep neurons with flat (C-order) index below this.

    Returns:
        node -> pairs sorted by step, then neuron index.

    Raises:
        MissingRecordError: a node has no record; IndexError: `sample` outside the batch.
    """
    plan: Plan = result.plan
    names: Sequence[str] = list(nodes) if nodes is not None else [
        p.name for p in plan.of_kind("neuron") if p.spiking and p.role != "bias"]
    out: dict[str, list[tuple[int, int]]] = {}
    for name in names:
        if name not in result.records:
            raise MissingRecordError(f"no record of node {name!r}; recorded nodes are {sorted(result.records)[:10]}"
                                     "... Run with record=True")
        rec = np.asarray(result.records[name])
        if not 0 <= sample < rec.shape[1]:
            raise IndexError(f"sample {sample} outside the batch of {rec.shape[1]}")
        steps, idx = np.nonzero(rec[:, sample].reshape(rec.shape[0], -1)[:, :max_neurons])
        out[name] = list(zip(steps.tolist(), idx.tolist()))
    return out
