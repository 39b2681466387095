"""Small, dependency-free SVG charts for the report: horizontal (stacked or grouped) bars, a log-x scatter, a raster.

Every function returns one ``<svg>`` element as a string, sized in pixels, with its text in the page's font, so the
HTML report is one file that renders offline (no JavaScript, no fonts or images fetched). Labels are escaped; values
that are not finite are drawn as zero-length bars and listed in the tables instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Sequence

__all__ = ["PALETTE", "Bar", "Point", "Strip", "hbar_chart", "scatter_log_x", "raster", "legend_items"]

#: Okabe & Ito's colour-blind-safe palette (Color Universal Design, 2008), then greys.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000", "#999999",
           "#666666")
FONT = 11  # px
CHAR_W = 6.4  # px per character at FONT, a safe over-estimate for sans-serif labels
ROW_H = 16  # px per bar row


def _fmt(value: float) -> str:
    """A compact tick label: 3 significant digits, SI-free (units are in the axis title)."""
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        mantissa, exponent = f"{value:.2e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:.3g}"


def nice_ticks(hi: float, count: int = 5) -> list[float]:
    """Ticks 0 .. >= ``hi`` at a 1/2/5 x 10^k step, about ``count`` of them."""
    if not hi > 0 or not math.isfinite(hi):
        return [0.0, 1.0]
    raw = hi / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = math.ceil(hi / step - 1e-9)
    return [i * step for i in range(n + 1)]


def _text(x: float, y: float, s: str, anchor: str = "start", size: int = FONT, weight: str = "normal",
          extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}"'
            f'{extra}>{escape(s)}</text>')


def _open(width: float, height: float, title: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" font-family="sans-serif">',
            f"<title>{escape(title)}</title>",
            _text(8, 16, title, size=13, weight="bold")]


def legend_items(items: Sequence[tuple[str, str]], x: float, y: float, width: float) -> tuple[list[str], float]:
    """``(svg parts, height used)`` of a wrapping legend of ``(label, colour)`` swatches starting at ``(x, y)``."""
    parts, cx, cy = [], x, y
    for label, colour in items:
        w = 18 + CHAR_W * len(label) + 14
        if cx + w > x + width and cx > x:
            cx, cy = x, cy + 16
        parts.append(f'<rect x="{cx:.1f}" y="{cy - 9:.1f}" width="11" height="11" fill="{colour}"/>')
        parts.append(_text(cx + 15, cy, label))
        cx += w
    return parts, (cy - y) + 16 if items else 0.0


@dataclass(frozen=True)
class Bar:
    """One row of a bar chart: a label and its segments ``(series name, value)``, stacked or grouped."""

    label: str
    segments: tuple[tuple[str, float], ...]


def hbar_chart(title: str, bars: Sequence[Bar], x_label: str, *, stacked: bool = True, width: int = 900,
               colours: dict[str, str] | None = None, x_max: float | None = None) -> str:
    """Horizontal bars, one row per ``Bar``; segments stacked left to right, or grouped as thin parallel bars.

    Args:
        title: chart title.
        bars: the rows, top to bottom.
        x_label: axis title (with its unit).
        stacked: stack the segments (True) or draw one thin bar per segment (False).
        width: total width in pixels.
        colours: series name -> colour (default: the palette in order of first appearance).
        x_max: fix the axis maximum (default: the largest bar).
    """
    colours = dict(colours or {})
    order = list(colours)  # given colours also fix the legend's order, so every chart lists series alike
    series = sorted(dict.fromkeys(name for bar in bars for name, _ in bar.segments),
                    key=lambda s: order.index(s) if s in order else len(order))
    for i, name in enumerate(series):
        colours.setdefault(name, PALETTE[i % len(PALETTE)])
    per_row = 1 if stacked else max(1, len(series))
    row_h = ROW_H if stacked else max(ROW_H, 6 * per_row + 4)
    label_w = min(360, 12 + CHAR_W * max((len(b.label) for b in bars), default=4))
    plot_x, plot_w = label_w + 8, max(120.0, width - label_w - 30)
    legend, legend_h = legend_items([(s, colours[s]) for s in series], 8, 36, width - 16)
    top = 36 + legend_h + 6
    height = top + row_h * len(bars) + 44

    def value(v: float) -> float:
        return v if math.isfinite(v) and v > 0 else 0.0

    totals = [sum(value(v) for _, v in b.segments) if stacked else max((value(v) for _, v in b.segments), default=0)
              for b in bars]
    ticks = nice_ticks(x_max if x_max is not None else max(totals, default=0.0))
    scale = plot_w / ticks[-1]
    parts = _open(width, height, title) + legend
    for t in ticks:
        x = plot_x + t * scale
        parts.append(f'<line x1="{x:.1f}" y1="{top - 2}" x2="{x:.1f}" y2="{top + row_h * len(bars)}" '
                     'stroke="#ddd"/>')
        parts.append(_text(x, top + row_h * len(bars) + 14, _fmt(t), anchor="middle"))
    parts.append(_text(plot_x + plot_w / 2, height - 8, x_label, anchor="middle"))
    for i, bar in enumerate(bars):
        y = top + i * row_h
        parts.append(_text(plot_x - 6, y + row_h / 2 + 4, bar.label, anchor="end"))
        x = plot_x
        for j, (name, v) in enumerate(bar.segments):
            w = value(v) * scale
            tip = f"<title>{escape(bar.label)} - {escape(name)}: {v:.4g}</title>"
            if stacked:
                parts.append(f'<rect x="{x:.2f}" y="{y + 2:.1f}" width="{w:.2f}" height="{row_h - 4}" '
                             f'fill="{colours[name]}">{tip}</rect>')
                x += w
            else:
                h = (row_h - 4) / per_row
                parts.append(f'<rect x="{plot_x:.2f}" y="{y + 2 + series.index(name) * h:.1f}" width="{w:.2f}" '
                             f'height="{h - 1:.1f}" fill="{colours[name]}">{tip}</rect>')
    parts.append(f'<line x1="{plot_x}" y1="{top - 2}" x2="{plot_x}" y2="{top + row_h * len(bars)}" stroke="#333"/>')
    parts.append("</svg>")
    return "\n".join(parts)


@dataclass(frozen=True)
class Point:
    """One marker of a scatter plot."""

    x: float
    y: float
    label: str
    colour: str = PALETTE[0]
    shape: str = "circle"  # circle | square | triangle | diamond
    hollow: bool = False


def _marker(p: Point, cx: float, cy: float, r: float = 6.0) -> str:
    fill = "white" if p.hollow else p.colour
    style = f'fill="{fill}" stroke="{p.colour}" stroke-width="2"'
    tip = f"<title>{escape(p.label)}: x {p.x:.4g}, y {p.y:.4g}</title>"
    if p.shape == "square":
        return f'<rect x="{cx - r:.1f}" y="{cy - r:.1f}" width="{2 * r}" height="{2 * r}" {style}>{tip}</rect>'
    if p.shape in ("triangle", "diamond"):
        pts = ([(cx, cy - r * 1.2), (cx + r * 1.1, cy + r * 0.8), (cx - r * 1.1, cy + r * 0.8)]
               if p.shape == "triangle" else [(cx, cy - r * 1.3), (cx + r, cy), (cx, cy + r * 1.3), (cx - r, cy)])
        coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
        return f'<polygon points="{coords}" {style}>{tip}</polygon>'
    return f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r}" {style}>{tip}</circle>'


def scatter_log_x(title: str, points: Sequence[Point], x_label: str, y_label: str, *, width: int = 900,
                  plot_height: int = 300, y_range: tuple[float, float] = (0.0, 1.0)) -> str:
    """Markers on a log-scaled x axis (whole decades) and a linear y axis, above them a legend of the points."""
    good = [p for p in points if math.isfinite(p.x) and p.x > 0 and math.isfinite(p.y)]
    lo = math.floor(math.log10(min((p.x for p in good), default=1.0)))
    hi = max(math.ceil(math.log10(max((p.x for p in good), default=10.0))), lo + 1)
    plot_x, plot_w = 64, width - 90
    top = 36 + 16 * len(points) + 6
    height = top + plot_height + 50
    y0, y1 = y_range

    def px(x: float) -> float:
        return plot_x + (math.log10(x) - lo) / (hi - lo) * plot_w

    def py(y: float) -> float:
        return top + plot_height - (y - y0) / (y1 - y0) * plot_height

    parts = _open(width, height, title)
    for i, p in enumerate(points):
        parts.append(_marker(Point(0, 0, p.label, p.colour, p.shape, p.hollow), 20, 36 + 16 * i - 4, 5))
        parts.append(_text(32, 36 + 16 * i, p.label))
    bottom = top + plot_height
    for k in range(lo, hi + 1):
        x = px(10.0 ** k)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>')
        parts.append(_text(x, bottom + 14, f"1e{k}", anchor="middle"))
        for m in range(2, 10) if k < hi else ():
            xm = px(m * 10.0 ** k)
            parts.append(f'<line x1="{xm:.1f}" y1="{bottom}" x2="{xm:.1f}" y2="{bottom - 4}" stroke="#999"/>')
    for t in nice_ticks(y1 - y0):
        y = py(y0 + t)
        parts.append(f'<line x1="{plot_x}" y1="{y:.1f}" x2="{plot_x + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(_text(plot_x - 6, y + 4, _fmt(y0 + t), anchor="end"))
    parts.append(f'<rect x="{plot_x}" y="{top}" width="{plot_w}" height="{plot_height}" fill="none" stroke="#333"/>')
    parts.append(_text(plot_x + plot_w / 2, height - 12, x_label, anchor="middle"))
    parts.append(_text(16, top + plot_height / 2, y_label, anchor="middle",
                       extra=f' transform="rotate(-90 16 {top + plot_height / 2:.1f})"'))
    for p in good:
        parts.append(_marker(p, px(p.x), py(min(max(p.y, y0), y1))))
    parts.append("</svg>")
    return "\n".join(parts)


@dataclass(frozen=True)
class Strip:
    """The spikes of one layer in a raster: ``(step, neuron)`` pairs, neurons ``0 .. neurons-1`` shown."""

    label: str
    steps: int
    neurons: int
    spikes: tuple[tuple[int, int], ...]
    total_neurons: int | None = None  # the layer's size, when only its first `neurons` are shown


def raster(title: str, strips: Sequence[Strip], *, width: int = 900, note: str = "") -> str:
    """One horizontal strip per layer: x = neuron index, y = time step (top = step 0), a dark cell per spike.

    Strips are stacked with their labels on the left; a strip is ``steps`` rows of at least 3 px, so short
    simulations (a handful of steps) stay readable.
    """
    label_w = min(360, 12 + CHAR_W * max((len(s.label) + 14 for s in strips), default=4))
    plot_x, plot_w = label_w + 8, max(200.0, width - label_w - 24)
    top = 40 + (16 if note else 0)
    heights = [max(24.0, min(120.0, 6.0 * s.steps)) for s in strips]
    gap = 6
    height = top + sum(heights) + gap * len(strips) + 36
    parts = _open(width, height, title)
    if note:
        parts.append(_text(8, 34, note))
    y = top
    for strip, h in zip(strips, heights):
        parts.append(f'<rect x="{plot_x}" y="{y:.1f}" width="{plot_w:.1f}" height="{h:.1f}" fill="#f4f4f4" '
                     'stroke="#ccc"/>')
        shown = (f"{strip.neurons} of {strip.total_neurons}" if strip.total_neurons not in (None, strip.neurons)
                 else f"{strip.neurons}")
        parts.append(_text(plot_x - 6, y + h / 2 + 4, f"{strip.label} ({shown})", anchor="end"))
        cw, ch = plot_w / max(1, strip.neurons), h / max(1, strip.steps)
        for step, neuron in strip.spikes:
            if 0 <= step < strip.steps and 0 <= neuron < strip.neurons:
                parts.append(f'<rect x="{plot_x + neuron * cw:.2f}" y="{y + step * ch:.2f}" '
                             f'width="{max(cw, 1.0):.2f}" height="{max(ch - 0.5, 1.0):.2f}" fill="#111"/>')
        y += h + gap
    parts.append(_text(plot_x, y + 12, "neuron 0", anchor="start"))
    parts.append(_text(plot_x + plot_w, y + 12, "last neuron shown", anchor="end"))
    parts.append(_text(plot_x + plot_w / 2, y + 26, "neuron index within the layer (each strip: time steps top to "
                                                     "bottom)", anchor="middle"))
    parts.append("</svg>")
    return "\n".join(parts)
