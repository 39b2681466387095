"""``snnav simulate MODEL.nir --backend lava|emulator --precision fixed|float --samples N``: run an export.

``lava`` runs Lava's ``Loihi2SimCfg`` one sample after another; ``emulator`` runs the same compiled plan and quantized
parameters in batched numpy (``hardware_sims.emulator``, bit-exact with Lava fixed point), fast enough for the whole
test set.

The test split of the dataset the model was trained on (recorded in the graph's ``metadata["data"]`` by
``snnav export``; ``--data`` gives the file) is run through Lava's ``Loihi2SimCfg``, samples back to back. Printed:
accuracy, agreement with floating point — the NIR interpreter in float64, which Lava's floating-point run equals
spike for spike (``tests/hardware_sims/test_lava_float.py``) — and spikes per neuron layer.

``--out FILE.json`` also counts the activity of every node (``hardware_sims.counts``, accumulated over the chunks:
spikes, neuron updates, synaptic events, dense MACs, the operations inside extension nodes) and keeps a spike raster
of the first sample, and saves all of it with its provenance (``snnav.report.results``) for ``snnav report``.
Counting records every node, so chunks are smaller (:data:`COUNT_CHUNK`) to bound the memory the records take.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CHUNK = {"lava": 8, "emulator": 250}  # samples per run; progress is reported per chunk (Lava compiles each time)
# With every node recorded (counting), the emulator's float64 records of the default S-CMRL take ~6.7 MB per sample:
# 64 samples per chunk keep them near 430 MB.
COUNT_CHUNK = {"lava": 8, "emulator": 64}
RASTER_NEURONS = 256  # neurons per layer kept in the raster of one sample


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="a .nir file written by snnav export")
    parser.add_argument("--backend", choices=("lava", "emulator"), default="lava",
                        help="Lava itself, or snnav's batched bit-exact emulator of it (default %(default)s)")
    parser.add_argument("--precision", choices=("fixed", "float"), default="fixed",
                        help="Lava floating point or bit-accurate Loihi fixed point (default %(default)s)")
    parser.add_argument("--samples", type=int, default=8, help="test samples to run (default %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("runs/default/av_digits.h5"),
                        help="the dataset file or folder the model was trained on (default %(default)s)")
    parser.add_argument("--no-spikes", action="store_true", help="do not record spikes per layer (faster)")
    parser.add_argument("--no-fast-runtime", action="store_true",
                        help="do not apply the fast CPU process settings (glibc malloc keeps large blocks, denormal "
                        "floats flush to zero; see snnav/training/runtime.py); SNNAV_FAST_RUNTIME=0 does the same")
    parser.add_argument("--out", type=Path, default=None,
                        help="also count every node's activity and save the result, counts and a spike raster of "
                             "the first sample to this JSON file (for snnav report; written atomically)")


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
    raster: dict[str, Any] | None = None  # spikes of the first sample (see snnav.report.results), when counted


def open_test_split(graph, data: Path):
    """The test split with the views, T and input size the graph was exported with."""
    from snnav.data.datasets import open_dataset
    from snnav.errors import ConfigError

    info = dict(graph.metadata.get("data") or {})
    if not info:
        raise ConfigError("the graph has no metadata['data'] (which dataset and views it was trained on); export "
                          "it with snnav export from a training run")
    name = info.pop("dataset")
    size, steps = info.pop("input_size"), info.pop("time_steps")
    options = {("steps" if name == "av-digits" else "T"): steps, **info}
    if name == "av-digits":
        options["size"] = size
    return open_dataset(name, data, "test", **options)


def _batch(dataset, start: int, stop: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    items = [dataset[i] for i in range(start, stop)]
    audio = np.stack([it[0].numpy() for it in items], axis=1).astype(np.float64)  # (T, B, C, H, W)
    visual = np.stack([it[1].numpy() for it in items], axis=1).astype(np.float64)
    return {"audio": audio, "visual": visual}, np.array([it[2] for it in items])


def simulate(graph, dataset, samples: int, precision: str, record_spikes: bool = True, progress=print,
             backend: str = "lava", count: bool = False) -> SimulationResult:
    """Run ``samples`` test samples on ``backend`` and on the float reference; see the module docstring.

    With ``count``, every node is recorded and its activity counted (``SimulationResult.counts``, summed over the
    chunks) and the spikes of the first sample are kept (``SimulationResult.raster``).
    """
    import nir
    import torch

    from export.interpreter import Interpreter
    from hardware_sims.emulator import emulate
    from hardware_sims.lava_backend import build_plan, run_lava

    samples = min(samples, len(dataset))
    lifs = [k for k, n in graph.nodes.items() if isinstance(n, nir.LIF)]
    plan = build_plan(graph)
    ref = Interpreter(graph, dtype=torch.float64)
    step = int(graph.metadata.get("readout_step", -1))
    correct = ref_correct = agree = 0
    spikes = dict.fromkeys(lifs, 0)
    neuron_steps = dict.fromkeys(lifs, 0)
    counter = _Counter(graph, lifs) if count else None
    t0, lava_s, lava_steps = time.perf_counter(), 0.0, 0
    runner = run_lava if backend == "lava" else emulate
    record = True if count else lifs if record_spikes else False
    chunk = (COUNT_CHUNK if count else CHUNK)[backend]
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        inputs, labels = _batch(dataset, start, stop)
        inputs = {k: v for k, v in inputs.items() if k in plan.inputs}
        res = runner(plan, inputs, precision=precision, record=record)
        pred = res.outputs["logits"][step].argmax(-1)
        ref_out = ref.run({k: torch.from_numpy(v) for k, v in inputs.items()}, record=False)
        ref_pred = ref_out.outputs["logits"][step].argmax(-1).numpy()
        correct += int((pred == labels).sum())
        ref_correct += int((ref_pred == labels).sum())
        agree += int((pred == ref_pred).sum())
        if record_spikes or count:
            for name in lifs:
                spikes[name] += int(res.records[name].sum())
                neuron_steps[name] += int(res.records[name].size)
        if counter is not None:
            counter.add(res)
        lava_s += res.timing.get("run_s", 0.0)
        lava_steps += res.timing.get("lava_steps", 0)
        del res  # the records of a chunk can be hundreds of MB: free them before the next chunk runs
        progress(f"  simulated {stop}/{samples} samples on {backend} ({precision}), {time.perf_counter() - t0:.0f} s")
    return SimulationResult(samples, correct / samples, ref_correct / samples, agree / samples, spikes,
                            neuron_steps, time.perf_counter() - t0, 1e3 * lava_s / max(1, lava_steps),
                            counter.counts if counter else None, counter.raster if counter else None)


class _Counter:
    """Activity counts summed over chunks, and the raster of the first sample seen."""

    def __init__(self, graph, lifs: list[str]):
        self.graph, self.lifs = graph, lifs
        self.counts = None
        self.raster: dict[str, Any] | None = None

    def add(self, res) -> None:
        from hardware_sims.counts import count_activity, spike_raster

        counts = count_activity(res, self.graph)
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
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from snnav.training.runtime import apply_runtime_settings

    apply_runtime_settings(not args.no_fast_runtime)  # first: before large allocations and torch's threads
    import hardware_sims  # noqa: F401  (Lava's compatibility fixes before any lava import)
    from export.errors import NIRFormatError
    from export.nirfile import read_graph
    from snnav.errors import SnnavError

    if args.samples < 1:
        raise SnnavError(f"--samples must be >= 1; got {args.samples}")
    try:
        graph = read_graph(args.model)
    except NIRFormatError as exc:
        raise SnnavError(str(exc)) from exc
    dataset = open_test_split(graph, args.data)
    where = "Lava Loihi2SimCfg" if args.backend == "lava" else "the batched emulator of Lava"
    print(f"simulating {args.model} ({graph.metadata.get('model', '?')}) on {where}, {args.precision} "
          f"point, {min(args.samples, len(dataset))} test samples of {args.data}")
    try:
        if args.out is not None:
            from snnav.io import check_writable_destination

            check_writable_destination(args.out)  # fail before minutes of simulation, not after
        result = simulate(graph, dataset, args.samples, args.precision, record_spikes=not args.no_spikes,
                          backend=args.backend, count=args.out is not None)
    except ValueError as exc:  # the backend's errors (unsupported node, binding) are ValueErrors with a message
        raise SnnavError(str(exc)) from exc
    print(format_result(result, args.precision, args.backend))
    if args.out is not None:
        _save(args, graph, result)
    return 0


def _save(args: argparse.Namespace, graph, result: SimulationResult) -> None:
    from snnav.report.results import simulate_command, write_simulation_result

    command = simulate_command(args.model, args.backend, args.precision, args.samples, args.data, args.out)
    write_simulation_result(args.out, result, backend=args.backend, precision=args.precision, model_path=args.model,
                            graph_metadata=graph.metadata, data_path=args.data, command=command)
    print(f"wrote {args.out} (accuracy, activity counts of {len(result.counts.to_dict()['nodes'])} nodes, a spike "
          "raster of sample 0)")
