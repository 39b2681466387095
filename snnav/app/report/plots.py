"""The headline's plots, drawn with matplotlib as inline SVG (the page stays one self-contained file).

* accuracy against energy per inference on each target, with error bars: energy from the lower to the upper bound of
  its estimate (none for a measurement), accuracy +- its binomial standard error over the test samples;
* where the energy goes on each target (shares of its total: compute, memory traffic, routing, static);
* the chips' dynamic energy by layer (the largest layers);
* the quantization section: each result's accuracy against its energy per inference on each chip, labelled.
"""

from __future__ import annotations

import io
from typing import Any

from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

from snnav.app.report.headline import target_label, value_components

__all__ = ["accuracy_energy_svg", "components_svg", "layers_svg", "accuracy_steps_svg", "quantization_svg"]

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78")


def _svg(fig: Figure) -> str:
    FigureCanvasSVG(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]  # inline: no XML prolog or doctype


def accuracy_energy_svg(rows: list[dict[str, Any]]) -> str:
    """Accuracy (%) against total energy per inference (µJ, log scale) with error bars, one marker per target."""
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    for i, r in enumerate(rows):
        e = r["energy_total_j"]
        x, lo, hi = (1e6 * e[k] for k in ("value", "lower", "upper"))
        y = 100 * r["accuracy"]
        yerr = 100 * (r.get("accuracy_stderr") or 0.0)
        measured = r["kind"] == "measured"
        ax.errorbar([x], [y], xerr=[[x - lo], [hi - x]], yerr=[[yerr], [yerr]], fmt="o" if measured else "s",
                    color=COLOURS[i % len(COLOURS)], mfc=COLOURS[i % len(COLOURS)] if measured else "white",
                    capsize=3, label=f"{target_label(r)} ({r['kind']})")
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference (µJ, log scale; bars: lower to upper bound)")
    ax.set_ylabel("test accuracy (%; bars: ±1 standard error)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _svg(fig)


def _component_order(name: str) -> tuple[int, str]:
    """Compute first, then memory traffic, communication, then static/idle power (the stacking order)."""
    rank = {"compute": 0, "synaptic": 1, "neuron": 2, "extension": 3, "kernels": 4, "memory": 5,
            "memory (activations)": 6, "memory (weights)": 7, "routing": 8, "static": 9, "idle": 10}
    return rank.get(name, 11), name


def components_svg(rows: list[dict[str, Any]]) -> str:
    """Each target's energy per inference split by component, as shares of its total (value bound), the total in µJ
    beside its name: the totals span orders of magnitude, so the shares are what a bar can show."""
    rows = [r for r in rows if value_components(r)]
    names = sorted(dict.fromkeys(k for r in rows for k in value_components(r)), key=_component_order)
    fig = Figure(figsize=(7.5, 0.7 + 0.45 * len(rows)))
    ax = fig.add_subplot()
    left = [0.0] * len(rows)
    totals = [sum(value_components(r).values()) or 1.0 for r in rows]
    for j, name in enumerate(names):
        widths = [100 * value_components(r).get(name, 0.0) / tot for r, tot in zip(rows, totals)]
        ax.barh(range(len(rows)), widths, left=left, color=COLOURS[j % len(COLOURS)], label=name)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_yticks(range(len(rows)), [f"{target_label(r)}\n{1e6 * tot:.4g} µJ" for r, tot in zip(rows, totals)], fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the energy per inference (%)")
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return _svg(fig)


def layers_svg(rows: list[dict[str, Any]], top: int = 15) -> str:
    """Each chip's dynamic energy per inference by layer (value bound, µJ), the ``top`` largest layers of the first."""
    chips = [r for r in rows if r.get("by_layer_j")]
    if not chips:
        return ""
    order = sorted(chips[0]["by_layer_j"], key=lambda k: -chips[0]["by_layer_j"][k])[:top]
    fig = Figure(figsize=(7.5, 0.6 + 0.28 * len(order)))
    ax = fig.add_subplot()
    height = 0.8 / len(chips)
    for i, r in enumerate(chips):
        ax.barh([k + i * height for k in range(len(order))], [1e6 * r["by_layer_j"].get(n, 0.0) for n in order],
                height=height, color=COLOURS[i % len(COLOURS)], label=r["target"])
    ax.set_yticks([k + 0.4 - height / 2 for k in range(len(order))], order, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("dynamic energy per inference (µJ)")
    ax.legend(fontsize=7)
    return _svg(fig)


def accuracy_steps_svg(streams: list[dict[str, Any]]) -> str:
    """Accuracy (%) against the input steps seen, one line per streaming result (dashed: its float reference). A
    graph with WINDOW nodes has no output before all T steps: drawn as one point at T."""
    fig = Figure(figsize=(7.5, 3.8))
    ax = fig.add_subplot()
    for i, st in enumerate(streams):
        colour = COLOURS[i % len(COLOURS)]
        acc, ref = st["accuracy_by_step"], st["float_accuracy_by_step"]
        if st["window_nodes"]:
            ax.plot([st["steps"]], [100 * acc[-1]], "s", color=colour, label=f"{st['result']} (WINDOW: waits for T)")
            continue
        steps = range(1, len(acc) + 1)
        ax.plot(steps, [100 * a for a in acc], "-o", ms=3, color=colour, label=f"{st['result']} ({st['label']})")
        ax.plot(steps, [100 * a for a in ref], "--", color=colour, alpha=0.6, label=f"{st['result']} float reference")
    ax.set_xlabel("input steps seen")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _svg(fig)


def quantization_svg(section: dict[str, Any]) -> str:
    """Accuracy (%) against energy per inference (µJ) of every priced result of the quantization section, one marker
    per result and chip (colour: chip; filled: fine-tuned), labelled with the result's id and model; bars: the
    energy's lower to upper bound and ±1 binomial standard error. Log x only when the energies span over 10x."""
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    xs, labelled = [], {}
    for j, chip in enumerate(section["chips"]):
        colour = COLOURS[j % len(COLOURS)]
        first = True
        for r in section["rows"]:
            e = r["energy_total_j"].get(chip)
            if e is None:
                continue
            x, lo, hi = (1e6 * e[k] for k in ("value", "lower", "upper"))
            y, yerr = 100 * r["accuracy"], 100 * (r["accuracy_stderr"] or 0.0)
            xs.append(x)
            ax.errorbar([x], [y], xerr=[[x - lo], [hi - x]], yerr=[[yerr], [yerr]], fmt="o", color=colour,
                        mfc=colour if r["fine_tuned"] else "white", capsize=3, label=chip if first else None)
            first = False
            bits = "" if r["weight_bits"] is None else f", {r['weight_bits']} bit"
            if x >= labelled.get(r["result"], (0.0, y, ""))[0]:  # labelled once, right of its rightmost marker
                labelled[r["result"]] = (x, y, f"{r['result']} {r['name']}{bits}")
    for x, y, text in labelled.values():
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=6)
    if xs and max(xs) > 10 * min(xs):
        ax.set_xscale("log")
    ax.set_xlabel("energy per inference (µJ, estimate; bars: lower to upper bound)")
    ax.set_ylabel("test accuracy (%; bars: ±1 standard error)")
    ax.grid(True, which="both", alpha=0.3)
    if xs:
        ax.legend(fontsize=7, loc="best")
    return _svg(fig)
