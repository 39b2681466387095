"""Speed of the Lava backend on the default S-CMRL export: compile time, simulated steps/s and samples/s, float and
fixed point, side by side.

For each precision and record setting (``--record off``: ``run_lava(..., record=False)``, the logits only;
``--record all``: every readable node, as ``snnav simulate`` and ``snnav run`` record for the activity counts) it
measures

* ``plan s``: ``build_plan`` (NIR graph -> process specs, pure numpy; shared by both precisions, measured once);
* ``quantize s``: fixed point only, ``quantize_plan`` (weights, LIF parameters, extension formats);
* ``build s``: creating and connecting the Lava processes;
* ``compile s``: Lava's compiler and the start of its processes (``create_runtime``): one OS process per Lava
  process;
* ``conv``: ``snnav`` (what snnav runs: integer convolutions of the fixed-point Conv model as one matrix product,
  ``hardware_sims/lava/compat.py`` fix 5) or ``lava`` (Lava's own ``conv_scipy``, one ``convolve2d`` per channel
  pair: the in-run baseline, switched on here only, by restoring the unwrapped function before the run);
* ``Lava procs``: the OS processes Lava started (one per Lava process, including any recorder process);
* ``run s``: the simulated steps of all samples (samples back to back, ``T + max_latency`` Lava steps each), from
  which ``steps/s`` (Lava steps per second of wall time) and ``samples/s``.

Configurations alternate (float, fixed, float, fixed, ... with ``--repeats``, each with every ``--record`` setting),
so all see the same machine; the table shows medians, the ratio fixed / float and the ratio record all / off. The machine is shared: every row reports the share of the machine's CPU
time that other processes used while it ran (``others``, from /proc/stat minus this process and its Lava children);
above 5 % the absolute timings of that row are disturbed (the ratio of two rows measured side by side less so).

Inputs are AV-Digits test samples when ``--data`` exists and the graph records its data options
(``metadata["data"]``), else uniform random values in [0, 1) of the graph's input shapes (activity changes the
cost of the extension processes only slightly: the synapses' work does not depend on it).

    python scripts/bench_lava.py                                   # runs/default/model.nir, 4 samples
    python scripts/bench_lava.py --graph /tmp/mainjob/model.nir --samples 8 --repeats 2 --out results/bench_lava.md
    python scripts/bench_lava.py --precisions fixed --record off all --samples 8 --repeats 2   # the cost of records
    python scripts/bench_lava.py --precisions fixed --record all --conv lava snnav --samples 8 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

BUSY_FRAC = 0.05
SETTINGS = ("precision", "record", "conv")  # a configuration: one value of each
RATIOS = (("fixed", "float", "fixed / float"), ("all", "off", "record all / off"), ("snnav", "lava", "conv snnav / lava"))
"""Per setting, the two values compared and the ratio's label (numerator first)."""


