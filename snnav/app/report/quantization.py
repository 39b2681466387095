"""The report's section "Quantization: accuracy against energy": every given result at its own weight width.

The section is built only when at least one simulation result comes from a fine-tuned export (``snnav train
--finetune RUN --fixed-point``: the result file's ``quantizer.pinned`` is true, or, for a file older than that key,
the model's ``metadata["quantizer"]`` pins the quantizer). Without one the report is what it was before.

One row per result (float and fixed point): its accuracy with the binomial standard error over its samples, the
difference to the float reference accuracy, and its energy per inference on Loihi 2 and Loihi 1 (lower / value /
upper). The energy is `hardware_sims.cost.headline.headline_rows` of THAT result's activity counts on THAT result's
own model (the path the result file records, read again and lowered with ``build_plan``), mapped with its own weight
width (`snnav.app.report.headline.priced_weight_bits`) -- the same call and the same inputs as the headline, so the
primary result's figures are the headline's. A model file that is gone, or that changed since the simulation (its
SHA-256 differs from the recorded one), gives a row that says so and has no energy. Every energy is an estimate;
what it includes and excludes is each chip row's own ``included`` / ``excluded`` text.

Float reference (the "vs float" column), the first of: a float-precision result that is not of a fine-tuned model
(the most samples); the float reference recorded by a fixed-point result of a model that is not fine-tuned (snnav's
NIR interpreter in float64 on the same samples); the training run's best test accuracy (torch, float32).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from export.ir.errors import NIRFormatError
from export.ir.nirfile import read_graph
from hardware_sims.cost.gpu import get_gpu
from hardware_sims.cost.headline import headline_rows
from hardware_sims.plan.lowering import build_plan
from snnav.app.report.headline import CALIBRATED_GPU, binomial_stderr, bounds_text, priced_weight_bits
from snnav.app.report.inputs import ReportInputs
from snnav.app.report.results import recorded_quantizer, resolved_quantizer, sha256_of
from snnav.app.report.tables import Table, fmt, pct

__all__ = ["CHIPS", "quantization_section", "quantization_table", "quantization_notes", "result_name"]

CHIPS = ("loihi2", "loihi1")
CHIP_NAMES = {"loihi2": "Loihi 2", "loihi1": "Loihi 1"}


def result_name(data: dict[str, Any]) -> str:
    """A short name for a result's model: its folder and file name (``q4e5/model.nir``)."""
    path = (data.get("model") or {}).get("path")
    if not path:
        return "?"
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _model(data: dict[str, Any]) -> tuple[Any, str | None]:
    """``(graph, None)`` of the model file the result recorded, or ``(None, why it cannot be priced)``."""
    model = data.get("model") or {}
    path = model.get("path")
    if not path or not Path(path).is_file():
        return None, f"the model file {path} is gone: not priced (export it again and simulate it to price it)"
    recorded = model.get("sha256")
    if recorded and sha256_of(path) != recorded:
        return None, (f"the model file {path} changed since this simulation (its sha256 differs from the recorded "
                      f"{recorded[:12]}...): not priced (simulate it again)")
    try:
        return read_graph(path), None
    except NIRFormatError as exc:
        return None, f"the model file {path} cannot be read ({exc}): not priced"


def _fine_tuned(data: dict[str, Any], graph) -> bool | None:
    """Whether the result is of a fine-tuned export (None: unknown, an older file whose model is gone)."""
    q = resolved_quantizer(data, graph)
    return None if q is None else bool(q["pinned"])


def _reference(rows: list[dict[str, Any]], training: dict[str, Any]) -> dict[str, Any]:
    floats = [r for r in rows if r["precision"] == "float" and r["fine_tuned"] is False]
    if floats:
        r = max(floats, key=lambda x: x["samples"])
        return {"accuracy": r["accuracy"], "samples": r["samples"], "sources": [r["result"]],
                "basis": f"{r['label']} of {r['name']} on {r['samples']} test samples ({r['result']})"}
    fixed = [r for r in rows if r["precision"] == "fixed" and r["fine_tuned"] is False]
    if fixed:
        r = max(fixed, key=lambda x: x["samples"])
        return {"accuracy": r["float_accuracy"], "samples": r["samples"], "sources": [r["result"]],
                "basis": f"snnav's NIR interpreter in float64 on {r['name']}, the same {r['samples']} test samples "
                         f"(the float reference recorded in {r['result']})"}
    return {"accuracy": training["best_acc"], "samples": None, "sources": ["run"],
            "basis": "the trained torch model in float32 on the whole test split (training run)"}


