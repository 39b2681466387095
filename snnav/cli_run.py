"""``snnav run``: the main job, the whole pipeline built so far, on the embedded default data.

Stages (each reuses its output from an earlier run unless ``--force``):
  1. data: generate AV-Digits with the default configuration into ``WORKDIR/av_digits.h5``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


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
                print(f"[1/1 data] reusing {path} (same configuration; --force regenerates)")
                describe(path)
                return path
        except DatasetError as exc:
            print(f"[1/1 data] {path} is unusable ({exc}); regenerating")
    print(f"[1/1 data] generating AV-Digits into {path}")
    make_av_digits(path, config, workers, force=True)
    describe(path)
    return path


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    args.workdir.mkdir(parents=True, exist_ok=True)
    _stage_data(args.workdir, args.workers, args.force)
    print(f"main job done in {time.perf_counter() - t0:.1f} s; outputs in {args.workdir}")
    return 0
