"""``snnav simulate MODEL.nir --backend lava|emulator --precision fixed|float --samples N``: run an export.

``lava`` runs Lava's ``Loihi2SimCfg`` one sample after another; ``emulator`` runs the same compiled plan and quantized
parameters in batched numpy (``hardware_sims.emulator``, bit-exact with Lava fixed point), fast enough for the whole
test set.

The test split of the dataset the model was trained on (recorded in the graph's ``metadata["data"]`` by
``snnav export``; ``--data`` gives the file) is run through Lava's ``Loihi2SimCfg``, samples back to back. Printed:
accuracy, agreement with floating point — the NIR interpreter in float64, which Lava's floating-point run equals
spike for spike (``tests/hardware_sims/test_lava_float.py``) — and spikes per neuron layer.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHUNK = {"lava": 8, "emulator": 250}  # samples per run; progress is reported per chunk (Lava compiles each time)


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
             backend: str = "lava") -> SimulationResult:
    """Run ``samples`` test samples on ``backend`` and on the float reference; see the module docstring."""
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
    t0, lava_s, lava_steps = time.perf_counter(), 0.0, 0
    runner = run_lava if backend == "lava" else emulate
    for start in range(0, samples, CHUNK[backend]):
        stop = min(samples, start + CHUNK[backend])
        inputs, labels = _batch(dataset, start, stop)
        inputs = {k: v for k, v in inputs.items() if k in plan.inputs}
        res = runner(plan, inputs, precision=precision, record=lifs if record_spikes else False)
        pred = res.outputs["logits"][step].argmax(-1)
        ref_out = ref.run({k: torch.from_numpy(v) for k, v in inputs.items()}, record=False)
        ref_pred = ref_out.outputs["logits"][step].argmax(-1).numpy()
        correct += int((pred == labels).sum())
        ref_correct += int((ref_pred == labels).sum())
        agree += int((pred == ref_pred).sum())
        if record_spikes:
            for name in lifs:
                spikes[name] += int(res.records[name].sum())
                neuron_steps[name] += int(res.records[name].size)
        lava_s += res.timing.get("run_s", 0.0)
        lava_steps += res.timing.get("lava_steps", 0)
        progress(f"  simulated {stop}/{samples} samples on {backend} ({precision}), {time.perf_counter() - t0:.0f} s")
    return SimulationResult(samples, correct / samples, ref_correct / samples, agree / samples, spikes,
                            neuron_steps, time.perf_counter() - t0, 1e3 * lava_s / max(1, lava_steps))


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
        result = simulate(graph, dataset, args.samples, args.precision, record_spikes=not args.no_spikes,
                          backend=args.backend)
    except ValueError as exc:  # the backend's errors (unsupported node, binding) are ValueErrors with a message
        raise SnnavError(str(exc)) from exc
    print(format_result(result, args.precision, args.backend))
    return 0
