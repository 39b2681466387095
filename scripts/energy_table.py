"""Energy per inference of several models side by side: each cost model on the simulated counts, and the GPU.

    python scripts/energy_table.py \
        --model "S-CMRL" runs/gpu-h100/simulations/scmrl-emulator-fixed.json results/gpu_measurement_h100_scmrl.json \
        --model "AV add" runs/gpu-h100/simulations/av-add-emulator-fixed.json results/gpu_measurement_h100_av-add.json

Each ``--model NAME RESULT GPU`` takes a result file of ``snnav simulate ... --out RESULT`` (its activity counts) and
a GPU measurement file of ``scripts/measure_gpu.py`` (``-`` for none). Prints a Markdown table: accuracy of the
simulated run; energy per inference under every available built-in cost model (estimates); the 45 nm estimate of
the same network run densely in float (every synapse a MAC at every step, `snnav.app.report.compute.dense_equivalent`);
and the GPU's measured energy per sample (NVML, batch 64: board total and dynamic = total − idle power × time).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _gpu_row(path: str, target: str = "torch") -> dict | None:
    if path == "-":
        return None
    data = json.loads(Path(path).read_text())
    rows = [r for r in data["measurements"] if r.get("target") == target]
    return {**max(rows, key=lambda r: r["batch_size"]), "gpu": data["hardware"].get("gpu_name", "GPU")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs=3, action="append", required=True, metavar=("NAME", "RESULT", "GPU"))
    args = parser.parse_args(argv)

    from hardware_sims.cost.energy import available_cost_models, builtin_cost_model, estimate_energy
    from hardware_sims.counts import ActivityCounts
    from snnav.app.report.compute import dense_equivalent

    names = [m["name"] for m in available_cost_models() if m.get("available")]
    models = [builtin_cost_model(n) for n in names]
    head = (["model", "simulated run", "accuracy (fixed / float)"] + [f"{m.name} (µJ, estimate)" for m in models]
            + ["GPU dense, 45 nm (µJ, estimate)", "GPU measured, batch 64 (µJ: board / dynamic)"])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, result_path, gpu_path in args.model:
        result = json.loads(Path(result_path).read_text())
        counts = ActivityCounts.from_dict(result["counts"])
        cells = [name, f"{result['backend']} {result['precision']}, {result['samples']} samples",
                 f"{100 * result['accuracy']:.1f} % / {100 * result['float_accuracy']:.1f} %"]
        cells += [f"{1e6 * estimate_energy(counts, m).total_j:.1f}" for m in models]
        dense = estimate_energy(dense_equivalent(counts), builtin_cost_model("horowitz45nm"))
        cells.append(f"{1e6 * dense.total_j:.1f}")
        gpu = _gpu_row(gpu_path)
        cells.append("—" if gpu is None else
                     f"{1e6 * gpu['energy_j_per_sample']:.0f} / {1e6 * gpu['dynamic_energy_j_per_sample']:.0f} "
                     f"({gpu['gpu']})")
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
