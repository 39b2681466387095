"""The report's tables: rows for the CSV files, and formatted tables shared by the Markdown and HTML pages.

CSV files (plain numbers, full precision, one header row; every row names its result file and cost model):

* ``summary.csv`` — one row per point of the accuracy-vs-energy plot;
* ``activity.csv`` — one row per (simulation result, node): means per inference;
* ``energy_by_layer.csv`` — one row per (result, cost model, node, count): ``count_per_inference x pj_per_op =
  energy_pj``, so every energy can be recomputed from its own row.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Sequence

__all__ = ["Table", "csv_text", "summary_rows", "activity_rows", "energy_rows", "summary_table", "simulations_table",
           "energy_table", "activity_table", "gpu_table", "sources_table", "streaming_tables", "fmt", "uj"]


def fmt(value: Any, digits: int = 4) -> str:
    """A number for people: ``digits`` significant digits; ``—`` for missing values."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:,.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}g}"


def uj(joules: float | None) -> str:
    """Joules shown as microjoules."""
    return "—" if joules is None else fmt(joules * 1e6)


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


class Table:
    """A formatted table: a caption, headers, rows of strings, and a note under it."""

    def __init__(self, caption: str, headers: Sequence[str], rows: Sequence[Sequence[str]], note: str = ""):
        self.caption, self.headers, self.rows, self.note = caption, list(headers), [list(r) for r in rows], note


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    """CSV of dict rows (columns in the first row's order); empty cells for None."""
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def _paths(report: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["path"] or f"built-in {s['id']}" for s in report["sources"]}


def summary_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    paths = _paths(report)
    cited = {e["cost_model"]: e["cost_model_source"] for e in report["energy"]}
    return [{"name": p["name"], "kind": p["kind"], "accuracy": p["accuracy"], "accuracy_samples": p["samples"],
             "energy_j_per_inference": p["energy_j"], "cost_model": p["cost_model"],
             "cost_model_source": cited.get(p["cost_model"], ""),
             "source_files": " ; ".join(paths[s] for s in p["sources"])} for p in report["accuracy_vs_energy"]]


def activity_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    sims, paths = {s["id"]: s for s in report["simulations"]}, _paths(report)
    keys = ("node", "type", "neurons", "spikes", "firing_rate", "activation_sparsity", "synaptic_events",
            "dense_macs", "dense_synapses", "synaptic_sparsity", "neuron_updates_active", "neuron_updates_idle",
            "ext_acs", "ext_macs")
    return [{"result": r["result"], "result_file": paths[r["result"]], "backend": sims[r["result"]]["backend"],
             "precision": sims[r["result"]]["precision"], **{k: r[k] for k in keys}} for r in report["activity"]]


def energy_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    sims, paths = {s["id"]: s for s in report["simulations"]}, _paths(report)
    counts = {(r["result"], r["node"]): r for r in report["activity"]}
    rows = []
    for e in report["energy"]:
        for node, parts in e["by_node_count_pj"].items():
            for count, pj in parts.items():
                op = e["count_operation"][count]
                row = counts.get((e["result"], node))
                rows.append({"result": e["result"], "result_file": paths[e["result"]],
                             "backend": sims[e["result"]]["backend"], "precision": sims[e["result"]]["precision"],
                             "cost_model": e["cost_model"], "kind": e["kind"], "node": node, "count": count,
                             "operation": op, "count_per_inference": None if row is None else row[count],
                             "pj_per_op": e["operation_pj"][op], "energy_pj": pj,
                             "cost_model_source": e["cost_model_source"]})
    return rows


def summary_table(report: dict[str, Any]) -> Table:
    rows = [[p["name"], pct(p["accuracy"]), fmt(p["samples"]) if p["samples"] else "whole test split",
             uj(p["energy_j"]), p["kind"], ", ".join(p["sources"])] for p in report["accuracy_vs_energy"]]
    return Table("Accuracy and energy per inference",
                 ["run x cost model", "accuracy", "samples", "energy / inference (µJ)", "energy is", "sources"], rows,
                 "Sources are the ids of the table of sources below. GPU accuracy: the trained torch model (float32) "
                 "on the whole test split, from the training run.")


