"""Reports rendered from a run folder alone: report.md, report.html, summary.csv, and the rich
summary printed at the end of `sft-harness run`.

`render_all` reads `results.json` + `predictions.jsonl` (no suite, no model), so
`sft-harness report RUN_DIR` re-renders any finished run. The renderers are pure functions of the
loaded run; only `render_all` touches the disk, and it writes each file atomically.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.core.cache import write_text_atomic
from harness.core.runrecord import RunRecord, load_run
from harness.report.forgetting import forgetting_markdown
from harness.report.html import render_html
from harness.report.leakage import leakage_markdown
from harness.report.seeds import seeds_markdown
from harness.report.views import (
    BREAK_EVEN_HEAD,
    SIGNIFICANCE_LEGEND,
    best_strategies,
    break_even_rows,
    cost_columns,
    describe_test,
    fmt_value_ci,
    metric_names,
    metric_value,
    model_names,
    primary_metric,
    recommendation_text,
    retrieval_line,
    significance_marker,
    size_text,
    slice_tables,
    training_line,
)
from harness.scoring.fmt import fmt_metric, fmt_num, fmt_p, fmt_share, fmt_signed

__all__ = ["RunRecord", "load_run", "render_all", "render_markdown", "render_csv", "render_html", "print_summary"]


def render_all(run_dir: Path, history: list[dict[str, Any]] | None = None) -> list[Path]:
    """Write report.md, report.html and summary.csv into the run folder; return their paths."""
    run = load_run(Path(run_dir))
    outputs = {
        "report.md": render_markdown(run),
        "report.html": render_html(run, history),
        "summary.csv": render_csv(run),
    }
    paths = []
    for name, text in outputs.items():
        path = run.dir / name
        write_text_atomic(path, text)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- markdown


def md(value: Any) -> str:
    """A table-cell-safe markdown string: no raw HTML, no pipe or newline breaking the row."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _md_table(head: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["l"] + ["r"] * (len(head) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(run: RunRecord) -> str:
    results = run.results
    suite, model = results["suite"], results.get("model") or {}
    strategies = results["strategies"]
    metrics = metric_names(results)
    out = [f"# Evaluation report: {md(suite.get('name', ''))}", ""]
    out += [f"> **Recommendation:** {md(recommendation_text(results))}", ""]
    out += [
        f"Suite **{md(suite.get('name', ''))}** ({md(suite.get('task', ''))}, {md(size_text(suite))}, "
        f"sha256 `{md(str(suite.get('sha256', ''))[:12])}`) · model **{md(model.get('name', '?'))}** · "
        f"seed {md(results.get('seed', '?'))} · run `{md(results.get('run_id', '?'))}` · {md(results.get('created', ''))}",
        "",
    ]

    out += ["## Comparison", ""]
    best = {m: best_strategies(results, m) for m in metrics}
    rows = []
    models = model_names(results)
    for name, s in strategies.items():
        row = [md(name)] + ([md(models[name])] if models else [])
        for m in metrics:
            cell = fmt_value_ci(m, s)
            cell = f"**{cell}**" if name in best[m] else cell
            row.append(cell + significance_marker(results, name, m))
        invalid = s.get("invalid_rate")
        row += [md(s.get("n", "—")), fmt_share(invalid), md(s.get("errors", 0))]
        rows.append(row)
    out += [_md_table(["Strategy", *(["Model"] if models else []), *map(md, metrics), "n", "invalid", "errors"], rows), "", f"_{SIGNIFICANCE_LEGEND}._", ""]
    out += seeds_markdown(results)  # multi-seed strategies: per-seed values, spread
    out += leakage_markdown(results)
    out += forgetting_markdown(results)

    cols = cost_columns(results)
    out += ["## Cost", ""]
    rows = [[md(name)] + [fmt_num((s.get("cost") or {}).get(k), d) for k, _, d in cols] for name, s in strategies.items()]
    out += [_md_table(["Strategy", *[t for _, t, _ in cols]], rows), ""]
    if breaks := break_even_rows(results):
        out += ["### Break-even", "", _md_table(BREAK_EVEN_HEAD, [[md(c) for c in r] for r in breaks]), ""]

    retrieval = [retrieval_line(n, s["retrieval"]) for n, s in strategies.items() if s.get("retrieval")]
    if retrieval:
        out += ["## Retrieval", "", *[f"- {md(x)}" for x in retrieval], ""]
    training = [training_line(n, s["training"]) for n, s in strategies.items() if s.get("training")]
    if training:
        out += ["## Training", "", *[f"- {md(x)}" for x in training], ""]

    out += _md_slices(results)
    out += _md_comparisons(results)
    return "\n".join(out).rstrip() + "\n"


