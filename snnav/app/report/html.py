"""The report as one self-contained HTML page: inline CSS and inline SVG plots, no script, nothing fetched.

Plots (``snnav.app.report.svg``): accuracy against energy per inference; firing rate per spiking layer and synaptic
sparsity per linear layer; for each cost model, energy per inference of each result and of each layer of the
primary result, stacked by the kind of operation counted; a spike raster of one sample. Each plot's caption names
the result file(s) and cost model it draws; the table of sources at the end gives their paths and hashes.
"""

from __future__ import annotations

import math
import re
from html import escape
from typing import Any

from snnav.app.report import svg
from snnav.app.report.headline import components_table, headline_table
from snnav.app.report.plots import (
    accuracy_energy_svg,
    accuracy_steps_svg,
    components_svg,
    layers_svg,
    quantization_svg,
)
from snnav.app.report.quantization import quantization_notes, quantization_table
from snnav.app.report.tables import (
    Table,
    activity_table,
    energy_table,
    gpu_table,
    simulations_table,
    sources_table,
    streaming_tables,
    summary_table,
)

__all__ = ["COUNT_COLOURS", "render_html", "plots"]

COUNT_COLOURS = {"synaptic_events": svg.PALETTE[0], "dense_macs": svg.PALETTE[1], "neuron_updates_active":
                 svg.PALETTE[2], "neuron_updates_idle": svg.PALETTE[5], "spikes": svg.PALETTE[3],
                 "ext_acs": svg.PALETTE[4], "ext_macs": svg.PALETTE[8]}
MODEL_COLOURS = (svg.PALETTE[0], svg.PALETTE[3], svg.PALETTE[2], svg.PALETTE[4], svg.PALETTE[1])
SHAPES = {"lava-fixed": "square", "emulator-fixed": "circle", "lava-float": "diamond", "emulator-float": "triangle"}

CSS = """
body { font-family: sans-serif; margin: 24px auto; max-width: 1000px; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 2em; }
table { border-collapse: collapse; margin: 8px 0; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
p.note, p.caption { font-size: 12px; color: #555; }
.notes { background: #fff8e1; border: 1px solid #f0d890; padding: 8px 12px; font-size: 13px; }
figure { margin: 16px 0; } svg { max-width: 100%; height: auto; }
code { font-size: 12px; background: #f4f4f4; padding: 0 3px; word-break: break-all; }
details summary { cursor: pointer; font-weight: bold; margin: 8px 0; }
"""


NUMBER = re.compile(r"^(—|-?[\d,]*\.?\d+(e[-+]?\d+)?%?)$")


def _is_num(cell: str) -> bool:
    return bool(NUMBER.match(cell))


