"""The compare driver: one exported graph run by several backends on the same samples, compared pair by pair.

Used by ``snnav compare`` (:mod:`snnav.app.commands.compare`). Each backend's run becomes a
`hardware_sims.compare.Trace` keyed by NIR node name: Lava and the emulator record every readable node and the
membrane and current of every neuron (``record=True``, ``record_state=``; their records are already aligned to NIR
steps, the latency of each process removed by the plan's read terms); the NIR interpreter (float64) records every
node; the torch model records its neuron modules with forward hooks, paired with the graph's LIF nodes by their
``metadata["source"]`` (and ``source_axes``, as ``export.from_torch.equivalence`` does). The comparison itself is
`hardware_sims.compare.compare_traces`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from export.from_torch.equivalence import record_model
from export.interpreter import Interpreter
from hardware_sims.compare import Comparison, Trace, compare_traces, trace_of
from hardware_sims.emulator import emulate
from hardware_sims.lava.run import run_lava
from hardware_sims.plan import build_plan
from hardware_sims.plan.plan import Plan
from snnav.app.checkpoint_export import load_trained_model
from snnav.app.simulate import batch_arrays, open_test_split
from snnav.errors import InputError

__all__ = ["BACKENDS", "DEFAULT_BACKENDS", "parse_backends", "compare_inputs", "run_traces", "compare_model"]

BACKENDS = ("torch", "interpreter", "lava-float", "lava-fixed", "emulator-float", "emulator-fixed")
DEFAULT_BACKENDS = ("interpreter", "emulator-float", "emulator-fixed")
RANDOM_RATE = 0.3  # spike probability of the random binary inputs used without --data
RANDOM_STEPS = 8  # steps of the random inputs when the graph does not say its time_steps


def parse_backends(text: str) -> tuple[str, ...]:
    """``"a,b,c"`` -> the backend names, checked; at least two, no repeats. Raises `InputError`."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise InputError(f"unknown backend {unknown[0]!r} in --backends; choose from {','.join(BACKENDS)}")
    if len(set(names)) != len(names) or len(names) < 2:
        raise InputError(f"--backends needs at least two different backends, got {text!r}")
    return tuple(names)


def compare_inputs(graph: nir.NIRGraph, plan: Plan, samples: int, data: Path | None, seed: int = 0
                   ) -> tuple[dict[str, np.ndarray], str]:
    """``(Input name -> [T, B, *shape], where they came from)``: the first `samples` test samples of `data`, or
    random binary spikes (rate `RANDOM_RATE`) without it."""
    if data is not None:
        dataset = open_test_split(graph, data)
        n = min(samples, len(dataset))
        xs, _ = batch_arrays(dataset, 0, n)
        return {k: v for k, v in xs.items() if k in plan.inputs}, f"the first {n} test samples of {data}"
    steps = int(graph.metadata.get("time_steps") or (graph.metadata.get("data") or {}).get("time_steps")
                or RANDOM_STEPS)
    rng = np.random.default_rng(seed)
    xs = {n: (rng.random((steps, samples, *s)) < RANDOM_RATE).astype(np.float64) for n, s in plan.input_shapes.items()}
    return xs, f"{samples} samples of random binary spikes (rate {RANDOM_RATE}, seed {seed}, {steps} steps)"


def _interpreter_trace(graph: nir.NIRGraph, plan: Plan, xs: Mapping[str, np.ndarray]) -> Trace:
    result = Interpreter(graph, dtype=torch.float64, convention=plan.convention).run(
        {k: torch.from_numpy(v) for k, v in xs.items()}, record=True)
    records = {n: v.numpy() for n, v in result.records.items()}
    predictions = None
    if len(result.outputs) == 1:
        out = next(iter(result.outputs.values())).numpy()
        step = int(graph.metadata.get("readout_step", -1))
        predictions = out[step].reshape(out.shape[1], -1).argmax(-1)
    return Trace("interpreter", records, None, predictions, "float")


