"""The ``snnav compare`` page: where each pair of backends parts, in Markdown and HTML (the report's tables and style).

Sections: a summary of every pair (do they agree, how many spikes differ, same predictions, where they first
part); for each pair that parts, the values at that neuron, what fixed point did there (weights, decays,
threshold, bias, state: float against quantized x scale, clipped or rounded), and its nodes ranked by divergence;
the quantizer's totals of each fixed-point backend.
"""

from __future__ import annotations

import dataclasses
import math
from html import escape
from typing import Any

from hardware_sims.compare import Comparison, PairComparison
from snnav.app.report.html import CSS, table_html
from snnav.app.report.markdown import table_markdown
from snnav.app.report.tables import Table, fmt, pct

__all__ = ["comparison_tables", "render_compare_markdown", "render_compare_html", "comparison_json", "RANKED_ROWS"]

RANKED_ROWS = 15
"""Nodes shown in each pair's ranking (the JSON has all)."""
VALUE_KEYS = ("out[t-1]", "out", "v[t-1]", "u[t-1]", "u", "v_pre", "vth", "v")


def _where(pair: PairComparison) -> str:
    f = pair.first
    if f is None:
        return "never (identical records)"
    index = ",".join(map(str, f.index))
    return f"{f.node} ({f.kind}) at step {f.step}, sample {f.sample}, neuron [{index}] (flat {f.neuron})"


def _num(x: Any) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt(x, 6)


def summary_table(comparison: Comparison) -> Table:
    rows = []
    for p in comparison.pairs:
        spiking = [d for d in p.nodes if d.kind == "spikes"]
        total = sum(d.size for d in spiking)
        rows.append([f"{p.a} vs {p.b}", "yes" if p.agree else "no", f"{p.spike_mismatches:,} / {total:,}",
                     pct(p.prediction_agreement), _where(p)])
    return Table("Pairs", ["pair", "agree", "differing spikes / compared", "same prediction", "first part"], rows,
                 "Spikes compared on every spiking node both backends recorded (the torch model records its LIF "
                 "layers only). A graded node 'parts' when a value differs by more than 1e-6 of the node's largest "
                 "|value|; spikes come first: a pair whose spikes all agree parts at its first graded difference.")


def values_table(pair: PairComparison) -> Table:
    f = pair.first
    keys = [k for k in VALUE_KEYS if any(k in v for v in f.values.values())]
    rows = [[b] + [_num(v.get(k)) for k in keys] for b, v in f.values.items()]
    return Table(f"Values at {f.node}[{','.join(map(str, f.index))}], sample {f.sample}, step {f.step}",
                 ["backend", *keys], rows,
                 "out: the node's output (spike or value); v, u: membrane and current at the end of the step (v "
                 "after a reset), where the backend records them; [t-1]: the step before; v_pre: the membrane "
                 "before the reset, (1 - dv) v[t-1] + u + bias with the backend's own (fixed: quantized) dv and "
                 "bias, which spikes when above vth.")


def quantization_table(pair: PairComparison) -> Table | None:
    found = pair.first.quantization if pair.first else ()
    if not found:
        return None
    rows = []
    for q in found:
        counts = f"{q.clipped} clipped, {q.rounded} rounded, {q.zeroed} to 0 of {q.count}" if q.count > 1 else ""
        rows.append([q.backend, q.parameter, q.status, _num(q.float_value), _num(q.fixed_value), _num(q.error),
                     counts, q.where, q.note])
    return Table(f"Fixed point at {pair.first.node}[{','.join(map(str, pair.first.index))}]",
                 ["backend", "parameter", "status", "float", "fixed (mantissa x scale)", "|error|", "weights",
                  "largest error at", "how"], rows,
                 "Weights: every synapse into the neuron (dense: its row; conv: its output channel's kernel), the "
                 "float and quantized values shown at the largest error. v, u: the fixed backend's state against "
                 "the other backend's at the divergent step ('float' column).")


