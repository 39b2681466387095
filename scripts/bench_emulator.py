"""Benchmark the batched emulator: agreement with Lava, throughput and its ratio to Lava's, scaling with batch size
and model width, where the time goes, and the same on a GPU.

    python scripts/bench_emulator.py [--model /tmp/mainjob/model.nir] [--data /tmp/mainjob/av_digits.h5]
        [--lava-samples 2] [--samples 0] [--precision fixed|float] [--batch-size 128]
        [--batch-sizes 1 8 32 128 512] [--widths 32 64 128] [--width-dir DIR] [--device numpy|cpu|cuda]
        [--save-inputs FILE.npz] [--out results/bench_emulator.md]

Sections (each skipped when its option is empty or 0):

1. **Lava vs emulator** (``--lava-samples`` test samples; 0 skips Lava entirely, and nothing imports Lava then):
   ``run_lava`` (one Lava run, samples back to back) and ``emulate`` on the same samples; their outputs must agree (bit
   for bit in fixed point). Lava's samples/s over its run time.
2. **Throughput** (``--samples``, 0 = the whole test split): the emulator's samples/s over its run time and its wall
   time (with quantizing and building), its accuracy, the ratio to Lava's samples/s (this run's section 1, or
   ``--lava-rate``, e.g. from ``results/bench_lava.md``).
3. **Batch size** (``--batch-sizes``): samples/s with B samples emulated together (``max(B, 64)`` samples each).
4. **Width** (``--widths``): S-CMRL as exported by default (``stem="sps"``, ``alpha=1.5``, spatial-temporal
   attention, 10 classes, T = 4, 64x64 inputs) but ``embed_dim`` = each width, with random weights and random batch
   norm statistics (``tests/export/conftest.py``'s ``randomize``, so every layer fires) -- exported once into
   ``--width-dir`` and reused -- on the same test samples.
5. **Profile**: seconds per process kind (``emulate(..., profile=True)``): synapses (conv, sparse, dense), neurons,
   delays, inputs, each extension type, recording; plus quantizing and building.
6. **Counting** (``--count``, on by default): the emulator on the same samples without counts (``record=False``)
   and with activity counts as ``snnav simulate --count`` computes them (every node recorded, chunks of
   ``COUNT_CHUNK``, the plan quantized once, one `ActivityCounter`), alternated ``--count-repeats`` times; prints
   the throughput ratio with/without, and checks the first chunk's counts against a fresh ``count_activity``.

``--device``: ``numpy`` (default) or a torch device (``cpu``, ``cuda``): ``emulate(..., device=...)``, the same
arithmetic on torch tensors (fixed point identical). On a machine without the dataset, ``--data`` may name an
``.npz`` written by ``--save-inputs`` (arrays ``audio``, ``visual``, ``labels``), or be missing: then inputs are
uniform random and no accuracy is printed. ``--out`` writes the printed report (markdown) with the command.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCMRL = dict(stem="sps", alpha=1.5, attn_variant="spatial-temporal", num_classes=10, in_channels_audio=1,
                     in_channels_visual=1)
"""The default S-CMRL training run's model config (``/tmp/mainjob/train/config.json``) but its embed_dim."""


