"""``snnav train``: train a spiking audio-visual model from a TOML config, with exact resume and torchrun support.

Examples::

    snnav train --config av-digits-scmrl --data /tmp/avd_default.h5 --out runs/avd
    snnav train --out runs/avd --resume                      # continue (the saved config is reused)
    snnav train --finetune runs/avd --fixed-point --weight-bits 6 --out runs/avd-q6   # quantization-aware fine-tuning
    torchrun --nproc_per_node 2 -m snnav train --config ... --out ...   # data parallel (gloo on CPU, NCCL on GPU)

Also runnable as ``python -m snnav.app.commands.train`` (same arguments).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch

from snnav.app.checkpoint_export import checkpoint_path
from snnav.app.progress import TrainingBars
from snnav.app.qat import export_finetuned, save_spec, spec_for_run
from snnav.errors import ConfigError, SnnavError
from snnav.training import runtime
from snnav.training.checkpoint import load_checkpoint
from snnav.training.config import QATConfig, TrainConfig, load_config, packaged_configs
from snnav.training.distributed import init_distributed, shutdown_distributed
from snnav.training.loop import load_qat_spec, train

# option -> TrainConfig field
_OVERRIDES = {"model": "model", "dataset": "dataset", "data": "data", "epochs": "epochs",
              "batch_size": "batch_size", "lr": "lr", "seed": "seed", "device": "device", "workers": "num_workers"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML training config: a file, or the name of a shipped config "
                        f"({', '.join(packaged_configs())}); default: built-in defaults, "
                        "or the saved config of RUN_DIR with --resume")
    parser.add_argument("--out", required=True, type=Path, metavar="RUN_DIR",
                        help="run directory: checkpoints, metrics, effective config")
    g = parser.add_argument_group("overrides of config keys")
    g.add_argument("--model", help="registered model name (e.g. scmrl, cmrl, av-add, cmci)")
    g.add_argument("--dataset", help="av-digits, crema-d, urbansound8k-av or mnistdvs-ntidigits")
    g.add_argument("--data", help="AV-Digits .h5 file or the real dataset's root folder")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int, help="global batch size (split over torchrun processes)")
    g.add_argument("--lr", type=float, help="base lr before linear scaling by batch/1024")
    g.add_argument("--seed", type=int)
    g.add_argument("--iemf", action="store_true", help="enable IEMF (docs/iemf.md) with the config's [iemf] settings")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"))
    g.add_argument("--workers", type=int, help="DataLoader worker processes")
    q = parser.add_argument_group("quantization-aware fine-tuning (snnav/app/qat.py)")
    q.add_argument("--finetune", type=Path, metavar="RUN_DIR",
                   help="start from this trained float run (its best.pt, else last.pt) and its config")
    q.add_argument("--fixed-point", action="store_true",
                   help="with --finetune: the forward pass runs Loihi's fixed point as hardware_sims deploys it "
                   "(weights on the N-bit grid of the quantizer's per-layer exponent, integer LIF)")
    q.add_argument("--weight-bits", type=int, default=8, metavar="N", help="Loihi numWeightBits, 1..8 (default 8)")
    q.add_argument("--v-headroom", type=float, default=None,
                   help="the quantizer's threshold scale (default: hardware_sims' V_HEADROOM)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in RUN_DIR (it also continues automatically when the config matches)")
    parser.add_argument("--stop-after", type=int, metavar="N", help="stop once N epochs are complete (resume later)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch intra-op threads (default: torch's choice). On a busy machine 1 can be much "
                        "faster than 2; exact resume needs the same number as the interrupted run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-fast-runtime", action="store_true",
                        help="do not apply the fast CPU process settings (glibc malloc keeps large blocks, denormal "
                        "floats flush to zero; see snnav/training/runtime.py); SNNAV_FAST_RUNTIME=0 does the same")


def _base_config(args: argparse.Namespace):
    if args.config is not None:
        return load_config(args.config)
    if args.resume and (args.out / "last.pt").is_file():
        return TrainConfig.from_dict(load_checkpoint(args.out / "last.pt")["config"])
    return TrainConfig()


def build_config(args: argparse.Namespace):
    """The effective :class:`TrainConfig`: the file (or saved/default config) with command-line overrides."""
    config = _base_config(args)
    changes: dict[str, Any] = {field: getattr(args, opt) for opt, field in _OVERRIDES.items()
                               if getattr(args, opt, None) is not None}
    if getattr(args, "iemf", False):
        changes["iemf"] = replace(config.iemf, enabled=True)
    return config.replace(**changes) if changes else config


FINETUNE_EPOCHS = 1
FINETUNE_LR_FACTOR = 0.1
"""Fine-tuning defaults: one epoch at a tenth of the float run's base lr, no warm-up (--epochs / --lr override)."""


