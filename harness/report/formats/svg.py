"""Hand-written inline SVG charts for the HTML report: pure functions from numbers to markup.

No plotting library: the report must be one self-contained file, and a few rects and polylines
are all it needs. Every label is escaped here, so callers may pass suite or model strings as is.
(No xmlns attribute: inline SVG in HTML does not need one, and the page then names no URL at all.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f")
FONT = 'font-family="inherit" font-size="12"'


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    low: float
    high: float
    text: str  # the value as the tables show it
    color: str
    best: bool = False


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    color: str
    dashed: bool = False


def _f(x: float) -> str:
    return f"{x:.1f}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t < hi + step * 0.999:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _tick_label(t: float) -> str:
    return f"{t:g}" if abs(t) >= 1 or t == 0 else f"{t:.2f}".rstrip("0").rstrip(".")


def _clip(label: str, limit: int = 28) -> str:
    """Long names would run off the chart's left edge; the full name stays in the tooltip."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def bar_chart(bars: Sequence[Bar], *, axis_max: float, title: str, width: int = 680) -> str:
    """Horizontal bars with 95% interval whiskers, one row per strategy."""
    if not bars:
        return ""
    row, top, bottom = 34, 12, 34
    label_w = min(220, 24 + 7 * max(len(_clip(b.label)) for b in bars))
    value_w = min(200, 24 + 7 * max(len(b.text) for b in bars))
    plot_w = width - label_w - value_w
    height = top + row * len(bars) + bottom
    hi = max([axis_max] + [b.high for b in bars if math.isfinite(b.high)])
    ticks = nice_ticks(0.0, hi)
    xmax = ticks[-1]

    def x(v: float) -> float:
        return label_w + plot_w * max(0.0, min(v, xmax)) / xmax

    out = [
        f'<svg class="chart bar-chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    axis_y = top + row * len(bars)
    for t in ticks:
        out.append(f'<line x1="{_f(x(t))}" y1="{top}" x2="{_f(x(t))}" y2="{axis_y}" class="grid"/>')
        out.append(
            f'<text x="{_f(x(t))}" y="{axis_y + 16}" text-anchor="middle" {FONT} class="tick">{_tick_label(t)}</text>'
        )
    for i, b in enumerate(bars):
        y = top + row * i
        cy = y + row / 2
        weight = ' font-weight="600"' if b.best else ""
        out.append(
            f'<text x="{label_w - 8}" y="{_f(cy + 4)}" text-anchor="end" {FONT}{weight}>{escape(_clip(b.label))}'
            f"<title>{escape(b.label)}</title></text>"
        )
        if math.isfinite(b.value):
            out.append(
                f'<rect class="bar" data-strategy="{escape(b.label)}" x="{label_w}" y="{y + 7}" '
                f'width="{_f(max(x(b.value) - label_w, 0.5))}" height="{row - 14}" rx="2" fill="{b.color}" '
                f'fill-opacity="{"0.9" if b.best else "0.6"}"><title>{escape(b.label)}: {escape(b.text)}</title></rect>'
            )
        if math.isfinite(b.low) and math.isfinite(b.high):
            x0, x1 = _f(x(b.low)), _f(x(b.high))
            out.append(
                f'<g class="whisker"><line x1="{x0}" y1="{_f(cy)}" x2="{x1}" y2="{_f(cy)}"/>'
                f'<line x1="{x0}" y1="{_f(cy - 6)}" x2="{x0}" y2="{_f(cy + 6)}"/>'
                f'<line x1="{x1}" y1="{_f(cy - 6)}" x2="{x1}" y2="{_f(cy + 6)}"/></g>'
            )
        out.append(f'<text x="{width - value_w + 8}" y="{_f(cy + 4)}" {FONT}{weight}>{escape(b.text)}</text>')
    out.append(f'<line x1="{label_w}" y1="{axis_y}" x2="{label_w + plot_w}" y2="{axis_y}" class="axis"/>')
    out.append("</svg>")
    return "\n".join(out)


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_ticks: Sequence[tuple[float, str]] | None = None,
    width: int = 680,
    height: int = 260,
) -> str:
    """Polylines on shared axes with a legend; x_ticks overrides the numeric x axis labels."""
    pts = [p for s in series for p in s.points if math.isfinite(p[0]) and math.isfinite(p[1])]
    if not pts:
        return ""
    left, right, top, bottom = 56, 40, 12, 44  # room for the last x label
    legend_h = 20 * math.ceil(len(series) / 3)
    plot_w, plot_h = width - left - right, height - top - bottom
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    yt = nice_ticks(min(ys), max(ys))
    y0, y1 = yt[0], yt[-1]

    def px(v: float) -> float:
        return left + plot_w * (v - x0) / (x1 - x0)

    def py(v: float) -> float:
        return top + plot_h * (1 - (v - y0) / (y1 - y0))

    total_h = height + legend_h
    out = [
        f'<svg class="chart line-chart" viewBox="0 0 {width} {total_h}" width="100%" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for t in yt:
        out.append(f'<line x1="{left}" y1="{_f(py(t))}" x2="{left + plot_w}" y2="{_f(py(t))}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{_f(py(t) + 4)}" text-anchor="end" {FONT} class="tick">{_tick_label(t)}</text>')
    if x_ticks is None:
        x_ticks = [(t, _tick_label(t)) for t in nice_ticks(x0, x1) if x0 <= t <= x1]
    for t, label in x_ticks:
        out.append(
            f'<text x="{_f(px(t))}" y="{top + plot_h + 16}" text-anchor="middle" {FONT} class="tick">{escape(label)}</text>'
        )
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" class="axis"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" class="axis"/>')
    out.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 34}" text-anchor="middle" {FONT} class="tick">{escape(x_label)}</text>'
    )
    out.append(
        f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" {FONT} class="tick">{escape(y_label)}</text>'
    )
    for s in series:
        out += _polyline(s, px, py)
    out += _legend(series, left, plot_w, height)
    out.append("</svg>")
    return "\n".join(out)


