"""Energy per inference of several models side by side, on every target, as the report's headline prices it.

    python scripts/energy_table.py \
        --model "S-CMRL" results/energy_table/scmrl-emulator-fixed.json results/gpu_measurement_h100_scmrl.json \
        --model "AV add" results/energy_table/av-add-emulator-fixed.json results/gpu_measurement_h100_av-add.json

Each ``--model NAME RESULT GPU`` takes a result file of ``snnav simulate ... --out RESULT`` (its activity counts) and
a GPU measurement file of ``scripts/measure_gpu.py``. The network's structure (for the chip mapping and the dense
workload) is the measurement file's model re-exported with fresh weights (``snnav.app.gpu_measure.measured_structure``:
same nodes and shapes as the measured export), or ``--nir NAME MODEL.nir`` when the export itself is at hand.

Columns (µJ per inference; ``value [lower–upper]``):

* Loihi 1 / Loihi 2: the network mapped onto cores and priced from the counts, dynamic + static over the time an
  inference takes (``hardware_sims.cost.headline``); estimates;
* GPU measured: NVML board energy per sample at batch 1 and 64 (and the dynamic part at 64); measured;
* GPU model: the roofline model calibrated on S-CMRL's measurements (``h100-calibrated``) at batch 64; estimate;
* 45 nm dense: the same network run densely on a 45 nm accelerator with its memory traffic; estimate;
* per-op conventions: the older per-operation figures (Loihi 1 Table 2; Horowitz 45 nm ACs/MACs) without static
  power, routing or the mapping, for comparison with papers that report them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from export.ir.nirfile import read_graph
from hardware_sims.cost.energy import builtin_cost_model, estimate_energy
from hardware_sims.cost.gpu import get_gpu
from hardware_sims.cost.headline import headline_rows
from hardware_sims.counts import ActivityCounts
from hardware_sims.plan.lowering import build_plan
from snnav.app.gpu_measure import measured_structure


def _b(bounds: dict[str, float]) -> str:
    lo, v, hi = (1e6 * bounds[k] for k in ("lower", "value", "upper"))
    return f"{v:.4g}" if abs(hi - lo) <= 1e-9 * max(abs(v), 1e-30) else f"{v:.4g} [{lo:.3g}–{hi:.3g}]"


def _measured(path: Path) -> dict[int, dict]:
    data = json.loads(path.read_text())
    return {r["batch_size"]: r for r in data["measurements"] if r.get("target") == "torch"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs=3, action="append", required=True, metavar=("NAME", "RESULT", "GPU"))
    parser.add_argument("--nir", nargs=2, action="append", default=[], metavar=("NAME", "MODEL.nir"),
                        help="the export of model NAME (default: its structure from the GPU file)")
    args = parser.parse_args(argv)
    nirs = dict(args.nir)
    gpu = get_gpu("h100-calibrated")
    head = ["model", "accuracy (fixed / float)", "Loihi 1", "Loihi 2", "GPU measured, batch 1 (board)",
            "GPU measured, batch 64 (board / dynamic)", "GPU model (h100-calibrated), batch 64", "45 nm dense",
            "per-op: loihi1 / horowitz45nm"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    notes = []
    for name, result_path, gpu_path in args.model:
        result = json.loads(Path(result_path).read_text())
        counts = ActivityCounts.from_dict(result["counts"])
        graph = read_graph(nirs[name]) if name in nirs else measured_structure(Path(gpu_path))
        plan = build_plan(graph)
        rows = {(r["target"], r["batch"]): r for r in headline_rows(plan, counts, gpu=gpu)}
        chips = [rows[("loihi1", 1)], rows[("loihi2", 1)]]
        measured = _measured(Path(gpu_path))
        cells = [name, f"{100 * result['accuracy']:.1f} % / {100 * result['float_accuracy']:.1f} %"]
        for r in chips:
            cells.append(f"{_b(r['energy_total_j'])} ({r['cores']} cores, {r['chips']} chips"
                         f"{'' if r['fits'] else ', does not fit'})")
            if not r["fits"]:
                notes.append(f"{name} on {r['target']}: " + "; ".join(r["violations"]))
        cells.append(f"{1e6 * measured[1]['energy_j_per_sample']:.0f}" if 1 in measured else "—")
        cells.append(f"{1e6 * measured[64]['energy_j_per_sample']:.0f} / "
                     f"{1e6 * measured[64]['dynamic_energy_j_per_sample']:.0f}" if 64 in measured else "—")
        model_row = next(r for (t, b), r in rows.items() if b == 64 and "model" in t)
        cells.append(_b(model_row["energy_total_j"]))
        cells.append(_b(rows[("45 nm dense accelerator", 1)]["energy_total_j"]))
        per_op = [estimate_energy(counts, builtin_cost_model(m)).total_j for m in ("loihi1", "horowitz45nm")]
        cells.append(" / ".join(f"{1e6 * e:.1f}" for e in per_op))
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    for n in notes:
        print(f"\n- {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