def _torch_trace(graph: nir.NIRGraph, model: torch.nn.Module, xs: Mapping[str, np.ndarray]) -> Trace:
    """The model's spikes per LIF node of the graph, in the graph's layout."""
    dtype = next(model.parameters()).dtype
    given = {k: torch.from_numpy(v).to(dtype) for k, v in xs.items()}
    logits, spikes = record_model(model, given.get("audio"), given.get("visual"))
    records = {}
    for name, node in graph.nodes.items():
        source = node.metadata.get("source") if isinstance(node, nir.LIF) else None
        if source not in spikes:
            continue
        ours = spikes[source].to(torch.float64)
        shape = tuple(int(s) for s in np.asarray(node.tau).shape)
        axes = node.metadata.get("source_axes")
        if axes is not None:  # the model ran this neuron on a permuted layout: back to the graph's
            ours = ours.reshape(*ours.shape[:2], *(shape[int(a)] for a in axes))
            inverse = np.argsort([int(a) for a in axes])
            ours = ours.permute(0, 1, *(2 + int(i) for i in inverse))
        records[name] = ours.reshape(*ours.shape[:2], *shape).numpy()
    if not records:
        raise InputError("the torch model recorded no neuron module named by the graph's LIF nodes "
                         "(metadata['source']); pass the training run this graph was exported from")
    return Trace("torch", records, None, logits.argmax(-1).numpy(), "float")


def run_traces(graph: nir.NIRGraph, backends: Sequence[str], xs: Mapping[str, np.ndarray], *,
               model: torch.nn.Module | None = None, convention: str | None = "nir",
               quant_options: Mapping[str, Any] | None = None,
               progress: Callable[[str], None] = print) -> list[Trace]:
    """One `Trace` per backend of `backends` (names from `BACKENDS`) on the inputs `xs`."""
    plan = build_plan(graph, convention=convention)
    neurons = [p.node for p in plan.of_kind("neuron") if p.role == "node"]
    traces = []
    for name in backends:
        t0 = time.perf_counter()
        if name == "torch":
            if model is None:
                raise InputError("backend 'torch' needs the training run: pass --run DIR (the run the graph was "
                                 "exported from)")
            trace = _torch_trace(graph, model, xs)
        elif name == "interpreter":
            trace = _interpreter_trace(graph, plan, xs)
        else:
            kind, precision = name.split("-")
            runner = run_lava if kind == "lava" else emulate
            options = dict(quant_options or {}) if precision == "fixed" else None
            result = runner(plan, dict(xs), precision=precision, record=True, record_state=neurons,
                            quant_options=options)
            trace = trace_of(result, name)
        traces.append(trace)
        progress(f"  ran {name} ({time.perf_counter() - t0:.1f} s)")
    return traces


def compare_model(graph: nir.NIRGraph, backends: Sequence[str], *, samples: int = 4, data: Path | None = None,
                  run_dir: Path | None = None, convention: str | None = "nir",
                  quant_options: Mapping[str, Any] | None = None, seed: int = 0,
                  progress: Callable[[str], None] = print) -> tuple[Comparison, dict[str, Any]]:
    """Run `backends` on the same samples and compare them; also returns what ran (inputs, convention, options)."""
    plan = build_plan(graph, convention=convention)
    xs, source = compare_inputs(graph, plan, samples, data, seed)
    model = load_trained_model(run_dir)[0] if run_dir is not None and "torch" in backends else None
    traces = run_traces(graph, backends, xs, model=model, convention=convention, quant_options=quant_options,
                        progress=progress)
    info = {"inputs": source, "convention": plan.convention, "convention_note": plan.convention_note,
            "quant_options": dict(quant_options or {}), "steps": int(next(iter(xs.values())).shape[0]),
            "samples": int(next(iter(xs.values())).shape[1])}
    return compare_traces(graph, traces), info
