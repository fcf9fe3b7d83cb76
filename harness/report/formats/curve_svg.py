"""The learning-curve chart: inline SVG, x = train size on a log scale, each curve with its 95%
interval as a shaded band, train-free strategies as flat dashed lines across the whole axis."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from harness.report.formats.svg import FONT, _f, _tick_label, nice_ticks


@dataclass(frozen=True)
class CurveLine:
    name: str
    sizes: Sequence[float]
    means: Sequence[float]
    lows: Sequence[float]
    highs: Sequence[float]
    color: str
    flat: bool = False  # does not use the train split: one value, drawn across every size


def curve_chart(lines: Sequence[CurveLine], *, sizes: Sequence[float], title: str, y_label: str,
                marks: Sequence[tuple[float, str]] = (), width: int = 680, height: int = 300) -> str:
    """`marks`: vertical dotted lines at crossover sizes, with a short label each."""
    values = [v for ln in lines for v in (*ln.lows, *ln.highs, *ln.means) if math.isfinite(v)]
    if not values or not sizes:
        return ""
    left, right, top, bottom = 56, 24, 14, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    lx0, lx1 = math.log(min(sizes)), math.log(max(sizes))
    if lx1 - lx0 < 1e-9:
        lx0, lx1 = lx0 - 0.5, lx1 + 0.5
    yt = nice_ticks(min(values), max(values))
    y0, y1 = yt[0], yt[-1]

    def px(size: float) -> float:
        return left + plot_w * (math.log(size) - lx0) / (lx1 - lx0)

    def py(v: float) -> float:
        return top + plot_h * (1 - (v - y0) / (y1 - y0))

    legend_h = 20 * math.ceil(len(lines) / 3)
    out = [f'<svg class="chart curve-chart" viewBox="0 0 {width} {height + legend_h}" width="100%" role="img" '
           f'aria-label="{escape(title)}">', f"<title>{escape(title)}</title>"]
    for t in yt:
        out.append(f'<line x1="{left}" y1="{_f(py(t))}" x2="{left + plot_w}" y2="{_f(py(t))}" class="grid" stroke="#e5e7eb"/>')
        out.append(f'<text x="{left - 6}" y="{_f(py(t) + 4)}" text-anchor="end" {FONT}>{_tick_label(t)}</text>')
    for s in sizes:
        out.append(f'<text x="{_f(px(s))}" y="{top + plot_h + 16}" text-anchor="middle" {FONT}>{s:g}</text>')
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#6b7280"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#6b7280"/>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 34}" text-anchor="middle" {FONT}>'
               "train examples (log scale)</text>")
    out.append(f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" {FONT}>'
               f"{escape(y_label)}</text>")
    for ln in lines:
        xs = [min(sizes), max(sizes)] if ln.flat else list(ln.sizes)
        lows = [ln.lows[0]] * 2 if ln.flat else list(ln.lows)
        highs = [ln.highs[0]] * 2 if ln.flat else list(ln.highs)
        means = [ln.means[0]] * 2 if ln.flat else list(ln.means)
        band = [f"{_f(px(x))},{_f(py(h))}" for x, h in zip(xs, highs, strict=True)]
        band += [f"{_f(px(x))},{_f(py(lo))}" for x, lo in reversed(list(zip(xs, lows, strict=True)))]
        out.append(f'<polygon class="band" points="{" ".join(band)}" fill="{ln.color}" fill-opacity="0.15" stroke="none"/>')
        dash = ' stroke-dasharray="6 4"' if ln.flat else ""
        coords = " ".join(f"{_f(px(x))},{_f(py(m))}" for x, m in zip(xs, means, strict=True))
        out.append(f'<polyline class="series" data-series="{escape(ln.name)}" points="{coords}" fill="none" '
                   f'stroke="{ln.color}" stroke-width="2"{dash}><title>{escape(ln.name)}</title></polyline>')
        if not ln.flat:
            out += [f'<circle cx="{_f(px(x))}" cy="{_f(py(m))}" r="3" fill="{ln.color}"><title>{escape(ln.name)} '
                    f"at {x:g}: {m:.4g}</title></circle>" for x, m in zip(xs, means, strict=True)]
    for x, label in marks:
        if min(sizes) <= x <= max(sizes):
            out.append(f'<line x1="{_f(px(x))}" y1="{top}" x2="{_f(px(x))}" y2="{top + plot_h}" stroke="#6b7280" '
                       f'stroke-dasharray="2 3"><title>{escape(label)}</title></line>')
    for i, ln in enumerate(lines):
        x, y = left + (i % 3) * (plot_w / 3), height + 20 * (i // 3) + 4
        dash = ' stroke-dasharray="6 4"' if ln.flat else ""
        out.append(f'<line x1="{_f(x)}" y1="{y}" x2="{_f(x + 22)}" y2="{y}" stroke="{ln.color}" stroke-width="3"{dash}/>'
                   f'<text x="{_f(x + 28)}" y="{y + 4}" {FONT}>{escape(ln.name)}</text>')
    out.append("</svg>")
    return "\n".join(out)