def quantization_section(inputs: ReportInputs, sims: list[dict[str, Any]], counts_of: dict[str, Any],
                         training: dict[str, Any]) -> dict[str, Any] | None:
    """The section as plain data (module docstring); None when no result is of a fine-tuned export."""
    by_id = {s["id"]: s for s in sims}
    models = {source.id: _model(data) for source, data in inputs.results}
    tuned = {source.id: _fine_tuned(data, models[source.id][0]) for source, data in inputs.results}
    if not any(v is True for v in tuned.values()):
        return None
    gpu = get_gpu(CALIBRATED_GPU)
    rows, included, excluded = [], {c: [] for c in CHIPS}, {c: [] for c in CHIPS}
    for source, data in inputs.results:
        sim, (graph, missing) = by_id[source.id], models[source.id]
        q = recorded_quantizer(data)
        row = {"result": source.id, "name": result_name(data), "label": sim["label"], "precision": sim["precision"],
               "model": (data.get("model") or {}).get("path"), "fine_tuned": tuned[source.id],
               "samples": sim["samples"], "accuracy": sim["accuracy"], "float_accuracy": sim["float_accuracy"],
               "accuracy_stderr": binomial_stderr(sim["accuracy"], sim["samples"]),
               "quantizer_source": None if q is None else q.get("source"), "missing": missing,
               "weight_bits": None, "energy_total_j": {}, "fits": {}, "violations": {}, "sources": [source.id]}
        if graph is not None:
            row["weight_bits"] = priced_weight_bits(data, graph)
            priced = headline_rows(build_plan(graph), counts_of[source.id], chips=CHIPS,
                                   weight_bits=row["weight_bits"], gpu=gpu)
            for r in (r for r in priced if r["chips"] is not None):
                row["energy_total_j"][r["target"]] = dict(r["energy_total_j"])
                row["fits"][r["target"]] = r["fits"]
                row["violations"][r["target"]] = list(r["violations"])
                included[r["target"]] += [x for x in r["included"] if x not in included[r["target"]]]
                excluded[r["target"]] += [x for x in r["excluded"] if x not in excluded[r["target"]]]
        rows.append(row)
    reference = _reference(rows, training)
    for row in rows:
        row["vs_reference"] = row["accuracy"] - reference["accuracy"]
    return {"rows": rows, "chips": list(CHIPS), "reference": reference, "included": included, "excluded": excluded,
            "kind": "estimate", "gpu_model": CALIBRATED_GPU}


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _energy_cell(row: dict[str, Any], chip: str) -> str:
    e = row["energy_total_j"].get(chip)
    if e is None:
        return "—"
    return bounds_text(e) + ("" if row["fits"].get(chip, True) else " (does not fit)")


def _first(violations: list[str]) -> str:
    """The first mapping violation without its explanation (the headline's table gives it in full)."""
    if not violations:
        return "see the headline"
    more = f"; {len(violations) - 1} more" if len(violations) > 1 else ""
    return violations[0].split(" (")[0] + more


def quantization_table(report: dict[str, Any]) -> Table | None:
    """One row per result: accuracy (± standard error), vs the float reference, energy per inference on each chip."""
    section = report.get("quantization")
    if not section:
        return None
    chips = section["chips"]
    body = []
    for r in section["rows"]:
        acc = "—" if r["accuracy"] is None else f"{pct(r['accuracy'])} ± {100 * (r['accuracy_stderr'] or 0):.1f}"
        vs = f"{100 * r['vs_reference']:+.1f} pp"
        note = r["missing"] or "; ".join(f"{CHIP_NAMES.get(c, c)} does not fit ({_first(r['violations'][c])})"
                                         for c in chips if not r["fits"].get(c, True))
        body.append([f"{r['result']}: {r['name']}", r["precision"], fmt(r["weight_bits"]), _yes_no(r["fine_tuned"]),
                     fmt(r["samples"]), acc, vs, *(_energy_cell(r, c) for c in chips), note or ""])
    ref = section["reference"]
    return Table("Quantization: accuracy against energy per inference (energy in µJ, estimates; value [lower–upper])",
                 ["result: model", "precision", "weight bits", "fine-tuned", "samples", "accuracy ± s.e. (pp)",
                  "vs float", *(f"{CHIP_NAMES.get(c, c)} energy / inference" for c in chips), "note"], body,
                 f"vs float: minus the float reference {pct(ref['accuracy'])}, {ref['basis']}. Accuracy ± its "
                 "binomial standard error over the samples. Energy: hardware_sims.cost.headline.headline_rows of each "
                 "result's own activity counts on its own model file (the path the result records), mapped with its "
                 "own weight bits; the headline's figures for the primary result. Estimates, not measurements.")


def quantization_notes(report: dict[str, Any]) -> list[str]:
    """What each chip's energy includes and excludes (the chip rows' own text), one line per chip."""
    section = report.get("quantization") or {}
    lines = []
    for chip in section.get("chips", []):
        inc, exc = section["included"].get(chip), section["excluded"].get(chip)
        if inc or exc:
            lines.append(f"{CHIP_NAMES.get(chip, chip)} (estimate): includes {'; '.join(inc)}. Excludes "
                         f"{'; '.join(exc)}.")
    return lines
