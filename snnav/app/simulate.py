"""The simulate driver: an exported graph on the test split it was trained on, with Lava or the emulator.

Used by ``snnav simulate`` and ``snnav run`` (and the experiment scripts); :mod:`snnav.app.commands.simulate` is
the command line around it.
"""

from __future__ import annotations

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
from snnav.data.av_digits_file import read_av_digits_info
from snnav.data.datasets import open_dataset
from snnav.errors import ConfigError, DatasetError

CHUNK = {"lava": 8, "emulator": 250}  # samples per run; progress is reported per chunk (Lava compiles each time)
# With every node recorded (counting), the emulator's float64 records of the default S-CMRL take ~6.7 MB per sample:
# 64 samples per chunk keep them near 430 MB.
COUNT_CHUNK = {"lava": 8, "emulator": 64}
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


class _Stream:
    """Sums of the per-step decisions over chunks; with ``chips``, the per-sample activity counts up to each
    decision and over the whole sample, priced at the end (`hardware_sims.cost.decision.price_decisions`)."""

    def __init__(self, graph, plan, steps: int, chips: tuple[str, ...] = ()):
        self.steps, self.depth = steps, pipeline_depth(plan)
        self.windows = tuple(sorted(k for k, n in graph.nodes.items() if getattr(n, "needs_future", False)))
        self.correct, self.ref_correct = np.zeros(steps), np.zeros(steps)
        self.final: list[np.ndarray] = []
        self.spikes_total: list[np.ndarray] = []
        self.spikes_to_decision: list[np.ndarray] = []
        self.samples = 0
        self.chips = chips
        self.counter = ActivityCounter(graph) if chips else None
        self.sample_counts: list = []
        self.decision_counts: list = []
        self.plan = None

    def add(self, logits: np.ndarray, ref_logits: np.ndarray, labels: np.ndarray, records: dict, lifs: list,
            res=None) -> list | None:
        """Add a chunk; with chips, returns its per-sample counts over all T steps (from ``res``)."""
        pred, ref_pred = logits.argmax(-1), ref_logits.argmax(-1)  # [T, B]
        self.correct += (pred == labels[None]).sum(axis=1)
        self.ref_correct += (ref_pred == labels[None]).sum(axis=1)
        final = final_decision_steps(pred)
        self.final.append(final)
        if lifs and all(name in records for name in lifs):
            per_step = sum(np.asarray(records[n]).reshape(self.steps, len(labels), -1).sum(axis=2) for n in lifs)
            cumulative = np.cumsum(per_step, axis=0)  # [T, B]
            self.spikes_total.append(cumulative[-1])
            # a WINDOW graph's output at any step reads all T input steps: its layers before the windows ran them all
            self.spikes_to_decision.append(cumulative[-1] if self.windows else cumulative[final, np.arange(len(labels))])
        self.samples += len(labels)
        if self.counter is None:
            return None
        self.plan = res.plan
        whole = self.counter.by_sample(res)
        self.sample_counts += whole
        if self.windows:  # every output already read all T steps: the decision is priced with all of them
            self.decision_counts += whole
            return whole
        decision: list = [None] * len(labels)
        for k in np.unique(final + 1):  # the steps 0..t* of the samples whose decision is final at t* = k - 1
            idx = np.flatnonzero(final + 1 == k)
            for i, c in zip(idx, self.counter.by_sample(res, steps=int(k), samples=idx)):
                decision[i] = c
        self.decision_counts += decision
        return whole

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


