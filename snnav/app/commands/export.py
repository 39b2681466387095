"""``snnav export RUN_DIR_OR_CHECKPOINT --out MODEL.nir --dt-s DT``: a trained model as a NIR graph."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from export.from_torch.exporter import export_model
from export.ir.nirfile import format_summary, graph_summary, write_graph
from snnav.app.checkpoint_export import export_config_for, load_trained_model
from snnav.app.qat import finetuned_graph
from snnav.errors import InputError, OutputError, SnnavError
from snnav.io import check_writable_destination, refuse_existing
from snnav.training.config import TrainConfig
from snnav.training.loop import load_qat_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="a training run directory (best.pt, else last.pt) or a .pt file")
    parser.add_argument("--out", type=Path, required=True, help="the .nir file to write (atomically)")
    parser.add_argument("--dt-s", type=float, required=True,
                        help="seconds per time step, recorded in the graph (sets every LIF's tau = 2 dt)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="dtype of the exported weights (default %(default)s)")


def export_checkpoint(source: Path, out: Path, dt_s: float, dtype: str = "float32", *, force: bool = False) -> dict:
    """Export ``source`` to ``out``; return the graph summary. Errors become one-line :class:`SnnavError`.

    An existing ``out`` is refused unless ``force`` (then it is replaced once the new file is complete)."""

    if not (isinstance(dt_s, (int, float)) and math.isfinite(dt_s) and dt_s > 0):
        raise InputError(f"dt_s must be a positive finite number of seconds (--dt-s, e.g. 1e-3); got {dt_s}")
    try:
        refuse_existing(out, force)
        check_writable_destination(out)
        model, ckpt = load_trained_model(source)
        qat = TrainConfig.from_dict(ckpt["config"]).qat
        if qat.enabled:  # a fixed-point fine-tuning run: its weights on their grid, the quantizer settings pinned
            graph = finetuned_graph(source, load_qat_spec(qat.spec), dt_s, dtype)
        else:
            graph = export_model(model, export_config_for(ckpt, dt_s, dtype))
        write_graph(out, graph)
    except SnnavError:  # before OSError: a missing NIR or checkpoint file is both
        raise
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc}") from exc
    return graph_summary(graph)


def run(args: argparse.Namespace) -> int:
    summary = export_checkpoint(args.source, args.out, args.dt_s, args.dtype, force=args.force)
    print(f"wrote {args.out}")
    print(format_summary(summary, file_size_bytes=args.out.stat().st_size))
    return 0
