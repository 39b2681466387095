"""The simulate driver: an exported graph on the test split it was trained on, with Lava or the emulator.

Used by ``snnav simulate`` and ``snnav run`` (and the experiment scripts); :mod:`snnav.app.commands.simulate` is
the command line around it.
"""

from __future__ import annotations

import pickle
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from export.interpreter import Interpreter
from hardware_sims.cost.chip_cost import BOUNDS
from hardware_sims.cost.decision import TIME_INCLUDES, DecisionEnergy, price_decisions
from hardware_sims.counts import ActivityCounter, merge_all, spike_raster
from hardware_sims.emulator import emulate
from hardware_sims.lava.run import run_lava
from hardware_sims.plan import build_plan
from snnav.app.workers import WorkerPool, threads_per_worker
from snnav.data.av_digits_file import read_av_digits_info
from snnav.data.datasets import open_dataset
from snnav.errors import ConfigError, DatasetError
from snnav.training import runtime

CHUNK = {"lava": 8, "emulator": 250}  # samples per run; progress is reported per chunk (Lava compiles each time)
# With every node recorded (counting), the emulator's records of the default S-CMRL take ~1.6 MB per sample (spikes in
# int8, the rest in float64; 6.7 MB when every record was float64): chunks of 128, the emulator's own batch, keep them
# near 200 MB.
COUNT_CHUNK = {"lava": 8, "emulator": 128}
MIN_GAIN = 1.5  # --jobs starts workers only if sharing the chunks could bring this speed-up (`worker_count`)
RASTER_NEURONS = 256  # neurons per layer kept in the raster of one sample


@dataclass(frozen=True)
class StreamResult:
    """The decision read at every step (``snnav simulate --stream``), over the samples run.

    Attributes:
        steps: T.
        pipeline_depth: Lava steps between an input step and the output step that carries it (the Output node's
            latency): the decision on input steps ``0..t`` is read at Lava step ``t + pipeline_depth``.
        window_nodes: names of the graph's nodes that wait for future steps (none for a causal export); with any,
            the output at every step already depends on all T input steps.
        accuracy_by_step: ``[T]`` accuracy of ``argmax logits[t]`` (the backend's output at NIR step t).
        float_accuracy_by_step: the same for the float reference (NIR interpreter, float64).
        final_steps: ``[samples]`` the step t* from which the decision no longer changes (``argmax logits[s]`` equals
            the last step's for every ``s >= t*``).
        spikes_total: ``[samples]`` spikes of every LIF layer over the T steps (empty without spike records).
        spikes_to_decision: ``[samples]`` the same over the steps ``0..t*`` (over all T steps for a graph with WINDOW
            nodes, whose every output reads all T input steps).
        energy: chip name -> the estimated energy and time of every sample's decision and whole sample on that
            chip (`hardware_sims.cost.decision`; empty without ``chips``).
    """

    steps: int
    pipeline_depth: int
    window_nodes: tuple[str, ...]
    accuracy_by_step: np.ndarray
    float_accuracy_by_step: np.ndarray
    final_steps: np.ndarray
    spikes_total: np.ndarray
    spikes_to_decision: np.ndarray
    energy: dict[str, DecisionEnergy] = field(default_factory=dict)

    @property
    def decision_latency(self) -> np.ndarray:
        """``[samples]`` Lava steps from a sample's first input step to the step its final decision is read:
        ``t* + pipeline_depth`` for a causal graph; a graph with WINDOW nodes cannot decide before its windows
        have buffered all T steps, so its outputs start at ``pipeline_depth >= T``."""
        return self.final_steps + self.pipeline_depth


def final_decision_steps(predictions: np.ndarray) -> np.ndarray:
    """``[T, B]`` predicted classes -> ``[B]`` the first step from which the prediction equals the last step's."""
    same = predictions == predictions[-1:]  # [T, B]
    changed = ~same
    steps = predictions.shape[0]
    last_change = np.where(changed.any(axis=0), steps - 1 - np.argmax(changed[::-1], axis=0), -1)
    return last_change + 1


