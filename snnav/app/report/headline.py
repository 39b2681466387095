"""The report's headline: what one inference costs on each target, what each figure includes, and what is not modelled.

One row per target (`hardware_sims.cost.headline.headline_rows`): Loihi 1 and Loihi 2 (the exported network mapped
onto cores, priced from the primary simulation's counts: synaptic ops, neuron updates, spike routing, static power x
chips x time, extension nodes as a bounded assumption), the GPU (measured with NVML when ``--gpu-measurement`` is
given, else the roofline model calibrated on NVML measurements, ``h100-calibrated``), and a 45 nm dense accelerator
with its memory traffic. Every row says whether it is measured or estimated, and gives lower / value / upper bounds
where a source gives a range.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from export.ir.nirfile import read_graph
from hardware_sims.cost.gpu import get_gpu
from hardware_sims.cost.headline import headline_rows
from hardware_sims.plan.lowering import build_plan
from snnav.app.report.inputs import ReportInputs
from snnav.app.report.results import resolved_quantizer
from snnav.app.report.tables import Table, fmt, pct

__all__ = ["CALIBRATED_GPU", "NOT_MODELLED", "headline", "headline_table", "components_table", "headline_lines",
           "target_label", "value_components", "binomial_stderr", "priced_weight_bits", "bounds_text"]

CALIBRATED_GPU = "h100-calibrated"
NOT_MODELLED = (
    "host I/O: moving inputs onto the chip or GPU and results off it (encoding, PCIe, USB)",
    "chip-to-chip links on Loihi beyond one barrier per extra chip; board power (regulators, FPGA)",
    "load balancing across cores: each layer is placed alone on its cores; pipelining samples (throughput = 1/latency)",
    "learning, and the embedded cores' management work",
    "the extension nodes' real implementation: no neurocore multiplies two spike trains; they are priced between "
    "programmable neurons (Loihi 2) and the embedded x86 cores (an assumption with bounds)",
    "the GPU's host CPU and data transfer; kernels of other processes; thermal state",
    "the 45 nm accelerator's static power, control and DRAM (its row has no time)",
)


def _model_path(inputs: ReportInputs, data: dict[str, Any]) -> Path | None:
    candidates = [Path(str((data.get("model") or {}).get("path", "")))] if (data.get("model") or {}).get("path") else []
    candidates.append(inputs.run_dir / "model.nir")
    return next((p for p in candidates if p.is_file()), None)


def binomial_stderr(accuracy: float | None, samples: int | None) -> float | None:
    """Binomial standard error of an accuracy measured on ``samples`` test samples."""
    if accuracy is None or not samples:
        return None
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / samples)


def priced_weight_bits(data: dict[str, Any], graph) -> int:
    """The weight width a result's model is mapped onto the chips with (`resolved_quantizer`: the model's own pinned
    width, else the shared quantizer's default)."""
    return int(resolved_quantizer(data, graph)["weight_bits"])


