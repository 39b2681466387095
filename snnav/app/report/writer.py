"""Write a report folder: ``report.json``, ``summary.csv``, ``activity.csv``, ``energy_by_layer.csv``, ``report.md``
and ``report.html``.

Every text is rendered in memory first, so bad input fails before anything is written; then each file is written
atomically (a temporary file renamed over the old one), so an existing report is never left truncated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from snnav.app.report.compute import build_report
from snnav.app.report.html import render_html
from snnav.app.report.inputs import collect_inputs
from snnav.app.report.markdown import render_markdown
from snnav.app.report.tables import activity_rows, csv_text, energy_rows, summary_rows
from snnav.io import atomic_path, json_text

__all__ = ["REPORT_FILES", "render_files", "write_report", "make_report"]

REPORT_FILES = ("report.json", "summary.csv", "activity.csv", "energy_by_layer.csv", "report.md", "report.html")


def render_files(report: dict[str, Any]) -> dict[str, str]:
    """File name -> text, for every file of `REPORT_FILES`."""
    return {
        "report.json": json_text(report),
        "summary.csv": csv_text(summary_rows(report)),
        "activity.csv": csv_text(activity_rows(report)),
        "energy_by_layer.csv": csv_text(energy_rows(report)),
        "report.md": render_markdown(report),
        "report.html": render_html(report),
    }


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write the files of `render_files` into ``out_dir`` (created if needed); return name -> path."""
    texts = render_files(report)
    out_dir = Path(out_dir)
    written = {}
    for name, text in texts.items():
        with atomic_path(out_dir / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
        written[name] = out_dir / name
    return written


def make_report(run_dir: str | Path, out_dir: str | Path | None = None, *, results: Sequence[Path] = (),
                cost_models: Sequence[Path] = (), gpu_measurement: Path | None = None) -> tuple[dict[str, Any],
                                                                                                 dict[str, Path]]:
    """Collect the inputs of ``run_dir``, build the report, write it to ``out_dir`` (default ``run_dir/report``).

    Returns:
        ``(report dict, written files)``.

    Raises:
        snnav.app.report.results.ResultFileError: a missing or malformed input, naming the command that writes it.
    """
    inputs = collect_inputs(run_dir, results=results, cost_models=cost_models, gpu_measurement=gpu_measurement)
    report = build_report(inputs)
    return report, write_report(report, Path(run_dir) / "report" if out_dir is None else out_dir)
