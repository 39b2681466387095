"""``snnav run``: the main job, the whole pipeline built so far, on the embedded default data.

Stages (each reuses its output from an earlier run unless ``--force``):
  1. data: generate AV-Digits with the default configuration into ``WORKDIR/av_digits.h5``;
  2. train: train the default S-CMRL (``configs/av-digits-scmrl.toml``) into ``WORKDIR/train`` and print its test
     accuracy. An interrupted training run continues from its last checkpoint.
  3. export: export the trained model to ``WORKDIR/model.nir`` (dt = 1 ms), print the graph summary, and check the
     NIR interpreter against the trained model on the first test samples (logit difference, spike mismatches);
  4. simulate: run the export on Lava's Loihi simulation in bit-accurate fixed point on the first test samples and
     print accuracy and agreement with floating point;
  5. emulate: evaluate the whole test split with the batched emulator of Lava's fixed point (bit-exact with it) and
     print fixed-point and floating-point accuracy.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

DEFAULT_TRAIN_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "av-digits-scmrl.toml"
STAGES = 5
LAVA_SAMPLES = 8
DT_S = 1e-3
CHECK_SAMPLES = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=Path("runs/default"),
                        help="where every stage writes its outputs (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="redo every stage even if its output exists")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")


def _stage_data(workdir: Path, workers: int, force: bool) -> Path:
    from snnav.cli_data import describe, make_av_digits
    from snnav.data.av_digits import AVDigitsConfig
    from snnav.data.av_digits_file import read_av_digits_info
    from snnav.errors import DatasetError

    path = workdir / "av_digits.h5"
    config = AVDigitsConfig()
    if path.exists() and not force:
        try:
            if read_av_digits_info(path).config == config:
                print(f"[1/{STAGES} data] reusing {path} (same configuration; --force regenerates)")
                describe(path)
                return path
        except DatasetError as exc:
            print(f"[1/{STAGES} data] {path} is unusable ({exc}); regenerating")
    print(f"[1/{STAGES} data] generating AV-Digits into {path}")
    make_av_digits(path, config, workers, force=True)
    describe(path)
    return path


def _stage_train(workdir: Path, data: Path, force: bool) -> Path:
    import shutil

    from snnav.cli_train import _Bars
    from snnav.errors import ConfigError
    from snnav.training.config import load_config
    from snnav.training.loop import read_metrics, train

    if not DEFAULT_TRAIN_CONFIG.is_file():
        raise ConfigError(f"the default training config {DEFAULT_TRAIN_CONFIG} is missing; run from a snnav checkout "
                          "installed with scripts/setup.sh")
    config = load_config(DEFAULT_TRAIN_CONFIG).replace(data=str(data.resolve()))
    run_dir = workdir / "train"
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    history = read_metrics(run_dir).get("epochs", []) if (run_dir / "metrics.json").is_file() else []
    if len(history) >= config.epochs:
        print(f"[2/{STAGES} train] reusing {run_dir} ({config.model}, {config.epochs} epochs; --force retrains)")
    else:
        print(f"[2/{STAGES} train] training {config.model} on AV-Digits for {config.epochs} epochs into {run_dir} "
              f"(config {DEFAULT_TRAIN_CONFIG.name})")
        bars = _Bars(enabled=True)
        try:
            train(config, run_dir, progress=bars)
        finally:
            bars.close()
        history = read_metrics(run_dir)["epochs"]
    accs = [h["test_acc"] for h in history]
    print(f"[2/{STAGES} train] S-CMRL test accuracy: last {accs[-1]:.4f}, best {max(accs):.4f} "
          f"(epoch {accs.index(max(accs)) + 1} of {len(accs)}) on the AV-Digits test split")
    return run_dir


def _stage_export(workdir: Path, run_dir: Path, data: Path) -> Path:
    import torch

    from export.equivalence import compare
    from export.nirfile import format_summary, read_graph
    from export.from_checkpoint import load_trained_model
    from snnav.cli_export import export_checkpoint
    from snnav.training.build import open_datasets
    from snnav.training.config import TrainConfig

    out = workdir / "model.nir"
    summary = export_checkpoint(run_dir, out, DT_S)
    print(f"[3/{STAGES} export] wrote {out} (dt {DT_S * 1e3:g} ms)")
    print(format_summary(summary, file_size_bytes=out.stat().st_size))
    model, ckpt = load_trained_model(run_dir)
    config = TrainConfig.from_dict(ckpt["config"])
    (test,) = open_datasets(config.replace(data=str(data)), ("test",))
    batch = [test[i] for i in range(min(CHECK_SAMPLES, len(test)))]  # items are time-first (T, C, H, W)
    audio = torch.stack([b[0] for b in batch], dim=1)  # (T, B, C, H, W)
    visual = torch.stack([b[1] for b in batch], dim=1)
    result = compare(model, read_graph(out), audio, visual)
    print(f"[3/{STAGES} export] NIR interpreter vs trained model on {len(batch)} test samples: "
          f"max |delta logit| {result.max_abs_logit_diff:.2e}, spike mismatches {result.spike_mismatches} of "
          f"{sum(layer.total for layer in result.layers)} in {len(result.layers)} neuron layers, "
          f"same prediction {100 * result.argmax_agreement:.1f}%")
    return out


def _stage_simulate(graph_path: Path, data: Path) -> None:
    import hardware_sims  # noqa: F401  (Lava's compatibility fixes before any lava import)
    from export.nirfile import read_graph
    from snnav.cli_simulate import format_result, open_test_split, simulate

    graph = read_graph(graph_path)
    print(f"[4/{STAGES} simulate] running {graph_path} on Lava Loihi2SimCfg, bit-accurate fixed point, "
          f"{LAVA_SAMPLES} test samples")
    result = simulate(graph, open_test_split(graph, data), LAVA_SAMPLES, "fixed", record_spikes=False,
                      progress=lambda line: print(f"[4/{STAGES} simulate]{line}", flush=True))
    print(f"[4/{STAGES} simulate] " + format_result(result, "fixed"))


def _stage_emulate(graph_path: Path, data: Path) -> None:
    from export.nirfile import read_graph
    from snnav.cli_simulate import format_result, open_test_split, simulate

    graph = read_graph(graph_path)
    dataset = open_test_split(graph, data)
    print(f"[5/{STAGES} emulate] the whole test split ({len(dataset)} samples) with the batched emulator of Lava's "
          "fixed point")
    result = simulate(graph, dataset, len(dataset), "fixed", record_spikes=False, backend="emulator",
                      progress=lambda line: print(f"[5/{STAGES} emulate]{line}", flush=True))
    print(f"[5/{STAGES} emulate] " + format_result(result, "fixed", "emulator"))


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = _stage_data(args.workdir, args.workers, args.force)
    run_dir = _stage_train(args.workdir, data, args.force)
    graph_path = _stage_export(args.workdir, run_dir, data)
    _stage_simulate(graph_path, data)
    _stage_emulate(graph_path, data)
    print(f"main job done in {time.perf_counter() - t0:.1f} s; outputs in {args.workdir}")
    return 0
