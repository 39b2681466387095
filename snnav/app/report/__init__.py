"""Reports: from a training run and simulation results to JSON, CSV, Markdown and a self-contained HTML page.

`make_report(run_dir, out_dir, cost_models=..., gpu_measurement=...)` collects the inputs (`inputs`), prices the
counted activity with every cost model (`compute`, through ``hardware_sims.cost.energy``) and writes the files
(`writer`): ``report.json``, ``summary.csv``, ``activity.csv``, ``energy_by_layer.csv``, ``report.md``,
``report.html``. `results` reads and writes the simulation-result files of ``snnav simulate --out``. Plots are
drawn by `svg` (no plotting library, nothing fetched when the page is opened).

Only the CLI and report layer import ``hardware_sims``; this package is that layer.
"""

from snnav.app.report.compute import build_report
from snnav.app.report.inputs import collect_inputs
from snnav.app.report.results import ResultFileError, read_simulation_result, write_simulation_result
from snnav.app.report.writer import REPORT_FILES, make_report, render_files, write_report

__all__ = ["make_report", "build_report", "collect_inputs", "write_report", "render_files", "REPORT_FILES",
           "ResultFileError", "read_simulation_result", "write_simulation_result"]