def pipeline_depth(plan) -> int:
    """Lava steps from an input step to the output step carrying it: the ``logits`` readout's latency."""
    terms = plan.readouts["logits"].terms
    return int(max(term.latency - term.shift for term in terms))


@dataclass(frozen=True)
class _StreamChunk:
    """The per-step decisions of one chunk: correct counts per step, final steps and spikes per sample; with chips,
    every sample's activity counts over all T steps and up to its decision."""

    steps: int
    correct: np.ndarray  # [T] samples whose argmax at step t is the label
    ref_correct: np.ndarray  # [T] the same for the float reference
    final: np.ndarray  # [B]
    spikes_total: np.ndarray | None  # [B], None without spike records
    spikes_to_decision: np.ndarray | None
    sample_counts: list | None = None  # [B] ActivityCounts over all T steps, with chips
    decision_counts: list | None = None  # [B] ActivityCounts over the steps 0..t*, with chips


def _stream_chunk(logits: np.ndarray, ref_logits: np.ndarray, labels: np.ndarray, res, lifs: list,
                  windows: bool, counter: ActivityCounter | None = None) -> _StreamChunk:
    """One chunk's decisions; with ``counter`` (chips), its per-sample counts from the run ``res`` as well."""
    steps, records = logits.shape[0], res.records
    pred, ref_pred = logits.argmax(-1), ref_logits.argmax(-1)  # [T, B]
    final = final_decision_steps(pred)
    total = to_decision = None
    if lifs and all(name in records for name in lifs):
        per_step = sum(np.asarray(records[n]).reshape(steps, len(labels), -1).sum(axis=2) for n in lifs)
        cumulative = np.cumsum(per_step, axis=0)  # [T, B]
        # a WINDOW graph's output at any step reads all T input steps: its layers before the windows ran them all
        total = cumulative[-1]
        to_decision = total if windows else cumulative[final, np.arange(len(labels))]
    whole = decision = None
    if counter is not None:
        whole = counter.by_sample(res)
        if windows:  # every output already read all T steps: the decision is priced with all of them
            decision = whole
        else:
            decision = [None] * len(labels)
            for k in np.unique(final + 1):  # the steps 0..t* of the samples whose decision is final at t* = k - 1
                idx = np.flatnonzero(final + 1 == k)
                for i, c in zip(idx, counter.by_sample(res, steps=int(k), samples=idx)):
                    decision[i] = c
    return _StreamChunk(steps, (pred == labels[None]).sum(axis=1), (ref_pred == labels[None]).sum(axis=1), final,
                        total, to_decision, whole, decision)


def _window_nodes(graph) -> tuple[str, ...]:
    return tuple(sorted(k for k, n in graph.nodes.items() if getattr(n, "needs_future", False)))


class _Stream:
    """Sums of the per-step decisions over chunks (added in sample order); with ``chips``, the per-sample activity
    counts up to each decision and over the whole sample, priced at the end on ``plan``, the plan the runs used
    (`hardware_sims.cost.decision.price_decisions`)."""

    def __init__(self, graph, plan, steps: int, chips: tuple[str, ...] = ()):
        self.steps, self.depth = steps, pipeline_depth(plan)
        self.windows = _window_nodes(graph)
        self.correct, self.ref_correct = np.zeros(steps), np.zeros(steps)
        self.final: list[np.ndarray] = []
        self.spikes_total: list[np.ndarray] = []
        self.spikes_to_decision: list[np.ndarray] = []
        self.samples = 0
        self.chips = chips
        self.sample_counts: list = []
        self.decision_counts: list = []
        self.plan = None

    def add(self, chunk: _StreamChunk) -> None:
        self.correct += chunk.correct
        self.ref_correct += chunk.ref_correct
        self.final.append(chunk.final)
        if chunk.spikes_total is not None:
            self.spikes_total.append(chunk.spikes_total)
            self.spikes_to_decision.append(chunk.spikes_to_decision)
        if chunk.sample_counts is not None:
            self.sample_counts += chunk.sample_counts
            self.decision_counts += chunk.decision_counts
        self.samples += len(chunk.final)

    def result(self) -> StreamResult:
        cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)  # noqa: E731
        final = cat(self.final)
        energy = {}
        for chip in self.chips:
            e = price_decisions(self.plan, chip, self.sample_counts, self.decision_counts, final,
                                window=bool(self.windows))
            energy[e.chip] = e
        return StreamResult(self.steps, self.depth, self.windows, self.correct / self.samples,
                            self.ref_correct / self.samples, final, cat(self.spikes_total),
                            cat(self.spikes_to_decision), energy)


