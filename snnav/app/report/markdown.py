"""The report as Markdown: the same tables as the HTML page, and pointers to its plots."""

from __future__ import annotations

from typing import Any

from snnav.app.report.headline import components_table, headline_table
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

__all__ = ["table_markdown", "render_markdown"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_markdown(table: Table) -> str:
    lines = [f"**{table.caption}**", "", "| " + " | ".join(map(_cell, table.headers)) + " |",
             "|" + "---|" * len(table.headers)]
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in table.rows]
    if table.note:
        lines += ["", f"_{table.note}_"]
    return "\n".join(lines)


def _models(report: dict[str, Any]) -> list[str]:
    lines = []
    for model in dict.fromkeys(e["cost_model"] for e in report["energy"]):
        e = next(x for x in report["energy"] if x["cost_model"] == model)
        ops = ", ".join(f"{op} {pj} pJ ({e['statuses'].get(op, 'unused')})" for op, pj in e["operation_pj"].items()
                        if pj is not None)
        lines += [f"- **{model}** ({e['technology']}): {e['cost_model_source']}. {ops}. Not priced: "
                  f"{', '.join(e['uncosted']) or 'nothing'}."]
        lines += [f"  - assumption ({k}): {v}" for k, v in e["assumptions"].items()]
    return lines


def _headline(report: dict[str, Any]) -> list[str]:
    section = report.get("headline") or {}
    table = headline_table(report)
    if table is None:
        return ["## What one inference costs", "", f"No headline: {section.get('missing', 'no model file')}.", ""]
    lines = ["## What one inference costs", "", table_markdown(table), ""]
    for r in section["rows"]:
        lines.append(f"- **{r['target']}** ({r['kind']}): includes {'; '.join(r['included'])}. Excludes "
                     f"{'; '.join(r['excluded'])}." + (f" Notes: {' '.join(r['notes'])}" if r.get("notes") else ""))
    comp = components_table(report)
    lines += ["", table_markdown(comp) if comp else "", "", "Not modelled:", ""]
    lines += [f"- {n}" for n in section["not_modelled"]] + [""]
    return lines


def _streaming(report: dict[str, Any]) -> list[str]:
    """The streaming section (results of ``snnav simulate --stream``); nothing without them."""
    tables = streaming_tables(report)
    if not tables:
        return []
    return ["## Streaming decisions", "", "The accuracy-vs-steps plot is in `report.html`.", "",
            *(line for t in tables for line in (table_markdown(t), ""))]


def _quantization(report: dict[str, Any]) -> list[str]:
    """The quantization section (a result of a fine-tuned export among the results); nothing without one."""
    table = quantization_table(report)
    if table is None:
        return []
    return ["## Quantization: accuracy against energy", "", table_markdown(table), "",
            *(f"- {n}" for n in quantization_notes(report)), "",
            "The accuracy-vs-energy plot of these results is in `report.html`.", ""]


def render_markdown(report: dict[str, Any]) -> str:
    t = report["training"]
    gpu = gpu_table(report)
    parts = [
        f"# snnav report: {t['model']} on {t['dataset']}",
        "",
        f"Run folder `{report['run_dir']}`; training run `{t['dir']}` ({t['epochs']} epochs, best test accuracy "
        f"{100 * t['best_acc']:.1f}% at epoch {t['best_epoch']}). Written {report['created_utc']} by snnav "
        f"{report['snnav_version']}. Plots: `report.html` (self-contained). Numbers: `report.json` and the CSV files.",
        "",
        *(f"- {n}" for n in report["notes"]),
        "",
        *_headline(report),
        *_quantization(report),
        "## Accuracy against energy", "", table_markdown(summary_table(report)), "",
        "## Simulation results", "", table_markdown(simulations_table(report)), "",
        *_streaming(report),
        "## Energy per inference", "", *_models(report), "", table_markdown(energy_table(report)), "",
        "## GPU", "", table_markdown(gpu) if gpu else "No GPU figure: neither a measurement nor the 45 nm model.", "",
        "## Per-layer activity", "", table_markdown(activity_table(report, report["primary_result"])), "",
        "## Sources", "", table_markdown(sources_table(report)), "",
    ]
    return "\n".join(parts)
