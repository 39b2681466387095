"""Benchmark the batched emulator against Lava on an exported model: agreement, samples/s, ratio.

    python scripts/bench_emulator.py [--model MODEL.nir] [--data av_digits.h5] [--lava-samples 2] [--samples 1000]
                                     [--precision fixed|float] [--batch-size 128]

The first ``--lava-samples`` test samples run through ``run_lava`` (one Lava run, samples back to back) and through
``emulate``; their outputs must agree (bit for bit in fixed point). Then ``--samples`` test samples (0: the whole
test split) run through the emulator alone; its accuracy is printed. Samples/s: Lava over its run time and over its
wall time (with building and compiling the processes), the emulator over its wall time (with quantizing and
building), and the ratio.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import hardware_sims  # noqa: F401  (lava compatibility fixes before any lava import)


def load(model: Path, data: Path, start: int, stop: int):
    from export.nirfile import read_graph
    from snnav.cli_simulate import open_test_split

    graph = read_graph(model)
    dataset = open_test_split(graph, data)
    stop = len(dataset) if stop <= 0 else min(stop, len(dataset))
    items = [dataset[i] for i in range(start, stop)]
    inputs = {"audio": np.stack([it[0].numpy() for it in items], axis=1).astype(np.float64),
              "visual": np.stack([it[1].numpy() for it in items], axis=1).astype(np.float64)}
    inputs = {k: v for k, v in inputs.items() if k in graph.nodes}
    return graph, inputs, np.array([it[2] for it in items])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("/tmp/mainjob/model.nir"))
    parser.add_argument("--data", type=Path, default=Path("/tmp/mainjob/av_digits.h5"))
    parser.add_argument("--lava-samples", type=int, default=2, help="samples through Lava and the emulator (0: skip)")
    parser.add_argument("--samples", type=int, default=1000, help="samples through the emulator (0: the test split)")
    parser.add_argument("--precision", choices=("fixed", "float"), default="fixed")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    from hardware_sims.emulator import emulate
    from hardware_sims.lava_backend import build_plan, run_lava

    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    lava_rate = None
    if args.lava_samples > 0:
        graph, inputs, labels = load(args.model, args.data, 0, args.lava_samples)
        plan = build_plan(graph)
        n = len(labels)
        t0 = time.perf_counter()
        lava = run_lava(plan, inputs, precision=args.precision, record=False)
        lava_wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        emu = emulate(plan, inputs, precision=args.precision, record=False, batch_size=args.batch_size)
        emu_wall = time.perf_counter() - t0
        diffs = {name: float(np.abs(lava.outputs[name] - emu.outputs[name]).max()) for name in lava.outputs}
        exact = all(np.array_equal(lava.outputs[name], emu.outputs[name]) for name in lava.outputs)
        same_pred = float((lava.readout().argmax(-1) == emu.readout().argmax(-1)).mean())
        lava_rate = n / lava.timing["run_s"]
        print(f"Lava {args.precision}: {n} samples, {len(plan.processes)} processes, run {lava.timing['run_s']:.1f} s "
              f"({lava.timing['ms_per_step']:.1f} ms/step), wall {lava_wall:.1f} s -> {lava_rate:.3f} samples/s "
              f"(wall: {n / lava_wall:.3f})")
        print(f"emulator on the same samples: wall {emu_wall:.2f} s; outputs identical: {exact} (max |diff| "
              f"{max(diffs.values()):.3g}); same prediction: {same_pred:.0%}")
    graph, inputs, labels = load(args.model, args.data, 0, args.samples)
    n = len(labels)
    t0 = time.perf_counter()
    emu = emulate(graph, inputs, precision=args.precision, record=False, batch_size=args.batch_size)
    wall = time.perf_counter() - t0
    rate = n / wall
    accuracy = float((emu.readout().argmax(-1) == labels).mean())
    print(f"emulator {args.precision}: {n} samples in {wall:.1f} s (build {emu.timing['build_s']:.1f} s, run "
          f"{emu.timing['run_s']:.1f} s) -> {rate:.1f} samples/s; accuracy {accuracy:.2%}")
    if lava_rate:
        print(f"speed-up over Lava (run time): {rate / lava_rate:.0f}x")


if __name__ == "__main__":
    main()