@dataclass(frozen=True)
class SimulationResult:
    """What ``simulate`` measured on ``samples`` test samples."""

    samples: int
    accuracy: float
    float_accuracy: float
    agreement: float
    spikes: dict[str, int]
    neuron_steps: dict[str, int]
    seconds: float
    ms_per_step: float
    counts: Any = None  # hardware_sims.counts.ActivityCounts over all samples, when counted
    raster: dict[str, Any] | None = None  # spikes of the first sample (see snnav.app.report.results), when counted
    convention: str = "nir"  # whose neuron stepping ran (hardware_sims.plan.neurons)
    stream: StreamResult | None = None  # the decision at every step, with --stream


def open_test_split(graph, data: Path):
    """The test split with the views, T and input size the graph was exported with."""

    info = dict(graph.metadata.get("data") or {})
    if not info:
        raise ConfigError("the graph has no metadata['data'] (which dataset and views it was trained on); export "
                          "it with snnav export from a training run")
    name = info.pop("dataset")
    size, steps = info.pop("input_size"), info.pop("time_steps")
    options = {"time_steps": steps, **info}
    if name == "av-digits":
        options["size"] = size
        stored = read_av_digits_info(data).config.frame_size
        if stored % size != 0:
            raise DatasetError(f"the model needs {size}x{size} data but {data} has {stored}x{stored} frames; give "
                               f"--data a dataset made with --frame-size {size} (or a multiple of it), such as the "
                               "file the model was trained on")
    return open_dataset(name, data, "test", **options)


