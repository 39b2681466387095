"""``snnav report RUN_DIR``: accuracy, activity and energy of a trained, simulated model, as JSON, CSV, Markdown
and a self-contained HTML page (``snnav.app.report``).

RUN_DIR is a training run folder or the main job's work folder; simulation results are read from
``RUN_DIR/simulations/*.json`` (``snnav simulate ... --out``) and from ``--result`` files. Energies are estimates
under every built-in cost model and every ``--cost-model`` file; the GPU side is ``--gpu-measurement`` (a file of
``scripts/measure_gpu.py``) or, without one, the 45 nm estimate, labelled as such.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from snnav.app.report import make_report
from snnav.app.report.headline import headline_lines
from snnav.app.report.writer import REPORT_FILES
from snnav.errors import OutputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="a training run folder, or the main job's work folder (snnav run --workdir)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default RUN_DIR/report)")
    parser.add_argument("--force", action="store_true", help="replace the files of an existing report in --out")
    parser.add_argument("--result", type=Path, action="append", default=[], metavar="FILE",
                        help="a simulation result (snnav simulate --out FILE) besides RUN_DIR/simulations/*.json; "
                             "repeatable")
    parser.add_argument("--cost-model", type=Path, action="append", default=[], metavar="FILE",
                        help="a cost model JSON file (the form of hardware_sims/cost/models/loihi1.json) besides the "
                             "built-in ones; repeatable")
    parser.add_argument("--gpu-measurement", type=Path, default=None, metavar="FILE",
                        help="a GPU measurement of scripts/measure_gpu.py (default: the 45 nm estimate, labelled)")


def run(args: argparse.Namespace) -> int:
    out = args.run_dir / "report" if args.out is None else args.out
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; give a folder for the report")
    existing = [name for name in REPORT_FILES if (out / name).exists()]
    if existing and not args.force:
        raise OutputError(f"{out} already holds a report ({', '.join(existing)}); pass --force to replace it")
    report, files = make_report(args.run_dir, args.out, results=args.result, cost_models=args.cost_model,
                                gpu_measurement=args.gpu_measurement)
    for line in headline_lines(report):
        print(f"  {line}")
    for note in report["notes"]:
        print(f"note: {note}")
    folder = files["report.html"].parent
    print(f"wrote {', '.join(files)} to {folder}")
    print(f"open {files['report.html']}")
    return 0