def headline(inputs: ReportInputs, sims: list[dict[str, Any]], counts_of: dict[str, Any],
             primary: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    """The headline section of the report (rows, accuracies with error bars, what is not modelled).

    When the model file of the primary result is gone, the section says so instead of failing the report.
    """
    data = next(d for s, d in inputs.results if s.id == primary["id"])
    path = _model_path(inputs, data)
    if path is None:
        return {"rows": [], "not_modelled": list(NOT_MODELLED),
                "missing": f"the model file {(data.get('model') or {}).get('path')} of {primary['id']} is gone: "
                           "no chip mapping (export it again, or give the run folder that holds model.nir)"}
    graph = read_graph(path)
    plan = build_plan(graph)
    weight_bits = priced_weight_bits(data, graph)
    gpu_file = inputs.gpu[0].path if inputs.gpu is not None else None
    gpu = get_gpu(CALIBRATED_GPU)
    # a GPU file that does not hold measurements is a CostModelError naming the field (gpu.read_measurements)
    rows = headline_rows(plan, counts_of[primary["id"]], weight_bits=weight_bits, gpu=gpu, gpu_measurement=gpu_file)
    fixed = primary if primary["precision"] == "fixed" else None
    float_sim = next((s for s in sims if s["precision"] == "float"), None)
    for row in rows:
        on_chip = row["chips"] is not None
        if on_chip and fixed is not None:
            row["accuracy"], row["accuracy_samples"] = fixed["accuracy"], fixed["samples"]
            row["accuracy_basis"] = f"{fixed['label']} on {fixed['samples']} test samples ({fixed['id']})"
        else:
            n = float_sim["samples"] if float_sim else None
            acc = float_sim["accuracy"] if float_sim else training["best_acc"]
            row["accuracy"], row["accuracy_samples"] = acc, n
            row["accuracy_basis"] = (f"{float_sim['label']} on {n} test samples ({float_sim['id']})" if float_sim
                                     else "the trained torch model in float32 (training run)")
        row["accuracy_stderr"] = binomial_stderr(row["accuracy"], row["accuracy_samples"])
    return {"rows": rows, "model": str(path), "result": primary["id"], "weight_bits": weight_bits,
            "gpu": ("measured: " + str(gpu_file)) if gpu_file else
                   f"modelled: {CALIBRATED_GPU} (hardware_sims/cost/gpus/{CALIBRATED_GPU}.json), calibrated from "
                   f"{gpu.calibrated_from}",
            "not_modelled": list(NOT_MODELLED)}


def bounds_text(b: dict[str, float] | None, scale: float = 1e6) -> str:
    """``value [lower–upper]`` of a bounds dict scaled (default: J as µJ); one number when the bounds coincide."""
    if not b:
        return "—"
    lo, v, hi = (b[k] * scale for k in ("lower", "value", "upper"))
    if math.isclose(lo, hi, rel_tol=1e-9):
        return fmt(v)
    return f"{fmt(v)} [{fmt(lo, 3)}–{fmt(hi, 3)}]"


def target_label(row: dict[str, Any]) -> str:
    """The target, with the batch size for a GPU row."""
    gpu = row["chips"] is None and row.get("time_s") is not None
    return f"{row['target']}, batch {row['batch']}" if gpu else row["target"]


def value_components(row: dict[str, Any]) -> dict[str, float]:
    """A row's energy per inference by component at the value bound (J); empty for a measured row."""
    return dict((row.get("by_component_j") or {}).get("value") or {})


def _time(row: dict[str, Any]) -> str:
    return bounds_text(row.get("time_s"))


def _throughput(row: dict[str, Any]) -> str:
    b = row.get("throughput_per_s")
    return "—" if not b else fmt(b["value"])


def headline_table(report: dict[str, Any]) -> Table | None:
    """Per inference on each target: energy (dynamic / static / total, µJ with bounds), time, throughput, size."""
    section = report.get("headline") or {}
    rows = section.get("rows") or []
    if not rows:
        return None
    body = []
    for r in rows:
        size = f"{r['cores']} cores / {r['chips']} chip(s)" if r.get("chips") else "—"
        fits = "yes" if r["fits"] else "no: " + "; ".join(r["violations"][:2])
        body.append([target_label(r), r["kind"], bounds_text(r["energy_dynamic_j"]), bounds_text(r["energy_static_j"]),
                     bounds_text(r["energy_total_j"]), _time(r), _throughput(r), size, fits,
                     pct(r.get("accuracy"))])
    return Table("Per inference on each target (energy in µJ, time in µs; value [lower–upper])",
                 ["target", "measured or estimated", "dynamic", "static", "total", "time", "inferences/s",
                  "size", "fits", "accuracy"], body,
                 f"Chips: {section['model']} mapped with {section['weight_bits']}-bit weights, priced from the counts "
                 f"of {section['result']}. GPU: {section['gpu']}. Each row's inclusions are listed below the table.")


def components_table(report: dict[str, Any]) -> Table | None:
    """Where the energy goes on each target: compute / memory / routing / static (value bound, µJ)."""
    rows = (report.get("headline") or {}).get("rows") or []
    body = []
    for r in rows:
        comp = value_components(r)
        if comp:
            body.append([target_label(r), ", ".join(f"{k} {fmt(v * 1e6)}" for k, v in comp.items())])
    if not body:
        return None
    return Table("Where the energy goes (µJ per inference, value bound)", ["target", "components"], body)


def headline_lines(report: dict[str, Any]) -> list[str]:
    """One line per target, for the terminal: energy per inference with bounds, kind, size and fit."""
    section = report.get("headline") or {}
    if not section.get("rows"):
        return [f"no headline: {section.get('missing', 'no model file')}"]
    lines = []
    for row in section["rows"]:
        e = row["energy_total_j"]
        size = (f", {row['cores']} cores on {row['chips']} chip(s){'' if row['fits'] else ', does NOT fit'}"
                if row["chips"] else "")
        t = row.get("time_s")
        time = f", {1e6 * t['value']:.4g} µs" if t else ""
        lines.append(f"{target_label(row)}: {bounds_text(e)} µJ per inference{time} ({row['kind']}){size}")
    return lines
