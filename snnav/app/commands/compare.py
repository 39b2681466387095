"""``snnav compare MODEL.nir [--data FILE] [--backends a,b,...] [--samples N] [--out DIR] [--force]``: where backends
part.

Runs the chosen backends (``torch`` — the trained model, with ``--run DIR``; ``interpreter`` — the NIR reference in
float64; ``lava-float``, ``lava-fixed``; ``emulator-float``, ``emulator-fixed``) on the same samples (the test split
with ``--data``, random spikes without) and reports, for each pair, the first node, step and neuron where they part,
the values there, and in fixed point which weights, decays, threshold, bias or state of that neuron were clipped or
rounded and by how much; and every pair's nodes ranked by divergence. ``--out DIR`` writes ``compare.md``,
``compare.html`` and ``compare.json`` (:mod:`snnav.app.report.divergence`).
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from export.ir.nirfile import read_graph
from hardware_sims.plan.conventions import CHOICES
from snnav.app.compare import BACKENDS, DEFAULT_BACKENDS, compare_model, parse_backends
from snnav.app.report.divergence import comparison_json, render_compare_html, render_compare_markdown
from snnav.errors import InputError, OutputError
from snnav.io import atomic_path, write_json

__all__ = ["add_arguments", "run", "FILES"]

FILES = ("compare.md", "compare.html", "compare.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="a .nir file (written by snnav export, or any NIR graph)")
    parser.add_argument("--backends", default=",".join(DEFAULT_BACKENDS),
                        help=f"comma-separated, at least two of {','.join(BACKENDS)} (default %(default)s)")
    parser.add_argument("--data", type=Path, default=None,
                        help="the dataset file the model was trained on: its first test samples are run (default: "
                             "random binary spikes)")
    parser.add_argument("--samples", type=int, default=4, help="samples to run (default %(default)s)")
    parser.add_argument("--run", type=Path, default=None,
                        help="the training run (or checkpoint) the graph was exported from: needed by 'torch'")
    parser.add_argument("--weight-bits", type=int, default=None,
                        help="Loihi's numWeightBits for the fixed-point backends (1..8; default 8)")
    parser.add_argument("--convention", choices=CHOICES, default="nir",
                        help="whose neuron stepping the hardware backends and the interpreter follow (default "
                             "%(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs without --data")
    parser.add_argument("--out", type=Path, default=None,
                        help="write compare.md, compare.html and compare.json into this folder")
    parser.add_argument("--force", action="store_true", help="replace the files of an existing --out folder")


def _check_out(out: Path | None, force: bool) -> None:
    if out is None:
        return
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; pass a folder")
    if out.is_dir() and not force:
        raise OutputError(f"--out {out} exists; pass --force to replace its files")


def _command(args: argparse.Namespace) -> str:
    parts = ["snnav", "compare", str(args.model), "--backends", args.backends, "--samples", str(args.samples)]
    for flag, value in (("--data", args.data), ("--run", args.run), ("--weight-bits", args.weight_bits),
                        ("--out", args.out)):
        if value is not None:
            parts += [flag, str(value)]
    if args.convention != "nir":
        parts += ["--convention", args.convention]
    if args.data is None and args.seed:
        parts += ["--seed", str(args.seed)]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    backends = parse_backends(args.backends)
    if args.samples < 1:
        raise InputError(f"--samples must be >= 1; got {args.samples}")
    if args.weight_bits is not None and not 1 <= args.weight_bits <= 8:
        raise InputError(f"--weight-bits must be in 1..8; got {args.weight_bits}")
    if "torch" in backends and args.run is None:
        raise InputError("backend 'torch' needs the training run: pass --run DIR (the run the graph was exported from)")
    _check_out(args.out, args.force)
    graph = read_graph(args.model)
    options = {"weight_bits": args.weight_bits} if args.weight_bits is not None else None
    print(f"comparing {', '.join(backends)} on {args.model}")
    comparison, info = compare_model(graph, backends, samples=args.samples, data=args.data, run_dir=args.run,
                                     convention=args.convention, quant_options=options, seed=args.seed)
    info = {"model": str(args.model), **info, "command": _command(args)}
    for p in comparison.pairs:
        where = "agree" if p.agree else (f"part at {p.first.node} ({p.first.kind}), step {p.first.step}, sample "
                                         f"{p.first.sample}, neuron {list(p.first.index)}")
        print(f"  {p.a} vs {p.b}: {where}; {p.spike_mismatches} differing spikes")
    if args.out is not None:
        if args.force and args.out.is_dir():
            for name in FILES:
                (args.out / name).unlink(missing_ok=True)
        args.out.mkdir(parents=True, exist_ok=True)
        for name, text in (("compare.md", render_compare_markdown(comparison, info)),
                           ("compare.html", render_compare_html(comparison, info))):
            with atomic_path(args.out / name) as tmp:
                tmp.write_text(text, encoding="utf-8")
        write_json(args.out / "compare.json", comparison_json(comparison, info))
        print(f"wrote {', '.join(str(args.out / n) for n in FILES)}")
    return 0


