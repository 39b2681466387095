"""The simulate driver: an exported graph on the test split it was trained on, with Lava or the emulator.

Used by ``snnav simulate`` and ``snnav run`` (and the experiment scripts); :mod:`snnav.app.commands.simulate` is
the command line around it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from export.interpreter import Interpreter
from hardware_sims.counts import count_activity, spike_raster
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
             backend: str = "lava", count: bool = False) -> SimulationResult:
    """Run ``samples`` test samples on ``backend`` and on the float reference; see the module docstring.

    With ``count``, every node is recorded and its activity counted (``SimulationResult.counts``, summed over the
    chunks) and the spikes of the first sample are kept (``SimulationResult.raster``).
    """

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
        inputs, labels = batch_arrays(dataset, start, stop)
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