def _md_slices(results: dict[str, Any]) -> list[str]:
    tables = slice_tables(results)
    if not tables:
        return []
    primary = primary_metric(results)
    names = list(results["strategies"])
    out = [f"## Slices ({md(primary)})", ""]
    for key, values in tables.items():
        rows = []
        for value, cells in values.items():
            scores = [cells.get(n, {}).get("metrics", {}).get(primary) for n in names]
            finite = [float(v) for v in scores if v is not None and math.isfinite(float(v))]
            top = max(finite) if finite else None
            n = next((c.get("n") for c in cells.values() if c.get("n") is not None), "—")
            row = [md(value), md(n)]
            for v in scores:
                text = fmt_metric(primary, v)
                row.append(f"**{text}**" if v is not None and top is not None and float(v) == top else text)
            rows.append(row)
        out += [f"### by {md(key)}", "", _md_table([md(key), "n", *map(md, names)], rows), ""]
    return out


def _md_comparisons(results: dict[str, Any]) -> list[str]:
    comps = results.get("comparisons") or []
    if not comps:
        return []
    rows = []
    for c in comps:
        m = str(c.get("metric", ""))
        ci = c.get("ci") or [None, None]
        test = describe_test(c)
        rows.append([
            md(c.get("a", "")), md(c.get("b", "")), md(m), md(c.get("n", "—")),
            f"{fmt_signed(m, c.get('diff'))} [{fmt_signed(m, ci[0])}, {fmt_signed(m, ci[1])}]",
            fmt_p(c.get("p_value")), fmt_p(c.get("p_holm")), md(test),
            "**yes**" if c.get("significant") else "no",
        ])
    head = ["A", "B", "metric", "n", "A − B [95% CI]", "p", "p (Holm)", "test", "significant"]
    return ["## Pairwise comparisons", "", _md_table(head, rows, ["l", "l", "l", "r", "r", "r", "r", "l", "l"]), ""]


# --------------------------------------------------------------------------- csv


CSV_HEAD = ["strategy", "metric", "value", "ci_low", "ci_high", "n"]


def _csv_safe(text: str) -> str:
    # A cell starting with = + - @ is a formula to spreadsheets; strategy names come from users.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_csv(run: RunRecord) -> str:
    results = run.results
    cols = cost_columns(results)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEAD + [k for k, _, _ in cols])
    for name, s in results["strategies"].items():
        cost = s.get("cost") or {}
        for m in metric_names(results):
            value, lo, hi = metric_value(s, m)
            writer.writerow(
                [_csv_safe(name), m, *(_csv_num(x) for x in (value, lo, hi)), s.get("n", "")]
                + [_csv_num(cost.get(k)) for k, _, _ in cols]
            )
    return buf.getvalue()


def _csv_num(x: Any) -> str:
    if x is None:
        return ""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(v) else repr(v) if not v.is_integer() else str(int(v))


# --------------------------------------------------------------------------- terminal


def print_summary(results: dict[str, Any], console: Console) -> None:
    """The comparison table shown at the end of `run`: value [CI], best in bold, then the advice."""
    metrics = metric_names(results)
    suite = results.get("suite", {})
    table = Table(title=Text(f"{suite.get('name', '')} ({suite.get('task', '')})"), title_justify="left")
    table.add_column("strategy", style="cyan", no_wrap=True)
    for m in metrics:
        table.add_column(Text(m), justify="right", no_wrap=True)
    table.add_column("n", justify="right")
    table.add_column("examples/s", justify="right")
    best = {m: best_strategies(results, m) for m in metrics}
    for name, s in results.get("strategies", {}).items():
        cells: list[Text] = [Text(name)]
        for m in metrics:
            cell = Text(fmt_value_ci(m, s), style="bold green" if name in best[m] else "")
            mark = significance_marker(results, name, m)
            if mark:
                cell.append(mark, style="red")
            cells.append(cell)
        cells.append(Text(str(s.get("n", "—"))))
        cells.append(Text(fmt_num((s.get("cost") or {}).get("examples_per_s"), 2)))
        table.add_row(*cells)
    console.print(table)
    console.print(Text(SIGNIFICANCE_LEGEND.replace("bold", "bold green"), style="dim"))
    line = Text("Recommendation: ", style="bold")
    line.append(recommendation_text(results))
    console.print(line)