def finetune_config(args: argparse.Namespace) -> TrainConfig:
    """The config of a quantization-aware fine-tuning run: the float run's, with the spec written into RUN_DIR."""
    if not args.fixed_point:
        raise ConfigError("--finetune needs --fixed-point (the only fine-tuning mode).")
    if args.config is not None or args.resume:
        raise ConfigError("--finetune takes the float run's config; drop --config/--resume (continue a fine-tuning "
                          "run with snnav train --out RUN_DIR --resume).")
    if not 1 <= args.weight_bits <= 8:
        raise ConfigError(f"--weight-bits must be in 1..8 (Loihi's numWeightBits, weight_bits); got {args.weight_bits}.")
    if args.v_headroom is not None and not args.v_headroom > 0:
        raise ConfigError(f"--v-headroom must be > 0; got {args.v_headroom}.")
    spec_path = args.out / "qat_spec.pt"
    kwargs = {"weight_bits": args.weight_bits} | ({} if args.v_headroom is None else {"v_headroom": args.v_headroom})
    spec, ckpt = spec_for_run(args.finetune, **kwargs)
    base = TrainConfig.from_dict(ckpt["config"])
    config = base.replace(epochs=FINETUNE_EPOCHS, lr=base.lr * FINETUNE_LR_FACTOR, warmup_epochs=0,
                          qat=QATConfig(spec=str(spec_path), init=str(checkpoint_path(args.finetune))))
    args.config = None
    changes = {f: getattr(args, o) for o, f in _OVERRIDES.items() if getattr(args, o, None) is not None}
    config = config.replace(**changes) if changes else config
    if not spec_path.is_file():  # a continued fine-tuning run keeps the spec it started with
        save_spec(spec, spec_path)
    return config


def run(args: argparse.Namespace) -> int:
    runtime.apply_runtime_settings(not args.no_fast_runtime)  # first: before large allocations and torch's threads
    if getattr(args, "finetune", None) is not None:
        config = finetune_config(args)
    elif getattr(args, "fixed_point", False):
        raise ConfigError("--fixed-point needs --finetune RUN_DIR (the trained float run to start from).")
    else:
        config = build_config(args)
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1; got {args.threads}.")

        torch.set_num_threads(args.threads)
    ctx = init_distributed(config.device)
    bars = TrainingBars(enabled=ctx.is_main and not args.no_progress)
    try:
        result = train(config, args.out, resume=True if args.resume else None, progress=bars,
                       stop_after_epoch=args.stop_after, ctx=ctx)
    finally:
        bars.close()
        shutdown_distributed()
    if ctx.is_main and config.qat.enabled and result.epochs_completed == config.epochs:
        out = export_finetuned(args.out, load_qat_spec(config.qat.spec), args.out / "model.nir")
        print(f"wrote {out} (fixed-point weights, quantizer settings in metadata['quantizer'])")
    if ctx.is_main:
        if result.epochs_completed:
            print(f"best test accuracy {result.best_acc:.4f} (epoch {result.best_epoch + 1}), "
                  f"last {result.last_acc:.4f} after {result.epochs_completed}/{config.epochs} epochs; "
                  f"run directory {args.out}")
        else:
            print(f"no epoch completed; run directory {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m snnav.app.commands.train``), with the same one-line errors as ``snnav``."""

    parser = argparse.ArgumentParser(prog="snnav train", description="train a spiking audio-visual model")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return run(args)
    except SnnavError as exc:
        if os.environ.get("RANK", "0") == "0":  # under torchrun every process fails alike; one message is enough
            print(f"snnav train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("snnav train: interrupted; the last checkpoint is kept: re-running the same command (or with --resume) "
              "continues the run from it", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