def _cpu_busy_s() -> float | None:
    """CPU seconds all processes have used since boot (Linux /proc/stat), or None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    """CPU seconds of this process and its finished children (Lava's processes are joined when a run ends)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_inputs(graph, data: Path | None, samples: int, seed: int):
    """``({input: [T, B, *shape] float64}, description)``."""
    import numpy as np

    meta = dict(graph.metadata or {})
    steps = int(meta.get("time_steps") or 4)
    shapes = {n: tuple(int(d) for d in graph.nodes[n].input_type["input"]) for n in ("audio", "visual")
              if n in graph.nodes}
    opts = meta.get("data")
    if data is not None and data.is_file() and isinstance(opts, dict) and opts.get("dataset") == "av-digits":
        import torch

        from snnav.data.datasets import AVDigits

        test = AVDigits(data, "test", audio_view=opts.get("audio_view", "spectrogram"),
                        visual_view=opts.get("visual_view", "static"), time_steps=steps,
                        size=int(opts.get("input_size") or next(iter(shapes.values()))[-1]))
        idx = np.linspace(0, len(test) - 1, samples).round().astype(int)
        items = [test[int(i)] for i in idx]
        x = {"audio": torch.stack([it[0] for it in items], 1), "visual": torch.stack([it[1] for it in items], 1)}
        return {k: v.numpy().astype(np.float64) for k, v in x.items() if k in shapes}, f"AV-Digits test ({data})"
    rng = np.random.default_rng(seed)
    return {k: rng.random((steps, samples, *s)) for k, s in shapes.items()}, "uniform random in [0, 1)"


def measure(plan, inputs: dict, precision: str, record: str = "off", conv: str = "snnav") -> dict:
    """One run of `plan` (a float plan, or a quantized one for fixed point) with its timings and the CPU others used;
    ``record`` "off" (outputs only) or "all" (every readable node); ``conv`` "snnav" or "lava" (Lava's own)."""
    import lava.proc.conv.utils as conv_utils

    from hardware_sims.lava.run import run_lava

    snnav_conv = conv_utils.conv
    if conv == "lava":  # Lava's processes fork from this one: they see the module as it is now
        conv_utils.conv = getattr(snnav_conv, "__wrapped__", snnav_conv)
    busy, own, wall = _cpu_busy_s(), _own_cpu_s(), time.monotonic()
    try:
        res = run_lava(plan, inputs, precision=precision, record=record == "all")
    finally:
        conv_utils.conv = snnav_conv
    elapsed = time.monotonic() - wall
    t = res.timing
    batch = next(iter(inputs.values())).shape[1]
    row = {"precision": precision, "record": record, "conv": conv, "lava_procs": len(res.cleanup.get("pids", ())),
           "build_s": t["build_s"], "compile_s": t["compile_s"], "run_s": t["run_s"],
           "lava_steps": int(t["lava_steps"]), "steps_per_sample": res.steps_per_sample,
           "steps_per_s": t["lava_steps"] / t["run_s"], "samples_per_s": batch / t["run_s"],
           "processes": len(res.plan.processes), "others": None}
    if busy is not None:
        others = (_cpu_busy_s() - busy) - (_own_cpu_s() - own)
        row["others"] = max(others, 0.0) / (elapsed * (os.cpu_count() or 1))
    return row


def _med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def format_table(info: dict, rows: dict[tuple[str, str, str], list[dict]], plan_s: float,
                 quant_s: list[float]) -> str:
    head = (f"{'precision':<9} {'record':>6} {'conv':>5} {'processes':>9} {'Lava procs':>10} {'plan s':>7} "
            f"{'quantize s':>10} {'build s':>8} {'compile s':>9} "
            f"{'total s':>8} {'run s':>7} {'steps':>6} {'steps/s':>8} {'samples/s':>9} {'others':>7}")
    lines = [
        f"graph: {info['graph']} ({info['model']}, T = {info['T']}, {info['steps_per_sample']} Lava steps per "
        f"sample), {info['samples']} samples ({info['inputs']}); medians of {info['repeats']} "
        "run(s) per configuration, alternating",
        f"machine: {info['cpu']} ({info['cores']} cores), Python {info['python']}; load average (1 min) "
        f"{info['load_start']:.2f} at start, {info['load_end']:.2f} at end (it counts this benchmark's own Lava "
        "processes, mostly waiting; 'others' below measures the disturbance)",
        "", head, "-" * len(head)]
    for (precision, record, conv), runs in rows.items():
        others = max((r["others"] for r in runs if r["others"] is not None), default=None)
        q = statistics.median(quant_s) if precision == "fixed" and quant_s else None
        quant = f"{'-':>10}" if q is None else f"{q:10.2f}"
        total = plan_s + (q or 0.0) + _med(runs, "build_s") + _med(runs, "compile_s")
        lines.append(
            f"{precision:<9} {record:>6} {conv:>5} {runs[0]['processes']:>9} {runs[0]['lava_procs']:>10} "
            f"{plan_s:7.2f} {quant} {_med(runs, 'build_s'):8.2f} "
            f"{_med(runs, 'compile_s'):9.2f} {total:8.2f} {_med(runs, 'run_s'):7.2f} {runs[0]['lava_steps']:>6} "
            f"{_med(runs, 'steps_per_s'):8.2f} {_med(runs, 'samples_per_s'):9.3f} "
            + ("      -" if others is None else f"{100 * others:6.0f}%")
            + (" *" if others is not None and others > BUSY_FRAC else ""))
    lines.append("")
    # One ratio per pair of configurations that differ in one setting only, measured side by side.
    for axis, (num, den, label) in enumerate(RATIOS):
        for key, runs in rows.items():
            base = rows.get(key[:axis] + (den,) + key[axis + 1:])
            if key[axis] != num or not base:
                continue
            same = ", ".join(f"{name} {value}" for i, (name, value) in enumerate(zip(SETTINGS, key)) if i != axis)
            lines.append(f"{same}: {label}: steps/s x{_med(runs, 'steps_per_s') / _med(base, 'steps_per_s'):.2f}, "
                         f"compile x{_med(runs, 'compile_s') / _med(base, 'compile_s'):.2f} (measured side by side)")
    lines += [
        "",
        "plan s: build_plan (numpy, once); quantize s: quantize_plan (fixed point); build s: creating and connecting "
        "the Lava processes; processes: the plan's; Lava procs: OS processes Lava started; compile s: Lava's "
        "compiler + starting one OS process per Lava process; total s: the time "
        "to compile, plan + quantize + build + compile.",
        "steps/s: simulated Lava steps per second of run time; samples/s = samples / run s.",
        f"others: share of the machine's CPU time used by other processes during the run; * above "
        f"{100 * BUSY_FRAC:.0f}%: absolute timings disturbed (the machine is shared).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, default=Path("runs/default/model.nir"),
                        help="the exported S-CMRL (.nir); default runs/default/model.nir")
    parser.add_argument("--data", type=Path, default=Path("runs/default/av_digits.h5"),
                        help="AV-Digits file for the inputs (random inputs when missing)")
    parser.add_argument("--samples", type=int, default=4, help="samples per run")
    parser.add_argument("--repeats", type=int, default=1, help="runs per precision (alternating)")
    parser.add_argument("--precisions", nargs="+", default=["float", "fixed"], choices=["float", "fixed"])
    parser.add_argument("--record", nargs="+", default=["off"], choices=["off", "all"],
                        help="record nothing but the outputs (off), or every readable node as snnav simulate does (all)")
    parser.add_argument("--conv", nargs="+", default=["snnav"], choices=["snnav", "lava"],
                        help="snnav's integer convolution (what snnav runs) and/or Lava's own conv_scipy (baseline)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here (atomically)")
    args = parser.parse_args(argv)
    if not args.graph.is_file():
        parser.error(f"{args.graph} does not exist; export the trained S-CMRL first (snnav export ...) or pass "
                     "--graph PATH")

    import hardware_sims  # noqa: F401  (lava compatibility fixes before any lava import)
    from export.ir.nirfile import read_graph
    from hardware_sims.fixed_point.prepare import prepare_fixed
    from hardware_sims.plan import build_plan

    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    graph = read_graph(args.graph)
    inputs, described = bench_inputs(graph, args.data, args.samples, args.seed)
    t0 = time.perf_counter()
    plan = build_plan(graph)
    plan_s = time.perf_counter() - t0
    rows: dict[tuple[str, str, str], list[dict]] = {
        (p, r, c): [] for p in args.precisions for r in args.record for c in args.conv}
    quant_s: list[float] = []
    for rep in range(args.repeats):
        for precision, record, conv in rows:
            run_plan = plan
            if precision == "fixed":
                t0 = time.perf_counter()
                run_plan, _, _ = prepare_fixed(plan, {})
                quant_s.append(time.perf_counter() - t0)
            row = measure(run_plan, inputs, precision, record, conv)
            rows[(precision, record, conv)].append(row)
            print(f"[{rep + 1}/{args.repeats}] {precision}, record {record}, conv {conv}: compile {row['compile_s']:.1f} s, "
                  f"{row['steps_per_s']:.2f} steps/s, {row['samples_per_s']:.3f} samples/s", flush=True)
    meta = dict(graph.metadata or {})
    info = {"graph": args.graph, "model": meta.get("model", "?"), "T": meta.get("time_steps", "?"),
            "steps_per_sample": plan.steps_per_sample(next(iter(inputs.values())).shape[0]),
            "samples": args.samples, "inputs": described, "repeats": args.repeats, "cpu": cpu_model(),
            "cores": os.cpu_count(), "python": platform.python_version(), "load_start": load_start,
            "load_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")}
    text = format_table(info, rows, plan_s, quant_s)
    print("\n" + text)
    if args.out is not None:
        from snnav.io import atomic_path

        command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
        with atomic_path(args.out) as tmp:
            tmp.write_text(f"# Lava backend speed\n\nCommand: `{command}`\n\n```\n{text}```\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
