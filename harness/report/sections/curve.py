"""curve.md and curve.html from a curve folder's curve.json alone (no model, no re-scoring): the
curves as an inline SVG with interval bands, a table, and the crossovers in words."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harness.core.cache import write_text_atomic
from harness.core.errors import HarnessError
from harness.report.formats.curve_svg import CurveLine, curve_chart
from harness.report.formats.html_parts import CSS, e, section, table, td
from harness.report.formats.svg import color

CURVE_FILE = "curve.json"


def load_curve(folder: Path) -> dict[str, Any]:
    path = Path(folder) / CURVE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"{path}: not found (is {folder} a curve folder?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as ex:
        raise HarnessError(f"{path}: not valid JSON ({ex})") from None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith("sft-harness/curve/"):
        raise HarnessError(f"{path}: not a curve.json of sft-harness")
    return data


def _n(x: float | None) -> str:
    """A size in words: whole examples."""
    return "?" if x is None else f"{round(x):d}"


def sentences(curve: dict[str, Any]) -> list[str]:
    """One sentence per crossover: where the curve behind at the smallest size catches up, if it does."""
    sizes = curve["sizes"]
    out = []
    for c in curve["crossovers"]:
        a, b = c["a"], c["b"]
        lo, hi = c["ci"]
        ci = f"95% CI {_n(lo)}-{_n(hi)}" if hi is not None else f"95% CI {_n(lo)} to beyond {_n(max(sizes))}"
        never = c["no_crossover_share"]
        if c["at"] is not None and c["from_start"]:
            out.append(f"{a} is ahead of {b} from the smallest size measured ({_n(min(sizes))} examples).")
        elif c["at"] is not None:
            tail = f"; in {never:.0%} of resamples it never does" if never >= 0.005 else ""
            out.append(f"{a} overtakes {b} at about {_n(c['at'])} examples ({ci}{tail}); below that, {b} is as good "
                       "or better.")
        elif not curve.get("curves", {}).get(a, {}).get("uses_train", True):
            out.append(f"{b} stays ahead of {a} at every size measured ({_n(min(sizes))}-{_n(max(sizes))} examples).")
        else:
            does = 1 - never
            tail = f" (it does in {does:.0%} of resamples)" if does >= 0.005 else ""
            out.append(f"{a} does not overtake {b} within the sizes measured ({_n(min(sizes))}-{_n(max(sizes))} "
                       f"examples){tail}.")
    return out


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.3f}"


def _point_text(p: dict[str, Any], seeds: int) -> str:
    sd = f" ± {p['sd']:.3f}" if seeds > 1 else ""
    return f"{_fmt(p['mean'])}{sd} [{_fmt(p['ci'][0])}, {_fmt(p['ci'][1])}]"


def _rows(curve: dict[str, Any]) -> list[tuple[str, bool, list[str]]]:
    seeds = len(curve["seeds"])
    return [(name, bool(c["uses_train"]), [_point_text(p, seeds if c["uses_train"] else 1) for p in c["points"]])
            for name, c in curve["curves"].items()]


def _work_line(curve: dict[str, Any]) -> str:
    w = curve["work"]
    return (f"{w['cells']} cells, {w['computed_cells']} computed now (the rest from the caches); "
            f"training {w['train_s']:.1f} s, decoding {w['decode_s']:.1f} s, scoring {w['score_s']:.1f} s")


def _size_heads(curve: dict[str, Any]) -> list[str]:
    n_train = curve["suite"]["n_train"]
    return [f"{s} (all)" if s == n_train else str(s) for s in curve["sizes"]]


def render_markdown(curve: dict[str, Any]) -> str:
    suite, metric = curve["suite"], curve["metric"]
    lines = [f"# Learning curve: {suite['name']}", "",
             f"{suite['task']}, {suite['n_test']} test examples, {suite['n_train']} train examples; metric **{metric}** "
             f"(mean over {len(curve['seeds'])} seed(s), 95% interval resampling test examples and seeds).", ""]
    if curve.get("metric_note"):
        lines += [f"Note: {curve['metric_note']}.", ""]
    lines += [f"- {s}" for s in sentences(curve)] + [""]
    heads = ["strategy", *_size_heads(curve)]
    lines += ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for name, uses, cells in _rows(curve):
        shown = cells if uses else [cells[0] + " (no train)"] + ["same"] * (len(cells) - 1)
        lines.append("| " + " | ".join([name.replace("|", "\\|"), *shown]) + " |")
    lines += ["", "Cells: mean ± sd over seeds [95% interval].", "", _work_line(curve), ""]
    return "\n".join(lines)


def _chart(curve: dict[str, Any]) -> str:
    lines, sizes = [], [float(s) for s in curve["sizes"]]
    for i, (name, c) in enumerate(curve["curves"].items()):
        pts = c["points"]
        lines.append(CurveLine(name, sizes, [p["mean"] for p in pts], [p["ci"][0] for p in pts],
                               [p["ci"][1] for p in pts], color(i), flat=not c["uses_train"]))
    marks = [(float(c["at"]), f"{c['a']} overtakes {c['b']}") for c in curve["crossovers"]
             if c["at"] is not None and not c["from_start"]]
    return curve_chart(lines, sizes=sizes, title=f"{curve['metric']} by train size", y_label=curve["metric"],
                       marks=marks)


def render_html(curve: dict[str, Any]) -> str:
    suite = curve["suite"]
    words = "".join(f"<li>{e(s)}</li>" for s in sentences(curve))
    note = f"<p class=\"note\">Note: {e(curve['metric_note'])}.</p>" if curve.get("metric_note") else ""
    rows = [[td(e(name)), *(td(e(c)) for c in (cells if uses else [cells[0] + " (no train)"] + ["same"] * (len(cells) - 1)))]
            for name, uses, cells in _rows(curve)]
    body = "\n".join([
        section("crossovers", "What the curve says", f"{note}<ul>{words}</ul>"),
        section("chart", "Curves", _chart(curve),
                note=e(f"{curve['metric']}, mean over {len(curve['seeds'])} seed(s); shaded: 95% interval resampling "
                       "test examples and seeds; dashed: strategies that do not use the train split")),
        section("table", "Table", table(["strategy", *_size_heads(curve)], rows),
                note="mean ± sd over seeds [95% interval]"),
        section("work", "Work", f"<p>{e(_work_line(curve))}</p>"),
    ])
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>sft-harness learning curve · {e(suite['name'])}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"<header><h1>Learning curve: {e(suite['name'])}</h1><p>{e(suite['task'])}, {suite['n_test']} test examples, "
            f"{suite['n_train']} train examples, metric {e(curve['metric'])}</p></header>\n<main>\n{body}\n</main>\n"
            f"<footer>Rendered by sft-harness from curve.json in {e(curve.get('run_id', ''))}.</footer>\n</body>\n</html>\n")


def render_curve(folder: Path) -> list[Path]:
    """Write curve.md and curve.html next to curve.json; returns their paths."""
    curve = load_curve(folder)
    md, html = Path(folder) / "curve.md", Path(folder) / "curve.html"
    write_text_atomic(md, render_markdown(curve))
    write_text_atomic(html, render_html(curve))
    return [md, html]
