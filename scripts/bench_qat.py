"""A float training step against a quantization-aware (fixed-point) fine-tuning step of the same model and batches.

Both are ``snnav.training.loop.Trainer.train_step`` (forward, loss, backward, AdamW) exactly as ``snnav train`` runs
it, on the first ``--steps`` batches of the run's training split (after ``--warmup`` untimed steps). The fixed-point
trainer is built as ``snnav train --finetune RUN --fixed-point --weight-bits N`` builds it (the spec from the
deployment quantizer, the float run's weights). Prints the median step seconds of each and their ratio.

    python scripts/bench_qat.py --run /tmp/fc/runs/default/train --data /tmp/fc/runs/default/av_digits.h5 \
        --weight-bits 4 --threads 2 [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from snnav.app.checkpoint_export import checkpoint_path  # noqa: E402
from snnav.app.qat import save_spec, spec_for_run  # noqa: E402
from snnav.training import runtime  # noqa: E402
from snnav.training.build import open_datasets  # noqa: E402
from snnav.training.checkpoint import load_checkpoint  # noqa: E402
from snnav.training.config import QATConfig, TrainConfig  # noqa: E402
from snnav.training.distributed import init_distributed  # noqa: E402
from snnav.training.loop import Trainer  # noqa: E402
from snnav.training.qat import freeze_batchnorm  # noqa: E402


def time_steps(trainer: Trainer, batches: list, warmup: int, profile: Path | None) -> list[float]:
    trainer.model.train()
    if trainer.config.qat.enabled:
        freeze_batchnorm(trainer.model)
    for b in batches[:warmup]:
        trainer.train_step(b, 0, trainer.config.lr, len(batches))
    times = []
    prof = cProfile.Profile() if profile else None
    for b in batches[warmup:]:
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        trainer.train_step(b, 0, trainer.config.lr, len(batches))
        if prof:
            prof.disable()
        times.append(time.perf_counter() - t0)
    if prof:
        prof.dump_stats(str(profile))
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="trained float run folder")
    ap.add_argument("--data", type=Path, required=True, help="the run's data file")
    ap.add_argument("--weight-bits", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3, help="timed steps")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("float", "fixed"), default=None)
    ap.add_argument("--profile", action="store_true", help="cProfile the fixed-point steps (top 25 by own time)")
    args = ap.parse_args(argv)
    runtime.apply_runtime_settings(True)
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(checkpoint_path(args.run))
    base = TrainConfig.from_dict(ckpt["config"]).replace(data=str(args.data), device="cpu")
    train_set, test_set = open_datasets(base)
    n = args.warmup + args.steps
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(train_set), generator=g)[: n * base.batch_size].tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(train_set, idx), batch_size=base.batch_size)
    batches = list(loader)
    ctx = init_distributed("cpu")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "float"):
            t = Trainer(base, Path(tmp) / "f", ctx, train_set, test_set, None)
            out["float"] = statistics.median(time_steps(t, batches, args.warmup, None))
            del t
        if args.only in (None, "fixed"):
            spec, _ = spec_for_run(args.run, weight_bits=args.weight_bits)
            spec_path = save_spec(spec, Path(tmp) / "qat_spec.pt")
            cfg = base.replace(lr=base.lr * 0.1, warmup_epochs=0,
                               qat=QATConfig(spec=str(spec_path), init=str(checkpoint_path(args.run))))
            t = Trainer(cfg, Path(tmp) / "q", ctx, train_set, test_set, None)
            prof = Path(tmp) / "prof" if args.profile else None
            out["fixed"] = statistics.median(time_steps(t, batches, args.warmup, prof))
    print(f"batch {base.batch_size}, threads {args.threads}, weight bits {args.weight_bits}, "
          f"median of {args.steps} steps after {args.warmup} warm-up")
    if "float" in out:
        print(f"float step s        {out['float']:.3f}")
    if "fixed" in out:
        print(f"fixed-point step s  {out['fixed']:.3f}")
    if len(out) == 2:
        print(f"ratio               {out['fixed'] / out['float']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