class Report:
    """Prints lines as they come and keeps them for ``--out``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)


def load_inputs(graph, data: Path, n: int, seed: int = 0):
    """``({input: [T, B, ...]}, labels or None)``: the first `n` test samples (0: all) of `data` (an AV-Digits file
    or a ``--save-inputs`` ``.npz``), or uniform random inputs when `data` does not exist."""
    if data.suffix == ".npz" and data.exists():
        z = np.load(data)
        stop = len(z["labels"]) if n <= 0 else min(n, len(z["labels"]))
        inputs = {k: z[k][:, :stop].astype(np.float64) for k in ("audio", "visual") if k in graph.nodes}
        return inputs, z["labels"][:stop]
    if data.exists():
        from snnav.app.simulate import batch_arrays, open_test_split

        dataset = open_test_split(graph, data)
        stop = len(dataset) if n <= 0 else min(n, len(dataset))
        inputs, labels = batch_arrays(dataset, 0, stop)
        return {k: v for k, v in inputs.items() if k in graph.nodes}, labels
    rng = np.random.default_rng(seed)
    steps = int(graph.metadata.get("time_steps", 4))
    n = n if n > 0 else 1000
    return {k: rng.random((steps, n, *np.asarray(graph.nodes[k].output_type["output"]).tolist()))
            for k in ("audio", "visual") if k in graph.nodes}, None


def subset(inputs: dict, n: int) -> dict:
    return {k: v[:, :n] for k, v in inputs.items()}


def subset_range(inputs: dict, start: int, stop: int) -> dict:
    return {k: v[:, start:stop] for k, v in inputs.items()}


def width_graph(width: int, width_dir: Path):
    """S-CMRL at `width` with random weights (exported once, cached as ``scmrl_<width>.nir``)."""
    from export.ir.nirfile import read_graph, write_graph

    path = width_dir / f"scmrl_{width}.nir"
    if path.exists():
        return read_graph(path), "cached"
    import torch

    from export.from_torch.exporter import ExportConfig, export_model
    from snnav.models import create_model

    spec = importlib.util.spec_from_file_location("snnav_bench_conftest", REPO / "tests" / "export" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    torch.manual_seed(0)
    model = conftest.randomize(create_model("scmrl", embed_dim=width, **DEFAULT_SCMRL), seed=0).eval()
    cfg = ExportConfig(dt_s=1e-3, time_steps=4, audio_shape=(1, 64, 64), visual_shape=(1, 64, 64))
    graph = export_model(model, cfg)
    width_dir.mkdir(parents=True, exist_ok=True)
    write_graph(path, graph)
    return read_graph(path), "exported"


def synapse_weights(plan) -> int:
    total = 0
    for p in plan.of_kind("dense", "sparse", "conv"):
        w = p.params["weight"] if p.kind == "conv" else p.params["weights"]
        total += int(w.nnz if hasattr(w, "nnz") else np.size(w))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("/tmp/mainjob/model.nir"))
    parser.add_argument("--data", type=Path, default=Path("/tmp/mainjob/av_digits.h5"))
    parser.add_argument("--lava-samples", type=int, default=2, help="samples through Lava and the emulator (0: skip)")
    parser.add_argument("--lava-rate", type=float, default=None, help="Lava samples/s to compare with (no section 1)")
    parser.add_argument("--samples", type=int, default=0, help="samples through the emulator (0: the test split)")
    parser.add_argument("--precision", choices=("fixed", "float"), default="fixed")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[1, 8, 32, 128, 512])
    parser.add_argument("--widths", type=int, nargs="*", default=[32, 64, 128])
    parser.add_argument("--width-dir", type=Path, default=Path(tempfile.gettempdir()) / "snnav_bench_widths")
    parser.add_argument("--device", default="numpy", help="numpy, or a torch device: cpu, cuda")
    parser.add_argument("--save-inputs", type=Path, default=None, help="write the samples used to this .npz")
    parser.add_argument("--count", action=argparse.BooleanOptionalAction, default=True,
                        help="section 6: the emulator with activity counting against without, side by side")
    parser.add_argument("--count-repeats", type=int, default=2, help="alternated runs of section 6")
    parser.add_argument("--out", type=Path, default=None, help="write the report (markdown) here")
    args = parser.parse_args()

    import hardware_sims  # noqa: F401  (lava compatibility fixes, before any lava import)
    from export.ir.nirfile import read_graph
    from hardware_sims.emulator import emulate
    from hardware_sims.plan import build_plan

    device = None if args.device == "numpy" else args.device
    out = Report()
    cmd = " ".join(shlex.quote(a) for a in ["python", "scripts/bench_emulator.py", *sys.argv[1:]])
    load_start = os.getloadavg()
    out("# Batched emulator benchmark")
    out()
    out(f"Command: `{cmd}`")
    out()
    out("```")
    versions = f"numpy {np.__version__}"
    if device is not None:
        import torch

        versions += f", torch {torch.__version__}"
        if torch.device(device).type == "cuda":
            versions += f", GPU {torch.cuda.get_device_name(torch.device(device))}"
    out(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {versions}; load average {load_start[0]:.1f} / {load_start[1]:.1f} / "
        f"{load_start[2]:.1f} (1/5/15 min) at start")
    out(f"emulator device: {args.device}; precision {args.precision}")
    graph = read_graph(args.model)
    plan = build_plan(graph)
    inputs, labels = load_inputs(graph, args.data, args.samples)
    n = next(iter(inputs.values())).shape[1]
    out(f"model: {args.model} ({graph.metadata.get('model', '?')}, T = {next(iter(inputs.values())).shape[0]}, "
        f"{len(plan.processes)} processes, {synapse_weights(plan)} weights); inputs: "
        f"{'test split of ' + str(args.data) if labels is not None else 'uniform random'}, {n} samples")
    if args.save_inputs:
        np.savez(args.save_inputs, **inputs, labels=labels if labels is not None else np.zeros(n, dtype=np.int64))
        out(f"saved the inputs to {args.save_inputs}")

    def run(g, x, **kw):
        t0 = time.perf_counter()
        res = emulate(g, x, precision=args.precision, record=False, device=device, **kw)
        return res, time.perf_counter() - t0

    # 1. Lava
    lava_rate = args.lava_rate
    if args.lava_samples > 0:
        from hardware_sims.lava.run import run_lava

        x = subset(inputs, args.lava_samples)
        k = next(iter(x.values())).shape[1]
        t0 = time.perf_counter()
        lava = run_lava(plan, x, precision=args.precision, record=False)
        lava_wall = time.perf_counter() - t0
        emu, emu_wall = run(plan, x, batch_size=args.batch_size)
        exact = all(np.array_equal(lava.outputs[m], emu.outputs[m]) for m in lava.outputs)
        diff = max(float(np.abs(lava.outputs[m] - emu.outputs[m]).max()) for m in lava.outputs)
        lava_rate = k / lava.timing["run_s"]
        out()
        out(f"[1] Lava {args.precision}: {k} samples, run {lava.timing['run_s']:.1f} s "
            f"({lava.timing['ms_per_step']:.0f} ms/step), wall {lava_wall:.1f} s (compile "
            f"{lava.timing['compile_s']:.1f} s) -> {lava_rate:.3f} samples/s (wall {k / lava_wall:.3f})")
        out(f"    emulator on the same samples: outputs identical: {exact} (max |diff| {diff:.3g}); same prediction: "
            f"{np.mean(lava.readout().argmax(-1) == emu.readout().argmax(-1)):.0%}; wall {emu_wall:.2f} s")

    # 2. throughput on the whole split
    if n:
        emu, wall = run(plan, inputs, batch_size=args.batch_size)
        t = emu.timing
        acc = f"; accuracy {np.mean(emu.readout().argmax(-1) == labels):.2%}" if labels is not None else ""
        out()
        out(f"[2] emulator {args.precision}, batch {args.batch_size}: {n} samples in {wall:.1f} s wall (quantize "
            f"{t.get('quantize_s', 0):.2f} s, build {t['build_s']:.2f} s, run {t['run_s']:.1f} s) -> "
            f"{n / t['run_s']:.1f} samples/s run, {n / wall:.1f} samples/s wall{acc}")
        if lava_rate:
            src = "section 1" if args.lava_samples > 0 else "--lava-rate"
            out(f"    vs Lava ({lava_rate:.3f} samples/s, {src}): x{n / t['run_s'] / lava_rate:.0f} (run), "
                f"x{n / wall / lava_rate:.0f} (wall); Lava would take {n / lava_rate / 3600:.1f} h for these samples")

    # 3. batch size
    if args.batch_sizes:
        out()
        out("[3] batch size: samples/s over the run (quantize and build excluded)")
        out(f"    {'batch':>6} {'samples':>8} {'run s':>8} {'samples/s':>10}")
        for bs in args.batch_sizes:
            m = min(n, max(bs, 64))
            emu, _ = run(plan, subset(inputs, m), batch_size=bs)
            out(f"    {bs:>6} {m:>8} {emu.timing['run_s']:>8.2f} {m / emu.timing['run_s']:>10.1f}")

    # 4. width
    if args.widths:
        out()
        out(f"[4] width: S-CMRL exported at embed_dim = each width, random weights and BN statistics "
            f"({args.width_dir}), "
            f"batch {args.batch_size}, {min(n, 256)} samples")
        out(f"    {'width':>6} {'processes':>9} {'weights':>10} {'spikes/sample':>13} {'run s':>7} {'samples/s':>10}  "
            "(spikes/sample over the first 16 samples)")
        x = subset(inputs, min(n, 256))
        for width in args.widths:
            try:
                g, how = width_graph(width, args.width_dir)
            except ImportError as exc:  # a GPU box without the training stack: export the graphs elsewhere
                out(f"    {width:>6} skipped: cannot export here ({exc}); run once where snnav imports")
                continue
            p = build_plan(g)
            res = emulate(g, subset(x, 16), precision=args.precision, device=device,
                          record=[q.node for q in p.of_kind("neuron") if q.spiking])
            spikes = sum(float(v.sum()) for k, v in res.records.items() if k not in p.outputs) / len(res.readout())
            emu, _ = run(g, x, batch_size=args.batch_size)
            out(f"    {width:>6} {len(p.processes):>9} {synapse_weights(p):>10} {spikes:>13.0f} "
                f"{emu.timing['run_s']:>7.2f} {len(emu.readout()) / emu.timing['run_s']:>10.1f}  ({how})")

    # 5. profile
    if n:
        m = min(n, 256)
        emu, _ = run(plan, subset(inputs, m), batch_size=args.batch_size, profile=True)
        prof = {k.split(":", 1)[1]: v for k, v in emu.timing.items() if k.startswith("profile:")}
        total = emu.timing["run_s"]
        out()
        out(f"[5] profile: {m} samples, batch {args.batch_size}, run {total:.2f} s (timed with a synchronisation per "
            "process step; shares of the run)")
        for key, sec in sorted(prof.items(), key=lambda kv: -kv[1]):
            out(f"    {key:<34} {sec:>7.2f} s {100 * sec / total:>5.1f} %")
        rest = total - sum(prof.values())
        out(f"    {'schedule (the rest)':<34} {rest:>7.2f} s {100 * rest / total:>5.1f} %")
        out(f"    {'quantize (once, before the run)':<34} {emu.timing.get('quantize_s', 0):>7.2f} s")
        out(f"    {'build (once, before the run)':<34} {emu.timing['build_s']:>7.2f} s")

    # 6. counting
    if n and args.count:
        from hardware_sims.counts import ActivityCounter
        from snnav.app.simulate import COUNT_CHUNK

        chunk = COUNT_CHUNK["emulator"]
        walls = {"without": [], "with": []}
        for _ in range(args.count_repeats):  # alternated, so a change of load hits both
            t0 = time.perf_counter()
            emulate(plan, inputs, precision=args.precision, record=False, device=device, batch_size=args.batch_size)
            walls["without"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            counter, run_plan, counts, first = ActivityCounter(graph), plan, None, None
            for s0 in range(0, n, chunk):  # as `snnav simulate --count` runs it: chunks, the plan quantized once
                res = emulate(run_plan, subset_range(inputs, s0, s0 + chunk), precision=args.precision, record=True,
                              device=device, batch_size=args.batch_size)
                run_plan = res.plan
                c = counter(res)
                first = (res, c) if first is None else first
                counts = c if counts is None else counts.merge(c)
                del res
            walls["with"].append(time.perf_counter() - t0)
        from hardware_sims.counts import count_activity

        same = count_activity(first[0], graph) == first[1]
        w0, w1 = min(walls["without"]), min(walls["with"])
        out()
        out(f"[6] counting, {n} samples, best of {args.count_repeats} alternated runs (wall, quantize included): "
            f"without counts (record=False, batch {args.batch_size}) {w0:.1f} s, with counts (every node recorded, "
            f"chunks of {chunk}, ActivityCounter) {w1:.1f} s -> with/without throughput x{w0 / w1:.2f}")
        out(f"    all runs: without {' '.join(f'{w:.1f}' for w in walls['without'])} s; with "
            f"{' '.join(f'{w:.1f}' for w in walls['with'])} s; first chunk's counts equal count_activity's: {same}; "
            f"total spikes per sample {counts.totals['spikes']:.0f}")

    load_end = os.getloadavg()
    out()
    out(f"load average at end {load_end[0]:.1f} / {load_end[1]:.1f} / {load_end[2]:.1f}")
    out("```")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=args.out.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(out.lines) + "\n")
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