def simulations_table(report: dict[str, Any]) -> Table:
    rows = [[s["id"], s["label"], fmt(s["samples"]), pct(s["accuracy"]), pct(s["float_accuracy"]),
             pct(s["agreement"]), fmt(s["totals"]["spikes"]), fmt(s["totals"]["synaptic_events"]),
             fmt(s["neurobench"]["activation_sparsity"]),
             fmt((s.get("timing") or {}).get("samples_per_s"), 3)] for s in report["simulations"]]
    return Table("Simulation results",
                 ["id", "run", "samples", "accuracy", "float reference", "same prediction", "spikes / inference",
                  "synaptic events / inference", "activation sparsity", "samples / s"], rows,
                 "Float reference: snnav's NIR interpreter in float64 on the same samples. Counts are means per "
                 "inference (hardware_sims/counts/COUNTS.md).")


def energy_table(report: dict[str, Any]) -> Table:
    counts = ("synaptic_events", "dense_macs", "neuron_updates_active", "neuron_updates_idle", "spikes", "ext_acs",
              "ext_macs")
    rows = []
    for e in report["energy"]:
        rows.append([e["result"], e["cost_model"], uj(e["total_j"]),
                     *(uj(e["by_count_pj"][c] / 1e12) if c in e["by_count_pj"] else "not costed" for c in counts)])
    return Table("Energy per inference by count (µJ), estimates",
                 ["result", "cost model", "total", *counts], rows,
                 "Each energy = the result's count per inference x the cost model's pJ per operation "
                 "(energy_by_layer.csv has every product). 'not costed': the model does not price that count.")


def activity_table(report: dict[str, Any], result_id: str) -> Table:
    rows = [[r["node"], r["type"], fmt(r["neurons"]), fmt(r["firing_rate"]), fmt(r["activation_sparsity"]),
             fmt(r["synaptic_events"] + r["dense_macs"]), fmt(r["dense_synapses"]), fmt(r["synaptic_sparsity"]),
             fmt(r["ext_acs"] + r["ext_macs"])]
            for r in report["activity"] if r["result"] == result_id]
    return Table(f"Per-layer activity of {result_id} (means per inference)",
                 ["node", "type", "neurons", "firing rate", "activation sparsity", "synaptic ops", "dense synapses",
                  "synaptic sparsity", "extension ops"], rows,
                 "Firing rate = spikes / (neurons x time steps); activation sparsity = 1 - firing rate; synaptic "
                 "ops = synaptic events + dense MACs; synaptic sparsity = 1 - synaptic ops / dense synapses (the "
                 "fraction of a dense layer's work an event-driven layer skips).")


def gpu_table(report: dict[str, Any]) -> Table | None:
    gpu = report["gpu"]
    if gpu is None:
        return None
    if gpu["kind"] != "measured":
        e = gpu["energy"]
        rows = [[k, fmt(n), fmt(e["operation_pj"][e["count_operation"][k]]), uj(e["by_count_pj"][k] / 1e12),
                 ", ".join(gpu["sources"])] for k, n in gpu["counts_per_inference"].items()]
        rows.append(["total", "", "", uj(gpu["energy_j"]), ", ".join(gpu["sources"])])
        return Table(f"GPU float: {gpu['name']}", ["count (dense float)", "per inference", "pJ each",
                                                    "µJ per inference", "sources"], rows, gpu["label"] + ".")
    rows = [[m.get("target", "?"), fmt(m.get("batch_size")), fmt(1e3 * m["wall_s_per_sample"], 4)
             if m.get("wall_s_per_sample") is not None else "—", fmt(m.get("samples_per_s")),
             fmt(1e3 * m["energy_j_per_sample"]), fmt(1e3 * m["dynamic_energy_j_per_sample"])
             if m.get("dynamic_energy_j_per_sample") is not None else "—", pct(m.get("accuracy"))]
            for m in gpu["measurements"]]
    return Table(f"GPU measurements ({gpu['label']}, source gpu)",
                 ["target", "batch", "ms / sample", "samples / s", "board mJ / sample", "dynamic mJ / sample",
                  "accuracy on the measured batch"], rows,
                 f"Plotted: {gpu['name']}, {gpu['energy_basis']}.")