def batch_arrays(dataset, start: int, stop: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    items = [dataset[i] for i in range(start, stop)]
    audio = np.stack([it[0].numpy() for it in items], axis=1).astype(np.float64)  # (T, B, C, H, W)
    visual = np.stack([it[1].numpy() for it in items], axis=1).astype(np.float64)
    return {"audio": audio, "visual": visual}, np.array([it[2] for it in items])


def check_jobs(jobs: int, backend: str) -> None:
    """Refuse a ``--jobs`` value ``simulate`` cannot use (one line, `ConfigError`)."""
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1; got {jobs}")
    if jobs > 1 and backend != "emulator":
        raise ConfigError(f"--jobs {jobs} applies to --backend emulator only: Lava already runs each of its "
                          "processes in an OS process of its own; run --backend lava with --jobs 1")


def worker_count(chunks: list[int], jobs: int) -> int:
    """Processes ``simulate`` uses for chunks of these sizes with ``jobs``: the fewest that reach the best balance
    (chunks handed out in order to whichever worker is free), or 1 -- this process -- when sharing them could not
    bring 1.5 times the speed (e.g. chunks of 250 and 6 samples), since each worker first spends seconds starting."""
    best = 1
    for n in range(2, min(jobs, len(chunks)) + 1):
        if _makespan(chunks, n) < _makespan(chunks, best):
            best = n
    return best if sum(chunks) >= MIN_GAIN * _makespan(chunks, best) else 1


def _makespan(chunks: list[int], workers: int) -> int:
    loads = [0] * workers
    for size in chunks:
        loads[loads.index(min(loads))] += size
    return max(loads)


def simulate(graph, dataset, samples: int, precision: str, record_spikes: bool = True, progress=print,
             backend: str = "lava", count: bool = False, convention: str | None = "nir",
             stream: bool = False, jobs: int = 1, data: str | Path | None = None,
             chunk_size: int | None = None, chips: tuple[str, ...] = ()) -> SimulationResult:
    """Run ``samples`` test samples on ``backend`` and on the float reference; see the module docstring.

    With ``count``, every node is recorded and its activity counted (``SimulationResult.counts``, summed over the
    chunks) and the spikes of the first sample are kept (``SimulationResult.raster``). ``convention`` ("nir",
    "snntorch", "norse", "auto") is whose neuron stepping the backend and the float reference follow
    (`hardware_sims.plan.build_plan`); the one used is ``SimulationResult.convention``. With ``stream``, the decision
    is read at every step (``SimulationResult.stream``); with ``chips`` as well (names or chip JSON paths), every node
    is recorded and each sample's activity up to its final decision and over the whole sample is counted and priced
    on each chip (``StreamResult.energy``).

    The samples run in chunks of ``chunk_size`` (default :data:`CHUNK`, or :data:`COUNT_CHUNK` with ``count`` or
    ``chips``).
    With ``jobs`` > 1 (emulator only), the chunks are shared among up to ``jobs`` spawned worker processes
    (`snnav.app.workers`; `worker_count` says how many, 1 meaning this process), each opening the test split again from ``data`` (the file ``dataset`` was opened from with
    `open_test_split`); the chunks are the same as in one process and are merged here in sample order, so the
    result equals the one-process result field for field (except the timings ``seconds`` and ``ms_per_step``).

    Raises:
        ConfigError: ``jobs`` < 1, or > 1 with ``backend="lava"`` or without ``data``.
    """

    check_jobs(jobs, backend)
    if jobs > 1 and data is None:
        raise ConfigError("simulate with jobs > 1 needs data: the dataset file the workers open the test split from")
    samples = min(samples, len(dataset))
    lifs = [k for k, n in graph.nodes.items() if isinstance(n, nir.LIF)]
    plan = build_plan(graph, convention=convention)
    progress(f"  neuron stepping: {plan.convention} ({plan.convention_note})")
    chips = tuple(chips) if stream else ()
    chunk = int(chunk_size or (COUNT_CHUNK if count or chips else CHUNK)[backend])
    bounds = [(start, min(samples, start + chunk)) for start in range(0, samples, chunk)]
    workers = worker_count([stop - start for start, stop in bounds], jobs)
    if workers < jobs:
        progress(f"  --jobs {jobs}: {workers} process{'es' if workers > 1 else ''} "
                 f"({'in this one: ' if workers == 1 else ''}chunks of {', '.join(str(b - a) for a, b in bounds)} "
                 f"samples cannot be shared among more for a gain)")
    totals = _Totals(graph, plan, lifs, chips)
    t0 = time.perf_counter()
    if workers == 1:
        runner = _ChunkRunner(graph, plan, precision, backend, record_spikes, count, stream, bool(chips))
        for start, stop in bounds:
            totals.add(runner.run(dataset, start, stop))
            progress(f"  simulated {stop}/{samples} samples on {backend} ({precision}), "
                     f"{time.perf_counter() - t0:.0f} s")
    else:
        threads = threads_per_worker(workers)
        applied = runtime.applied_settings()
        fast = applied is not None and applied.requested  # the workers compute as this process does
        progress(f"  {len(bounds)} chunks of up to {chunk} samples over {workers} worker processes, {threads} "
                 f"thread(s) each")
        ready: dict[int, _ChunkResult] = {}
        done = 0
        # The graph goes to the workers in a file: spawn writes a worker's start-up arguments into a pipe the parent
        # itself keeps open until the worker has read them, so megabytes of weights there would hang the parent for
        # good if a worker died while starting.
        with tempfile.TemporaryDirectory(prefix="snnav-simulate-") as tmp, \
                WorkerPool(workers, threads, _start_simulate_worker, ((
                    _pickled(graph, Path(tmp) / "graph.pickle"), str(data), convention, precision, backend,
                    record_spikes, count, stream, bool(chips)), fast, threads)) as pool:
            for index, result in pool.run(_simulate_chunk, bounds):
                ready[index] = result
                done += result.stop - result.start
                while totals.chunks in ready:  # merge in sample order: the sums are those of one process
                    totals.add(ready.pop(totals.chunks))
                progress(f"  simulated {done}/{samples} samples on {backend} ({precision}, {workers} processes), "
                         f"{time.perf_counter() - t0:.0f} s")
    return totals.result(samples, time.perf_counter() - t0)


@dataclass(frozen=True)
class _ChunkResult:
    """What one chunk of samples adds to the totals (small: no records)."""

    start: int
    stop: int
    correct: int
    ref_correct: int
    agree: int
    spikes: dict[str, int] | None  # per LIF node, when spikes are recorded
    neuron_steps: dict[str, int] | None
    counts: Any  # ActivityCounts of the chunk, when counted
    raster: dict[str, Any] | None  # the raster of sample 0 (in the chunk that holds it), when counted
    stream: _StreamChunk | None
    run_s: float
    lava_steps: int
    plan: Any = None  # the plan the chunk ran (quantized, for fixed point), from the first chunk when pricing chips


class _ChunkRunner:
    """Runs chunks of samples on the backend and the float reference (in this process or in a worker)."""

    def __init__(self, graph, plan, precision: str, backend: str, record_spikes: bool, count: bool, stream: bool,
                 price: bool = False):
        self.graph, self.precision, self.backend, self.stream = graph, precision, backend, stream
        self.price, self.windows = stream and price, bool(_window_nodes(graph))
        self.lifs = [k for k, n in graph.nodes.items() if isinstance(n, nir.LIF)]
        self.plan = self.run_plan = plan
        self.ref = Interpreter(graph, dtype=torch.float64, convention=plan.convention)
        self.step = int(graph.metadata.get("readout_step", -1))
        self.runner = run_lava if backend == "lava" else emulate
        self.record = True if count or self.price else self.lifs if record_spikes else False
        self.spiking = record_spikes or count or self.price
        self.count = count
        self.counter = ActivityCounter(graph) if count or self.price else None

    def run(self, dataset, start: int, stop: int) -> _ChunkResult:
        inputs, labels = batch_arrays(dataset, start, stop)
        inputs = {k: v for k, v in inputs.items() if k in self.plan.inputs}
        res = self.runner(self.run_plan, inputs, precision=self.precision, record=self.record)
        if self.backend == "emulator" and self.precision == "fixed":
            self.run_plan = res.plan  # quantized once (it does not depend on the data); the counter reuses its matrices
        pred = res.outputs["logits"][self.step].argmax(-1)
        ref_out = self.ref.run({k: torch.from_numpy(v) for k, v in inputs.items()}, record=False)
        ref_pred = ref_out.outputs["logits"][self.step].argmax(-1).numpy()
        streamed = None
        if self.stream:
            streamed = _stream_chunk(np.asarray(res.outputs["logits"]), ref_out.outputs["logits"].numpy(), labels,
                                     res, self.lifs if self.spiking else [], self.windows,
                                     self.counter if self.price else None)
        spikes = neuron_steps = None
        if self.spiking:
            spikes = {name: int(res.records[name].sum()) for name in self.lifs}
            neuron_steps = {name: int(res.records[name].size) for name in self.lifs}
        counts = raster = None
        if self.count:
            per_sample = streamed.sample_counts if streamed is not None else None
            counts = merge_all(per_sample) if per_sample else self.counter(res)  # counted once
            if start == 0:
                raster = _raster(res, self.lifs)
        return _ChunkResult(start, stop, int((pred == labels).sum()), int((ref_pred == labels).sum()),
                            int((pred == ref_pred).sum()), spikes, neuron_steps, counts, raster, streamed,
                            res.timing.get("run_s", 0.0), res.timing.get("lava_steps", 0),
                            res.plan if self.price and start == 0 else None)


def _raster(res, lifs: list[str]) -> dict[str, Any]:
    cells = spike_raster(res, sample=0, nodes=lifs, max_neurons=RASTER_NEURONS)
    return {"sample": 0, "max_neurons": RASTER_NEURONS, "nodes": {
        name: {"neurons": int(np.prod(res.records[name].shape[2:])),
               "spikes": [[int(t), int(n)] for t, n in cells.get(name, [])]} for name in lifs}}


class _Totals:
    """The chunks' results summed in sample order (activity counts merged, the raster of the first sample kept)."""

    def __init__(self, graph, plan, lifs: list[str], chips: tuple[str, ...] = ()):
        self.graph, self.plan, self.chips = graph, plan, chips
        self.correct = self.ref_correct = self.agree = 0
        self.spikes = dict.fromkeys(lifs, 0)
        self.neuron_steps = dict.fromkeys(lifs, 0)
        self.counts = None
        self.raster: dict[str, Any] | None = None
        self.streamer: _Stream | None = None
        self.run_s, self.lava_steps, self.chunks = 0.0, 0, 0

    def add(self, chunk: _ChunkResult) -> None:
        if chunk.stream is not None:
            self.streamer = self.streamer or _Stream(self.graph, self.plan, chunk.stream.steps, self.chips)
            self.streamer.add(chunk.stream)
            if chunk.plan is not None:
                self.streamer.plan = chunk.plan
        self.correct += chunk.correct
        self.ref_correct += chunk.ref_correct
        self.agree += chunk.agree
        for name, n in (chunk.spikes or {}).items():
            self.spikes[name] += n
            self.neuron_steps[name] += chunk.neuron_steps[name]
        if chunk.counts is not None:
            self.counts = chunk.counts if self.counts is None else self.counts.merge(chunk.counts)
        if self.raster is None:
            self.raster = chunk.raster
        self.run_s += chunk.run_s
        self.lava_steps += chunk.lava_steps
        self.chunks += 1

    def result(self, samples: int, seconds: float) -> SimulationResult:
        return SimulationResult(samples, self.correct / samples, self.ref_correct / samples, self.agree / samples,
                                self.spikes, self.neuron_steps, seconds, 1e3 * self.run_s / max(1, self.lava_steps),
                                self.counts, self.raster, self.plan.convention,
                                self.streamer.result() if self.streamer else None)


# The state of a simulate worker process (`WorkerPool` spawns it; `_start_simulate_worker` sets it up once).
_WORKER: dict[str, Any] = {}


def _pickled(obj: Any, path: Path) -> str:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    return str(path)


def _start_simulate_worker(settings: tuple, fast_runtime: bool, threads: int) -> None:
    """Set up a worker: the parent's runtime settings and thread count, the graph's plan, the test split."""
    graph_file, data, convention, precision, backend, record_spikes, count, stream, price = settings
    with open(graph_file, "rb") as f:
        graph = pickle.load(f)  # written by this run's parent (simulate), for its workers only
    if fast_runtime:
        runtime.apply_runtime_settings(True)
    torch.set_num_threads(threads)
    plan = build_plan(graph, convention=convention)
    _WORKER["dataset"] = open_test_split(graph, Path(data))
    _WORKER["runner"] = _ChunkRunner(graph, plan, precision, backend, record_spikes, count, stream, price)


def _simulate_chunk(start: int, stop: int) -> _ChunkResult:
    """Run samples ``[start, stop)`` in a worker."""
    return _WORKER["runner"].run(_WORKER["dataset"], start, stop)


def format_result(result: SimulationResult, precision: str, backend: str = "lava") -> str:
    name = "Lava" if backend == "lava" else "emulator"
    step = f", {result.ms_per_step:.0f} ms per Lava step" if backend == "lava" else ""
    lines = [f"{name} {precision}: accuracy {100 * result.accuracy:.1f}% on {result.samples} test samples "
             f"(float reference {100 * result.float_accuracy:.1f}%); same prediction as float "
             f"{100 * result.agreement:.1f}%; {result.seconds:.0f} s{step}"]
    if any(result.neuron_steps.values()):
        lines.append("spikes per neuron layer (spikes / neuron-steps):")
        width = max(len(k) for k in result.spikes)
        for name, n in result.spikes.items():
            rate = n / max(1, result.neuron_steps[name])
            lines.append(f"  {name:<{width}} {n:>9} / {result.neuron_steps[name]:<10} rate {rate:.4f}")
    if result.stream is not None:
        lines.append(format_stream(result.stream))
    return "\n".join(lines)


def format_stream(st: StreamResult) -> str:
    """The accuracy against the steps seen, when decisions become final, and the decision latency, as text."""
    lines = ["streaming decision (argmax of the logits read at every step):"]
    if st.window_nodes:
        lines.append(f"  WINDOW nodes {', '.join(st.window_nodes)} wait for the whole window: the output at any step "
                     f"already reads all {st.steps} input steps; the first output is read at Lava step "
                     f"{st.pipeline_depth}")
    else:
        lines.append(f"  causal graph (no node waits for later steps): the decision on input steps 0..t is read at "
                     f"Lava step t + {st.pipeline_depth} (pipeline depth {st.pipeline_depth} steps)")
    lines.append("  steps seen  Lava step  accuracy  float reference")
    for t in range(st.steps):
        seen = st.steps if st.window_nodes else t + 1
        lines.append(f"  {seen:>10}  {t + st.pipeline_depth:>9}  {100 * st.accuracy_by_step[t]:>7.1f}%  "
                     f"{100 * st.float_accuracy_by_step[t]:>14.1f}%")
    final, latency = st.final_steps, st.decision_latency
    lines.append(f"  decision final from step t* (NIR): mean {final.mean():.2f}, median {np.median(final):.0f}, "
                 f"at step 0 for {100 * (final == 0).mean():.1f}% of samples")
    lines.append(f"  decision latency (Lava steps from the first input to the final decision): mean "
                 f"{latency.mean():.2f}, median {np.median(latency):.0f}, max {latency.max()}")
    if st.spikes_total.size:
        lines.append(f"  spikes per sample: {st.spikes_total.mean():.0f} over all {st.steps} steps, "
                     f"{st.spikes_to_decision.mean():.0f} up to the final decision")
    for e in st.energy.values():
        lines += format_decision_energy(e, st.steps)
    return "\n".join(lines)


def _bounds(values: dict[str, np.ndarray], scale: float, fmt: str = ".3g") -> str:
    mean = {b: float(np.mean(values[b])) * scale for b in BOUNDS}
    return f"{mean['value']:{fmt}} (bounds {mean['lower']:{fmt}} .. {mean['upper']:{fmt}})"


def format_decision_energy(e: DecisionEnergy, steps: int) -> list[str]:
    """The time and energy of the decisions on one chip, with what they include (estimates)."""
    seen = (f"all {steps} input steps (WINDOW nodes: every output reads them)" if e.window else
            "input steps 0..t* of every node (the activity the decision depends on; in-flight later input steps "
            "not included)")
    return [
        f"  on {e.chip} ({e.kind}: chip cost model hardware_sims/cost, figures' sources in its chip file):",
        f"    time per Lava step {_bounds({b: np.array(v) for b, v in e.step_s.items()}, 1e6)} µs: {TIME_INCLUDES}",
        f"    decision latency: (t* + 1 + chip pipeline depth {e.depth}: the mapping's Lava steps per sample - T) Lava "
        f"steps x time per step = mean "
        f"{_bounds(e.time_to_decision_s, 1e6)} µs from the first input step to the end of the step that outputs "
        "the final decision",
        f"    energy per decision: mean {_bounds(e.to_decision_j, 1e6)} µJ (dynamic "
        f"{_bounds(e.to_decision_dynamic_j, 1e6)} µJ + static power x that time); per sample over all {steps} "
        f"steps {_bounds(e.per_sample_j, 1e6)} µJ",
        f"    activity priced up to the decision: {seen}; every compartment updated at each Lava step",
        *([] if e.fits else [f"    DOES NOT FIT {e.chip} ({len(e.violations)} violated constraints, e.g. "
                              f"{e.violations[0]}): priced as if it did"]),
        f"    includes: {'; '.join(e.included)}",
        f"    excludes: {'; '.join(e.excluded)}"]