def ranked_table(pair: PairComparison, limit: int = RANKED_ROWS) -> Table:
    rows = []
    for d in [d for d in pair.nodes if d.mismatches][:limit]:
        spikes = f"{d.spikes[0]:,} / {d.spikes[1]:,}" if d.kind == "spikes" else "—"
        rows.append([d.node, d.kind, f"{d.mismatches:,} / {d.size:,}", pct(d.rate),
                     "—" if d.first_step is None else str(d.first_step), _num(d.max_abs_diff), spikes])
    agreeing = sum(1 for d in pair.nodes if not d.mismatches)
    return Table(f"Nodes ranked by divergence: {pair.a} vs {pair.b}",
                 ["node", "compared", "differing", "rate", "first step", "max |diff|", f"spikes {pair.a} / {pair.b}"],
                 rows, f"{agreeing} of {len(pair.nodes)} compared nodes agree everywhere"
                 + (f"; the first {limit} of the others shown" if len(rows) == limit else ""))


def quant_totals_table(comparison: Comparison) -> Table | None:
    if not comparison.quant:
        return None
    rows = []
    for backend, report in comparison.quant.items():
        worst = sorted(report.layers, key=lambda layer: -layer.rel_error)[:3]
        rows.append([backend, f"{report.total_size:,}", f"{report.total_clipped:,}", f"{report.total_rounded:,}",
                     ", ".join(f"{layer.name} ({100 * layer.rel_error:.1f}%)" for layer in worst)])
    return Table("The quantizer's totals", ["backend", "values quantized", "clipped", "rounded",
                                            "largest relative error (layer)"], rows,
                 "Over the whole plan (hardware_sims.fixed_point): weights, decays, thresholds and biases.")


def comparison_tables(comparison: Comparison) -> list[tuple[str, list[Table]]]:
    """``(section title, tables)`` in page order."""
    sections = [("Summary", [summary_table(comparison)])]
    for p in comparison.pairs:
        if p.agree:
            continue
        tables = [values_table(p)]
        quant = quantization_table(p)
        if quant is not None:
            tables.append(quant)
        tables.append(ranked_table(p))
        sections.append((f"{p.a} vs {p.b}: first part at {_where(p)}", tables))
    totals = quant_totals_table(comparison)
    if totals is not None:
        sections.append(("Fixed point", [totals]))
    return sections


def _intro(info: dict[str, Any]) -> list[str]:
    lines = [f"Model: `{info.get('model', '?')}`", f"Inputs: {info.get('inputs', '?')}",
             f"Neuron stepping: {info.get('convention', 'nir')} ({info.get('convention_note', '')})"]
    if info.get("quant_options"):
        lines.append(f"Quantizer options (fixed point): {info['quant_options']}")
    if info.get("command"):
        lines.append(f"Command: `{info['command']}`")
    return lines


def render_compare_markdown(comparison: Comparison, info: dict[str, Any]) -> str:
    out = [f"# Where the backends part: {', '.join(comparison.backends)}", ""]
    out += [f"- {line}" for line in _intro(info)] + [""]
    for title, tables in comparison_tables(comparison):
        out += [f"## {title}", ""]
        for t in tables:
            out += [table_markdown(t), ""]
    return "\n".join(out)


def render_compare_html(comparison: Comparison, info: dict[str, Any]) -> str:
    def code(line: str) -> str:  # `x` -> <code>x</code>
        parts = escape(line).split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

    body = [f"<h1>Where the backends part: {escape(', '.join(comparison.backends))}</h1>",
            "<ul>" + "".join(f"<li>{code(line)}</li>" for line in _intro(info)) + "</ul>"]
    for title, tables in comparison_tables(comparison):
        body.append(f"<h2>{escape(title)}</h2>")
        body += [table_html(t) for t in tables]
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>snnav compare</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _plain(x: Any) -> Any:
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:
        return _plain(x.item())
    return x


def comparison_json(comparison: Comparison, info: dict[str, Any]) -> dict[str, Any]:
    """Everything as plain JSON data (non-finite numbers as null)."""
    pairs = []
    for p in comparison.pairs:
        d = _plain(p)
        d["agree"], d["spike_mismatches"] = p.agree, p.spike_mismatches
        pairs.append(d)
    quant = {b: _plain(r.to_dict()) for b, r in comparison.quant.items()}
    return {"info": _plain(info), "backends": list(comparison.backends), "steps": comparison.steps,
            "samples": comparison.samples, "order": list(comparison.order), "pairs": pairs, "quant": quant}
