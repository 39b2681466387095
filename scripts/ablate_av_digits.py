"""Reproduce the S-CMRL paper's ablations on AV-Digits, each with and without IEMF, over several seeds.

Runs (model, IEMF on/off, seed) for: audio-only, visual-only, AV add, AV concat, CMRL without alignment (α = 1.5),
S-CMRL (α = 1.5, alignment τ = 0.07), WeightAttention, SCA and CMCI (IEMF does not apply to the unimodal models).
Each run is an ordinary ``snnav.training.train`` run in ``OUT/<name>/iemf-<on|off>/seed-<s>``: an interrupted
ablation continues where it stopped (finished runs are read back, an unfinished one resumes from its checkpoint).

Writes ``OUT/results.md`` and ``OUT/results.json``: mean ± std over seeds of the best and the last test accuracy, and
the epochs a run needs to reach the AV-add baseline's best accuracy (mean over seeds; "—" when it never does).

    python scripts/ablate_av_digits.py --data runs/default/av_digits.h5 --out runs/ablation
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snnav.training.config import PACKAGED_CONFIGS

# (name, model, config overrides); the order is the table's.
VARIANTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("audio-only", "spikformer-audio", {}),
    ("visual-only", "spikformer-visual", {}),
    ("AV add", "av-add", {}),
    ("AV concat", "av-concat", {}),
    ("CMRL w/o alignment (α=1.5)", "cmrl", {"model_config": {"alpha": 1.5}, "align_loss": "off"}),
    ("S-CMRL (α=1.5, τ=0.07)", "scmrl", {"model_config": {"alpha": 1.5}, "align_loss": "exact", "align_tau": 0.07}),
    ("WeightAttention", "weight-attention", {}),
    ("SCA", "sca", {}),
    ("CMCI", "cmci", {}),
)
UNIMODAL = {"spikformer-audio", "spikformer-visual"}
BACKBONE_KEYS = ("stem", "embed_dim", "num_heads", "mlp_ratio")
BASELINE = "AV add"


@dataclass
class Cell:
    best: list[float] = field(default_factory=list)
    last: list[float] = field(default_factory=list)
    curves: list[list[float]] = field(default_factory=list)
    attn: list[float] = field(default_factory=list)  # mean firing rate of the attention neurons (attn_lif), last epoch


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


def run_one(base, name: str, model: str, overrides: dict[str, Any], iemf: bool, seed: int, out: Path,
            finished_only: bool = False) -> Cell | None:
    from snnav.training import train
    from snnav.training.config import IEMFConfig
    from snnav.training.loop import read_metrics

    run_dir = out / _slug(name) / f"iemf-{'on' if iemf else 'off'}" / f"seed-{seed}"
    # The base config is S-CMRL's: keep only its backbone keys, which every variant shares.
    backbone = {k: v for k, v in base.model_config.items() if k in BACKBONE_KEYS}
    changes = {**overrides, "model_config": {**backbone, **overrides.get("model_config", {})}}
    config = base.replace(model=model, seed=seed, iemf=IEMFConfig(enabled=iemf), **changes)
    metrics_file = run_dir / "metrics.json"
    done = metrics_file.is_file() and len(read_metrics(run_dir).get("epochs", [])) >= config.epochs
    if not done and finished_only:
        print("    not finished: left out of the table", flush=True)
        return None
    if not done:
        t0 = time.perf_counter()
        train(config, run_dir)
        print(f"    trained in {time.perf_counter() - t0:.0f} s", flush=True)
    history = read_metrics(run_dir)["epochs"]
    curve = [float(h["test_acc"]) for h in history]
    rates = [r for k, r in history[-1].get("firing_rate", {}).items() if k.endswith("attn_lif")]
    return Cell(best=[max(curve)], last=[curve[-1]], curves=[curve], attn=[statistics.fmean(rates)] if rates else [])


def _fmt(values: list[float]) -> str:
    if not values:
        return "—"
    mean = 100 * statistics.fmean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f}"


def epochs_to_reach(curves: list[list[float]], target: float) -> str:
    hits = [next((i + 1 for i, acc in enumerate(c) if acc >= target), None) for c in curves]
    reached = [h for h in hits if h is not None]
    if not reached:
        return "—"
    return f"{statistics.fmean(reached):.1f} ({len(reached)}/{len(hits)})"


def table(cells: dict[tuple[str, bool], Cell], seeds: list[int], header: str) -> str:
    base = cells.get((BASELINE, False))
    target = statistics.fmean(base.best) if base and base.best else None
    lines = [header, "",
             f"Mean ± std over seeds {seeds} of test accuracy (%). 'Epochs to AV-add best' counts the first epoch whose "
             f"test accuracy reaches the AV-add (no IEMF) mean best accuracy"
             + (f" ({100 * target:.2f} %)" if target is not None else "") + "; in brackets, how many seeds reached it.",
             "'attn rate' is the mean firing rate of the attention neurons (`attn_lif`) on the test split after the last "
             "epoch (— for models without one): 0 means the attention branch is silent and its output constant.",
             "", "| model | IEMF | seeds | best | last | epochs to AV-add best | attn rate |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, model, _ in VARIANTS:
        for iemf in (False, True):
            cell = cells.get((name, iemf))
            if cell is None:
                continue
            reach = epochs_to_reach(cell.curves, target) if target is not None else "—"
            attn = f"{statistics.fmean(cell.attn):.4f}" if cell.attn else "—"
            lines.append(f"| {name} | {'on' if iemf else 'off'} | {len(cell.best)} | {_fmt(cell.best)} | {_fmt(cell.last)} | {reach} "
                         f"| {attn} |")
    return "\n".join(lines) + "\n"


def _run_parallel(argv: list[str], args: argparse.Namespace) -> None:
    """Train every selected (variant, seed) in its own process, at most ``args.jobs`` at once (IEMF off then on in
    that process); the caller then reads the finished runs back and writes the table as a sequential run would."""
    import subprocess

    names = [n for n, _, _ in VARIANTS if args.only is None or n in args.only]
    rest, skip = [], False
    for a in argv:  # drop --jobs/--only/--seeds and their values
        if skip and not a.startswith("--"):
            continue
        skip = a in ("--jobs", "--only", "--seeds")
        if not skip and not a.startswith("--jobs="):
            rest.append(a)
    pending = [(n, s) for s in args.seeds for n in names]
    running: list = []
    while pending or running:
        while pending and len(running) < args.jobs:
            name, seed = pending.pop(0)
            log = open(args.out / f"{_slug(name)}-seed-{seed}.log", "w")
            cmd = [sys.executable, __file__, *rest, "--jobs", "1", "--no-table", "--seeds", str(seed), "--only", name]
            running.append((name, seed, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
            print(f"started {name} seed {seed} (log {log.name})", flush=True)
        time.sleep(2)
        for item in list(running):
            name, seed, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                print(f"finished {name} seed {seed}: exit {proc.returncode}", flush=True)
                if proc.returncode:
                    raise SystemExit(f"{name!r} seed {seed} failed (exit {proc.returncode}); see {log.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("runs/default/av_digits.h5"), help="AV-Digits file")
    parser.add_argument("--config", type=Path, default=PACKAGED_CONFIGS / "av-digits-scmrl.toml",
                        help="base training config (model, seed and IEMF are set per run)")
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 47, 1024])
    parser.add_argument("--epochs", type=int, default=None, help="override the base config's epochs")
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    parser.add_argument("--input-size", type=int, default=None,
                        help="override the base config's input_size (the file's frames are pooled down to it)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run (1 when sharing the cores)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="(variant, seed) pairs trained at once in separate processes (e.g. on a GPU machine "
                             "with many CPU cores); each writes its log to OUT/<variant>-seed-<s>.log")
    parser.add_argument("--no-table", action="store_true", help=argparse.SUPPRESS)  # a --jobs worker
    parser.add_argument("--finished-only", action="store_true",
                        help="train nothing: tabulate the runs already finished in OUT (cells show how many seeds)")
    args = parser.parse_args(argv)

    import torch

    from snnav.io import atomic_path
    from snnav.training.config import load_config

    torch.set_num_threads(args.threads)
    base = load_config(args.config).replace(data=str(args.data))
    if args.epochs:
        base = base.replace(epochs=args.epochs)
    if args.input_size:
        base = base.replace(input_size=args.input_size, data_options={**base.data_options, "size": args.input_size})
    args.out.mkdir(parents=True, exist_ok=True)
    if args.jobs > 1:
        _run_parallel(argv if argv is not None else sys.argv[1:], args)
    cells: dict[tuple[str, bool], Cell] = {}
    variants = [v for v in VARIANTS if args.only is None or v[0] in args.only]
    total = sum(len(args.seeds) * (1 if model in UNIMODAL else 2) for _, model, _ in variants)
    k = 0
    t0 = time.perf_counter()
    for name, model, overrides in variants:
        for iemf in (False, True):
            if iemf and model in UNIMODAL:
                continue
            cell = cells.setdefault((name, iemf), Cell())
            for seed in args.seeds:
                k += 1
                print(f"[{k}/{total}] {name} IEMF={'on' if iemf else 'off'} seed={seed} "
                      f"({time.perf_counter() - t0:.0f} s elapsed)", flush=True)
                one = run_one(base, name, model, overrides, iemf, seed, args.out, args.finished_only)
                if one is None:
                    continue
                cell.best += one.best
                cell.last += one.last
                cell.curves += one.curves
                cell.attn += one.attn
    if args.no_table:
        return 0
    header = (f"# AV-Digits ablation ({base.epochs} epochs, batch {base.batch_size}, input {base.input_size or 'preset'}, "
              f"data {args.data})")
    text = table(cells, args.seeds, header)
    with atomic_path(args.out / "results.md") as tmp:
        tmp.write_text(text)
    with atomic_path(args.out / "results.json") as tmp:
        tmp.write_text(json.dumps({f"{n} | iemf={'on' if i else 'off'}": vars(c) for (n, i), c in cells.items()},
                                  indent=1))
    print(text)
    print(f"wrote {args.out / 'results.md'} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