def _range(values: dict[str, float], scale: float) -> str:
    return f"{fmt(values['value'] * scale)} ({fmt(values['lower'] * scale)} .. {fmt(values['upper'] * scale)})"


def streaming_tables(report: dict[str, Any]) -> list[Table]:
    """With ``snnav simulate --stream`` results: accuracy against the input steps seen, and per chip the decision
    latency and energy per decision (estimates). Empty without them."""
    tables = []
    for st in report.get("streaming", []):
        window = bool(st["window_nodes"])
        rows = [[fmt(st["steps"] if window else t + 1), fmt(t + st["pipeline_depth"]), pct(a), pct(f)]
                for t, (a, f) in enumerate(zip(st["accuracy_by_step"], st["float_accuracy_by_step"]))]
        note = (f"WINDOW nodes ({', '.join(st['window_nodes'])}): every output already reads all {st['steps']} input "
                "steps." if window else
                f"Causal graph: the decision on input steps 0..t is read at Lava step t + {st['pipeline_depth']}.")
        tables.append(Table(f"Accuracy against the input steps seen ({st['result']}, {st['label']}, "
                            f"{st['samples']} samples)", ["steps seen", "Lava step", "accuracy", "float reference"],
                            rows, note + " Float reference: the NIR interpreter in float64."))
    rows = []
    for st in report.get("streaming", []):
        for chip, c in st["chips"].items():
            chip_name = chip if c.get("fits", True) else f"{chip} (does not fit: {len(c['violations'])} violations)"
            rows.append([st["result"], chip_name, fmt(st["final_step_mean"], 3), fmt(st["decision_latency_steps_mean"], 3),
                         _range(c["step_s"], 1e6), _range(c["time_to_decision_s"], 1e6),
                         _range(c["energy_to_decision_j"], 1e6), _range(c["energy_per_sample_j"], 1e6),
                         fmt(st["spikes_to_decision_mean"]), fmt(st["spikes_total_mean"])])
    if rows:
        first = next(c for st in report["streaming"] for c in st["chips"].values())
        tables.append(Table(
            "Decision latency and energy per decision (means over the samples; estimates, lower .. upper bound)",
            ["result", "chip", "decision final at t* (NIR step)", "decision latency (Lava steps)",
             "time per Lava step (µs)", "decision latency (µs)", "energy per decision (µJ)",
             "energy per sample, all T steps (µJ)", "spikes up to the decision", "spikes per sample"], rows,
            "t*: the step from which the sample's prediction no longer changes; decision latency (Lava steps) = t* + "
            "pipeline depth. Decision latency (µs) = (t* + 1 + the chip's pipeline depth) x time per Lava step, "
            f"from the first input step to the end of the step that outputs the decision; time per step: "
            f"{first['time_per_step_includes']}. Energy per decision: the chip cost model's dynamic energy of every "
            "node's activity at input steps 0..t* (in-flight later steps not included; a graph with WINDOW nodes: "
            "all T steps) with every compartment updated at each Lava step, plus static power x that time. "
            f"Includes: {'; '.join(first['included'])}. Excludes: {'; '.join(first['excluded'])}. Estimates from "
            "the chip descriptions of hardware_sims/cost/chips (sources there)."))
    return tables


def sources_table(report: dict[str, Any]) -> Table:
    rows = [[s["id"], s["kind"], s["path"] or "built into hardware_sims", (s["sha256"] or "—")[:16],
             s["description"]] for s in report["sources"]]
    return Table("Sources", ["id", "kind", "file", "sha256 (first 16)", "what"], rows)