def _polyline(s: Series, px: Callable[[float], float], py: Callable[[float], float]) -> list[str]:
    good = [p for p in s.points if math.isfinite(p[0]) and math.isfinite(p[1])]
    if not good:
        return []
    coords = " ".join(f"{_f(px(a))},{_f(py(b))}" for a, b in good)
    dash = ' stroke-dasharray="6 4"' if s.dashed else ""
    out = [
        f'<polyline class="series" data-series="{escape(s.name)}" points="{coords}" fill="none" '
        f'stroke="{s.color}" stroke-width="2"{dash}><title>{escape(s.name)}</title></polyline>'
    ]
    if len(good) <= 30:  # markers help short series (history) and clutter long loss curves
        out += [f'<circle cx="{_f(px(a))}" cy="{_f(py(b))}" r="3" fill="{s.color}">'
                f"<title>{escape(s.name)}: {b:.4g}</title></circle>" for a, b in good]
    return out


def _legend(series: Sequence[Series], left: float, plot_w: float, height: int) -> list[str]:
    """Three entries a row, below the plot."""
    out = []
    for i, s in enumerate(series):
        lx = left + (i % 3) * (plot_w / 3)
        ly = height + 20 * (i // 3) + 4
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(
            f'<line x1="{_f(lx)}" y1="{ly}" x2="{_f(lx + 22)}" y2="{ly}" stroke="{s.color}" stroke-width="3"{dash}/>'
            f'<text x="{_f(lx + 28)}" y="{ly + 4}" {FONT}>{escape(s.name)}</text>'
        )
    return out


@dataclass(frozen=True)
class Point:
    label: str
    x: float  # cost
    y: float  # quality
    low: float  # the quality's 95% interval
    high: float
    color: str
    marked: bool = False  # no cheaper-or-equal strategy beats it significantly


def scatter_chart(points: Sequence[Point], *, x_title: str, y_title: str, title: str,
                  width: int = 680, height: int = 340) -> str:
    """Quality against cost: one dot per strategy with its interval as a vertical whisker; marked
    dots (ringed) are the ones no cheaper-or-equal strategy beats significantly."""
    pts = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    if not pts:
        return ""
    left, right, top, bottom = 56, 150, 14, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    xt = nice_ticks(0.0, max(p.x for p in pts) or 1.0)
    lows = [p.low for p in pts if math.isfinite(p.low)] + [p.y for p in pts]
    highs = [p.high for p in pts if math.isfinite(p.high)] + [p.y for p in pts]
    yt = nice_ticks(min(lows), max(highs))

    def px(v: float) -> float:
        return left + plot_w * (v - xt[0]) / ((xt[-1] - xt[0]) or 1.0)

    def py(v: float) -> float:
        return top + plot_h * (1 - (v - yt[0]) / ((yt[-1] - yt[0]) or 1.0))

    out = [f'<svg class="chart scatter-chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
           f'aria-label="{escape(title)}">', f"<title>{escape(title)}</title>"]
    out += _scatter_axes(xt, yt, px, py, left, top, plot_w, plot_h, x_title, y_title)
    for p in pts:
        cx, cy = _f(px(p.x)), _f(py(p.y))
        if math.isfinite(p.low) and math.isfinite(p.high):
            out.append(f'<line class="whisker" x1="{cx}" y1="{_f(py(p.low))}" x2="{cx}" y2="{_f(py(p.high))}" '
                       f'stroke="{p.color}"/>')
        ring = f'<circle cx="{cx}" cy="{cy}" r="9" fill="none" stroke="{p.color}" stroke-width="2"/>' if p.marked else ""
        out.append(f'{ring}<circle class="dot" data-strategy="{escape(p.label)}" cx="{cx}" cy="{cy}" r="5" '
                   f'fill="{p.color}"><title>{escape(p.label)}</title></circle>')
        out.append(f'<text x="{_f(px(p.x) + 12)}" y="{_f(py(p.y) + 4)}" {FONT}>{escape(_clip(p.label, 20))}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _scatter_axes(xt: Sequence[float], yt: Sequence[float], px: Callable[[float], float],
                  py: Callable[[float], float], left: float, top: float, plot_w: float, plot_h: float,
                  x_title: str, y_title: str) -> list[str]:
    out = []
    for t in yt:
        out.append(f'<line x1="{left}" y1="{_f(py(t))}" x2="{_f(left + plot_w)}" y2="{_f(py(t))}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{_f(py(t) + 4)}" text-anchor="end" {FONT} class="tick">{_tick_label(t)}</text>')
    for t in xt:
        out.append(f'<text x="{_f(px(t))}" y="{_f(top + plot_h + 16)}" text-anchor="middle" {FONT} '
                   f'class="tick">{_tick_label(t)}</text>')
    out.append(f'<line x1="{left}" y1="{_f(top + plot_h)}" x2="{_f(left + plot_w)}" y2="{_f(top + plot_h)}" class="axis"/>')
    out.append(f'<text x="{_f(left + plot_w / 2)}" y="{_f(top + plot_h + 36)}" text-anchor="middle" {FONT}>'
               f"{escape(x_title)}</text>")
    out.append(f'<text x="12" y="{_f(top + plot_h / 2)}" text-anchor="middle" {FONT} '
               f'transform="rotate(-90 12 {_f(top + plot_h / 2)})">{escape(y_title)}</text>')
    return out