def table_html(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "\n".join("<tr>" + "".join(f'<td class="num">{escape(c)}</td>' if _is_num(c) else f"<td>{escape(c)}</td>"
                                      for c in row) + "</tr>" for row in table.rows)
    note = f'<p class="note">{escape(table.note)}</p>' if table.note else ""
    return f"<table><caption>{escape(table.caption)}</caption><tr>{head}</tr>\n{body}</table>{note}"


def _figure(svg_text: str, caption: str) -> str:
    return f'<figure>{svg_text}<p class="caption">{escape(caption)}</p></figure>'


def _scatter(report: dict[str, Any]) -> str:
    models = list(dict.fromkeys(e["cost_model"] for e in report["energy"]))
    sims = {s["id"]: s for s in report["simulations"]}
    points = []
    for p in report["accuracy_vs_energy"]:
        if "result" in p:
            sim = sims[p["result"]]
            colour = MODEL_COLOURS[models.index(p["cost_model"]) % len(MODEL_COLOURS)]
            shape = SHAPES.get(f"{sim['backend']}-{sim['precision']}", "circle")
            label = f"{p['name']} ({p['kind']}, {p['samples']} samples, {p['result']})"
            points.append(svg.Point(p["energy_j"] * 1e6, p["accuracy"], label, colour, shape, sim["samples"] < 100))
        else:
            points.append(svg.Point(p["energy_j"] * 1e6, p["accuracy"], f"{p['name']} ({p['kind']})", "#000000",
                                    "square", p["kind"] != "measured"))
    accs = [p.y for p in points if math.isfinite(p.y)]
    low = max(0.0, math.floor((min(accs, default=0.0) - 0.05) * 10) / 10)
    return svg.scatter_log_x("Accuracy against energy per inference", points,
                             "energy per inference (µJ, log scale)", "test accuracy", y_range=(low, 1.0))


def _activity_plots(report: dict[str, Any]) -> list[tuple[str, str]]:
    sims = report["simulations"]
    label = {s["id"]: f"{s['id']}: {s['label']}" for s in sims}
    nodes = list(dict.fromkeys(r["node"] for r in report["activity"]))
    by = {(r["result"], r["node"]): r for r in report["activity"]}
    rate_bars = [svg.Bar(n, tuple((label[s["id"]], by[s["id"], n]["firing_rate"]) for s in sims
                                  if (s["id"], n) in by)) for n in nodes
                 if any(by.get((s["id"], n), {}).get("firing_rate") is not None for s in sims)]
    sparse_bars = [svg.Bar(n, tuple((label[s["id"]], by[s["id"], n]["synaptic_sparsity"]) for s in sims
                                    if (s["id"], n) in by)) for n in nodes
                   if any(by.get((s["id"], n), {}).get("synaptic_sparsity") is not None for s in sims)]
    files = ", ".join(s["id"] for s in sims)
    return [
        (svg.hbar_chart("Firing rate per spiking layer", rate_bars, "spikes per neuron per time step",
                        stacked=False), f"Means over each result's samples; results {files}. Activation sparsity = "
                                        "1 - firing rate (table below)."),
        (svg.hbar_chart("Synaptic sparsity per linear layer", sparse_bars,
                        "1 - (synaptic events + dense MACs) / dense synapses", stacked=False, x_max=1.0),
         f"The fraction of a dense layer's multiply-accumulates that the event-driven run skipped; results {files}."),
    ]


def _energy_plots(report: dict[str, Any]) -> list[tuple[str, str]]:
    primary = report["primary_result"]
    sims = {s["id"]: s for s in report["simulations"]}
    out = []
    for model in dict.fromkeys(e["cost_model"] for e in report["energy"]):
        entries = [e for e in report["energy"] if e["cost_model"] == model]
        first = entries[0]

        def name(count: str) -> str:  # the legend says what each count is priced as
            op = first["count_operation"][count]
            return f"{count} ({op} {first['operation_pj'][op]:g} pJ)"

        colours = {name(k): c for k, c in COUNT_COLOURS.items() if first["count_operation"].get(k) is not None
                   and first["operation_pj"].get(first["count_operation"][k]) is not None}
        totals = [svg.Bar(f"{e['result']} {sims[e['result']]['backend']} {sims[e['result']]['precision']}",
                          tuple((name(k), v / 1e6) for k, v in e["by_count_pj"].items())) for e in entries]
        chart = svg.hbar_chart(f"{model}: energy per inference of each result, by operation counted", totals,
                               "µJ per inference (estimate)", colours=colours)
        out.append((chart, f"Estimate: counts x {model} ({first['cost_model_source']})."))
        e = next((x for x in entries if x["result"] == primary), first)
        rows = [svg.Bar(node, tuple((name(k), v / 1e6) for k, v in parts.items()))
                for node, parts in e["by_node_count_pj"].items() if sum(parts.values()) > 0]
        chart = svg.hbar_chart(f"{model}: energy per inference by layer ({e['result']}, {sims[e['result']]['label']})",
                               rows, "µJ per inference (estimate)", colours=colours)
        out.append((chart, f"Layers of {e['result']} with nonzero energy under {model}, stacked by the count each "
                           "part prices."))
    return out


def _raster(report: dict[str, Any]) -> tuple[str, str] | None:
    r = report["raster"]
    if r is None:
        return None
    strips = [svg.Strip(name, r["time_steps"], min(node["neurons"], r["max_neurons"]),
                        tuple((int(t), int(n)) for t, n in node["spikes"]), node["neurons"])
              for name, node in r["nodes"].items()]
    note = (f"sample {r['sample']} of {r['result']} ({r['label']}); first {r['max_neurons']} neurons of each "
            f"layer; {r['time_steps']} time steps")
    return svg.raster("Spike raster of one sample", strips, note=note), (
        f"Every spike of the first {r['max_neurons']} neurons of each spiking layer in sample {r['sample']}; source "
        f"{r['result']}.")


def plots(report: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """The page's plots as ``(svg, caption)`` pairs, by section."""
    raster = _raster(report)
    return {"accuracy": [(_scatter(report), "GPU float: filled = measured, hollow = estimate. Simulated runs: one "
                          "marker per cost model (colour); shape = backend and precision; hollow = under 100 "
                          "samples.")],
            "activity": _activity_plots(report), "energy": _energy_plots(report),
            "raster": [raster] if raster else []}


def _model_notes(report: dict[str, Any]) -> str:
    parts = []
    for model in dict.fromkeys(e["cost_model"] for e in report["energy"]):
        e = next(x for x in report["energy"] if x["cost_model"] == model)
        ops = ", ".join(f"{op} {pj} pJ ({e['statuses'].get(op, 'unused')})" for op, pj in e["operation_pj"].items()
                        if pj is not None)
        items = "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in e["assumptions"].items())
        uncosted = ", ".join(e["uncosted"]) or "none"
        parts.append(f"<h3>{escape(model)}</h3><p>{escape(e['technology'])}. Source: {escape(e['cost_model_source'])}."
                     f"<br>Energy per operation: {escape(ops)}. Counts not priced: {escape(uncosted)}.</p>"
                     + (f"<p>Assumptions of this model:</p><ul>{items}</ul>" if items else ""))
    return "\n".join(parts)


def _headline(report: dict[str, Any]) -> str:
    section = report.get("headline") or {}
    table = headline_table(report)
    if table is None:
        return f"<h2>What one inference costs</h2><p>No headline: {escape(section.get('missing', 'no model file'))}.</p>"
    rows = section["rows"]
    inclusions = "".join(
        f"<li><b>{escape(r['target'])}</b> ({escape(r['kind'])}): includes {escape('; '.join(r['included']))}. "
        f"Excludes {escape('; '.join(r['excluded']))}.</li>" for r in rows)
    comp = components_table(report)
    figures = [_figure(accuracy_energy_svg(rows), "Accuracy against energy per inference on each target. Filled: "
                       "measured; hollow: estimated. Horizontal bars: lower to upper bound of the estimate; vertical "
                       "bars: ±1 binomial standard error of the accuracy."),
               _figure(components_svg(rows), "Where the energy of one inference goes on each target (value bound).")]
    layers = layers_svg(rows)
    if layers:
        figures.append(_figure(layers, "The chips' dynamic energy per inference by layer (the 15 largest layers)."))
    not_modelled = "".join(f"<li>{escape(n)}</li>" for n in section["not_modelled"])
    return (f"<h2>What one inference costs</h2>{table_html(table)}<ul>{inclusions}</ul>"
            + (table_html(comp) if comp else "") + "\n".join(figures)
            + f"<h3>Not modelled</h3><ul>{not_modelled}</ul>")


def _streaming(report: dict[str, Any]) -> str:
    """The streaming section (results of ``snnav simulate --stream``); empty without them."""
    tables = streaming_tables(report)
    if not tables:
        return ""
    figure = _figure(accuracy_steps_svg(report["streaming"]),
                     "Accuracy of the decision read after each input step (solid: the simulated run; dashed: its float "
                     "reference); sources " + ", ".join(st["result"] for st in report["streaming"]) + ".")
    return "<h2>Streaming decisions</h2>" + figure + "\n".join(table_html(t) for t in tables)


def _quantization(report: dict[str, Any]) -> str:
    """The quantization section (a result of a fine-tuned export among the results); empty without one."""
    table = quantization_table(report)
    if table is None:
        return ""
    notes = "".join(f"<li>{escape(n)}</li>" for n in quantization_notes(report))
    figure = _figure(quantization_svg(report["quantization"]),
                     "Accuracy against the estimated energy per inference of each result on each chip (colour); "
                     "filled: a fine-tuned export. Horizontal bars: lower to upper bound; vertical bars: ±1 binomial "
                     "standard error. Sources: " + ", ".join(r["result"] for r in report["quantization"]["rows"])
                     + ".")
    return f"<h2>Quantization: accuracy against energy</h2>{table_html(table)}<ul>{notes}</ul>{figure}"


def render_html(report: dict[str, Any]) -> str:
    """The whole page (see the module docstring)."""
    t = report["training"]
    figs = plots(report)
    fig = {k: "\n".join(_figure(s, c) for s, c in v) for k, v in figs.items()}
    notes = "".join(f"<li>{escape(n)}</li>" for n in report["notes"])
    gpu = gpu_table(report)
    gpu_html = table_html(gpu) if gpu else "<p>No GPU figure: neither a measurement nor the 45 nm model.</p>"
    activity = table_html(activity_table(report, report["primary_result"]))
    title = f"snnav report: {t['model']} on {t['dataset']}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{CSS}</style></head><body>
<h1>{escape(title)}</h1>
<p>Run folder <code>{escape(report['run_dir'])}</code>; training run <code>{escape(t['dir'])}</code>
({t['epochs']} epochs, best test accuracy {100 * t['best_acc']:.1f}% at epoch {t['best_epoch']}).
Written {escape(report['created_utc'])} by snnav {escape(report['snnav_version'])}. Every figure names its sources
(ids in the <a href="#sources">table of sources</a>); energies of simulated runs are estimates.</p>
<div class="notes"><ul>{notes}</ul></div>
{_headline(report)}
{_quantization(report)}
<h2>Accuracy against energy</h2>
{table_html(summary_table(report))}
{fig['accuracy']}
<h2>Simulation results</h2>
{table_html(simulations_table(report))}
{_streaming(report)}
<h2>Firing rate and sparsity per layer</h2>
{fig['activity']}
<details><summary>Per-layer activity table ({escape(report['primary_result'])})</summary>{activity}</details>
<h2>Energy per inference</h2>
{_model_notes(report)}
{table_html(energy_table(report))}
{fig['energy']}
<h2>GPU</h2>
{gpu_html}
<h2>Spike raster</h2>
{fig['raster'] or '<p>No raster in the simulation results.</p>'}
<h2 id="sources">Sources</h2>
{table_html(sources_table(report))}
</body></html>
"""