def simulate(graph, dataset, samples: int, precision: str, record_spikes: bool = True, progress=print,
             backend: str = "lava", count: bool = False, convention: str | None = "nir",
             stream: bool = False, chips: tuple[str, ...] = ()) -> SimulationResult:
    """Run ``samples`` test samples on ``backend`` and on the float reference; see the module docstring.

    With ``count``, every node is recorded and its activity counted (``SimulationResult.counts``, summed over the
    chunks) and the spikes of the first sample are kept (``SimulationResult.raster``). ``convention`` ("nir",
    "snntorch", "norse", "auto") is whose neuron stepping the backend and the float reference follow
    (`hardware_sims.plan.build_plan`); the one used is ``SimulationResult.convention``. With ``stream``, the decision
    is read at every step (``SimulationResult.stream``); with ``chips`` as well (names or chip JSON paths), every node
    is recorded and each sample's activity up to its final decision and over the whole sample is counted and priced
    on each chip (``StreamResult.energy``).
    """

    samples = min(samples, len(dataset))
    lifs = [k for k, n in graph.nodes.items() if isinstance(n, nir.LIF)]
    plan = build_plan(graph, convention=convention)
    progress(f"  neuron stepping: {plan.convention} ({plan.convention_note})")
    ref = Interpreter(graph, dtype=torch.float64, convention=plan.convention)
    step = int(graph.metadata.get("readout_step", -1))
    correct = ref_correct = agree = 0
    spikes = dict.fromkeys(lifs, 0)
    neuron_steps = dict.fromkeys(lifs, 0)
    counter = _Counter(graph, lifs) if count else None
    streamer = None
    t0, lava_s, lava_steps = time.perf_counter(), 0.0, 0
    runner = run_lava if backend == "lava" else emulate
    chips = tuple(chips) if stream else ()
    record = True if count or chips else lifs if record_spikes else False
    chunk = (COUNT_CHUNK if count or chips else CHUNK)[backend]
    run_plan = plan
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        inputs, labels = batch_arrays(dataset, start, stop)
        inputs = {k: v for k, v in inputs.items() if k in plan.inputs}
        res = runner(run_plan, inputs, precision=precision, record=record)
        if backend == "emulator" and precision == "fixed":
            run_plan = res.plan  # quantized once (it does not depend on the data); the counter reuses its matrices
        pred = res.outputs["logits"][step].argmax(-1)
        ref_out = ref.run({k: torch.from_numpy(v) for k, v in inputs.items()}, record=False)
        ref_pred = ref_out.outputs["logits"][step].argmax(-1).numpy()
        per_sample = None
        if stream:
            logits = np.asarray(res.outputs["logits"])
            streamer = streamer or _Stream(graph, plan, logits.shape[0], chips)
            per_sample = streamer.add(logits, ref_out.outputs["logits"].numpy(), labels, res.records,
                                      lifs if record_spikes or count or chips else [], res)
        correct += int((pred == labels).sum())
        ref_correct += int((ref_pred == labels).sum())
        agree += int((pred == ref_pred).sum())
        if record_spikes or count:
            for name in lifs:
                spikes[name] += int(res.records[name].sum())
                neuron_steps[name] += int(res.records[name].size)
        if counter is not None:
            counter.add(res, merge_all(per_sample) if per_sample else None)
        lava_s += res.timing.get("run_s", 0.0)
        lava_steps += res.timing.get("lava_steps", 0)
        del res  # the records of a chunk can be hundreds of MB: free them before the next chunk runs
        progress(f"  simulated {stop}/{samples} samples on {backend} ({precision}), {time.perf_counter() - t0:.0f} s")
    return SimulationResult(samples, correct / samples, ref_correct / samples, agree / samples, spikes,
                            neuron_steps, time.perf_counter() - t0, 1e3 * lava_s / max(1, lava_steps),
                            counter.counts if counter else None, counter.raster if counter else None,
                            plan.convention, streamer.result() if streamer else None)


class _Counter:
    """Activity counts summed over chunks, and the raster of the first sample seen."""

    def __init__(self, graph, lifs: list[str]):
        self.graph, self.lifs = graph, lifs
        self.counts = None
        self.raster: dict[str, Any] | None = None
        self.counter = ActivityCounter(graph)

    def add(self, res, counts=None) -> None:
        """Add a chunk's counts (``counts``, when already counted, else counted here) and keep its raster."""
        counts = self.counter(res) if counts is None else counts
        self.counts = counts if self.counts is None else self.counts.merge(counts)
        if self.raster is None:
            cells = spike_raster(res, sample=0, nodes=self.lifs, max_neurons=RASTER_NEURONS)
            self.raster = {"sample": 0, "max_neurons": RASTER_NEURONS, "nodes": {
                name: {"neurons": int(np.prod(res.records[name].shape[2:])),
                       "spikes": [[int(t), int(n)] for t, n in cells.get(name, [])]} for name in self.lifs}}


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
