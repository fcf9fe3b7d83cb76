"""report.html: one self-contained page (inline CSS, inline SVG, a little inline JS, no URLs).

Pure: `render_html(run, history)` returns the page text: the sections of results here, the
per-example views in harness.report.html_examples, the building blocks (CSS, JS, tables) in
harness.report.html_parts. Every string that came from a suite or a model (inputs, targets,
outputs, labels, strategy, suite and model names, meta) passes through `e()` = html.escape with
quotes, so a payload in the data stays text on the page.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from harness.core.runrecord import RunRecord
from harness.report import svg
from harness.report.forgetting import forgetting_html
from harness.report.history import created_time
from harness.report.html_examples import examples_section, winloss_section
from harness.report.html_parts import CSS, JS, e, section, swatch, table, td
from harness.report.leakage import leakage_html
from harness.report.seeds import seeds_html
from harness.report.tradeoff import tradeoff_chart
from harness.report.views import (
    BREAK_EVEN_HEAD,
    SIGNIFICANCE_LEGEND,
    best_strategies,
    break_even_rows,
    cost_columns,
    describe_test,
    example_scores,
    fmt_value_ci,
    metric_names,
    metric_value,
    model_names,
    primary_metric,
    recommendation_text,
    retrieval_line,
    scale_max,
    significance_marker,
    size_text,
    slice_tables,
    training_line,
)
from harness.scoring.fmt import fmt_metric, fmt_num, fmt_p, fmt_share, fmt_signed


def render_html(run: RunRecord, history: list[dict[str, Any]] | None = None) -> str:
    results = run.results
    colors = {name: svg.color(i) for i, name in enumerate(run.strategies)}
    scores = example_scores(run)
    sections = [
        _recommendation(results),
        _comparison(results, colors),
        seeds_html(results),
        leakage_html(results),
        forgetting_html(results),
        _training(results, colors),
        winloss_section(run, scores),
        _cost(results, colors),
        _slices(results),
        _comparisons(results),
        _history(results, history or [], colors),
        examples_section(run, scores),
    ]
    body = "\n".join(s for s in sections if s)
    nav = "".join(
        f'<a href="#{anchor}">{e(label)}</a>'
        for anchor, label in NAV
        if f'id="{anchor}"' in body
    )
    suite = results["suite"]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>sft-harness report · {e(suite.get('name', ''))}</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n"
        f"{_header(results)}\n<nav>{nav}</nav>\n<main>\n{body}\n</main>\n"
        f"<footer>Rendered by sft-harness from results.json and predictions.jsonl in {e(run.dir.name)}.</footer>\n"
        f"<script>{JS}</script>\n</body>\n</html>\n"
    )


NAV = (
    ("comparison", "Comparison"),
    ("seeds", "Seeds"),
    ("leakage", "Leakage"),
    ("forgetting", "Forgetting"),
    ("training", "Retrieval & training"),
    ("winloss", "Win/loss"),
    ("cost", "Cost"),
    ("slices", "Slices"),
    ("pairwise", "Pairwise tests"),
    ("history", "History"),
    ("examples", "Examples"),
)



# --------------------------------------------------------------------------- sections


def _header(results: dict[str, Any]) -> str:
    suite, model = results.get("suite", {}), results.get("model") or {}
    device = results.get("device") or {}
    decoding = results.get("decoding") or {}
    versions = results.get("versions") or {}
    facts = [
        ("Suite", f"{suite.get('name', '')} ({suite.get('task', '')})"),
        ("Test examples", size_text(suite)),
        ("Suite sha256", str(suite.get("sha256", ""))[:12] or "—"),
        ("Model", model.get("name", "—")),
        ("Embedder", model.get("embedder") or "—"),
        ("Device", " · ".join(str(x) for x in (device.get("type"), device.get("name"), model.get("dtype")) if x) or "—"),
        ("Decoding", f"{decoding.get('decoding', 'greedy')}, max {decoding.get('max_new_tokens', '—')} new tokens"),
        ("Seed", results.get("seed", "—")),
        ("Run", results.get("run_id", "—")),
        ("Created", results.get("created", "—")),
        ("Versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v) or "—"),
    ]
    if results.get("limit") is not None:
        facts.insert(2, ("Limit", results["limit"]))
    dl = "".join(
        f'<div{" class=wide" if k == "Versions" else ""}><dt>{e(k)}</dt><dd>{e(v)}</dd></div>' for k, v in facts
    )
    return (
        f'<header><h1>Evaluation report <span class="suite">{e(suite.get("name", ""))}</span></h1>'
        f'<dl class="facts">{dl}</dl></header>'
    )


def _recommendation(results: dict[str, Any]) -> str:
    rec = results.get("recommendation") or {}
    detail = []
    if rec.get("winner"):
        detail.append(f"winner <strong>{e(rec['winner'])}</strong>")
    if rec.get("metric"):
        detail.append(f"on {e(rec['metric'])}")
    if rec.get("runner_up"):
        detail.append(f"runner-up {e(rec['runner_up'])}")
    if rec.get("margin") is not None:
        detail.append(f"margin {e(fmt_metric(str(rec.get('metric', '')), rec['margin']))}")
    if rec.get("significant") is not None:
        detail.append("significant" if rec["significant"] else "not significant")
    return (
        '<section id="recommendation" class="recommendation">'
        f'<div class="label">Recommendation</div><p class="rec-text">{e(recommendation_text(results))}</p>'
        f'<p class="rec-detail">{" · ".join(detail)}</p></section>'
    )


def _comparison(results: dict[str, Any], colors: dict[str, str]) -> str:
    metrics = metric_names(results)
    strategies = results["strategies"]
    best = {m: best_strategies(results, m) for m in metrics}
    rows = []
    models = model_names(results)
    for name, s in strategies.items():
        cells = [td(swatch(colors[name]) + e(name), "name")] + ([td(e(models[name]), "name")] if models else [])
        for m in metrics:
            text = e(fmt_value_ci(m, s))
            if name in best[m]:
                text = f"<strong>{text}</strong>"
            mark = significance_marker(results, name, m)
            if mark:
                text += f'<sup class="sig">{mark}</sup>'
            cells.append(td(text, "num best" if name in best[m] else "num"))
        cells.append(td(e(s.get("n", "—")), "num"))
        invalid = s.get("invalid_rate")
        cells.append(td(e(fmt_share(invalid)), "num"))
        cells.append(td(e(s.get("errors", 0)), "num"))
        rows.append(cells)
    grid = table(["Strategy", *(["Model"] if models else []), *metrics, "n", "invalid", "errors"], rows, "comparison")
    primary = primary_metric(results)
    bars = []
    for name, s in strategies.items():
        value, lo, hi = metric_value(s, primary)
        bars.append(svg.Bar(name, value, lo, hi, fmt_value_ci(primary, s), colors[name], name in best.get(primary, [])))
    chart = svg.bar_chart(bars, axis_max=scale_max(primary), title=f"{primary} per strategy with 95% intervals")
    figure = f'<figure><figcaption>{e(primary)} per strategy, whiskers: 95% bootstrap interval</figcaption>{chart}</figure>'
    return section("comparison", "Comparison", grid + f'<p class="legend">{e(SIGNIFICANCE_LEGEND)}</p>' + figure)


def _training(results: dict[str, Any], colors: dict[str, str]) -> str:
    strategies = results["strategies"]
    lines, series = [], []
    for name, s in strategies.items():
        if s.get("retrieval"):
            lines.append(f"<li>Retrieval · {e(retrieval_line(name, s['retrieval']))}</li>")
    for name, s in strategies.items():
        training = s.get("training")
        if not training:
            continue
        lines.append(f"<li>Training · {e(training_line(name, training))}</li>")
        curve = [(float(p[0]), float(p[1])) for p in training.get("loss_curve") or [] if len(p) >= 2]
        if curve:
            series.append(svg.Series(name, curve, colors[name]))
    if not lines:
        return ""
    inner = f'<ul class="facts-list">{"".join(lines)}</ul>'
    if series:
        chart = svg.line_chart(series, title="training loss per step", x_label="step", y_label="training loss")
        inner += f"<figure><figcaption>Training loss</figcaption>{chart}</figure>"
    return section("training", "Retrieval and training", inner)



def _cost(results: dict[str, Any], colors: dict[str, str]) -> str:
    cols = cost_columns(results)
    rows = []
    for name, s in results["strategies"].items():
        cost = s.get("cost") or {}
        rows.append([td(e(name), "name")] + [td(e(fmt_num(cost.get(k), d)), "num") for k, _, d in cols])
    inner = table(["Strategy", *[t for _, t, _ in cols]], rows, "cost numeric")
    if len(results["strategies"]) > 1 and (chart := tradeoff_chart(results, colors)):
        inner += f"<figure><figcaption>Quality against cost</figcaption>{chart}</figure>"
    if breaks := break_even_rows(results):
        inner += "<h3>Break-even</h3>" + table(BREAK_EVEN_HEAD, [[td(e(c)) for c in r] for r in breaks], "numeric")
    return section("cost", "Cost", inner)


def _slices(results: dict[str, Any]) -> str:
    tables = slice_tables(results)
    if not tables:
        return ""
    primary = primary_metric(results)
    names = list(results["strategies"])
    parts = []
    for key, values in tables.items():
        rows = []
        for value, cells in values.items():
            scores = {n: cells[n].get("metrics", {}).get(primary) for n in names if n in cells}
            finite = [float(v) for v in scores.values() if v is not None and math.isfinite(float(v))]
            top = max(finite) if finite else None
            n = next((c.get("n") for c in cells.values() if c.get("n") is not None), "—")
            row = [td(e(value), "name"), td(e(n), "num")]
            for name in names:
                v = scores.get(name)
                text = e(fmt_metric(primary, v))
                is_top = v is not None and top is not None and float(v) == top
                row.append(td(f"<strong>{text}</strong>" if is_top else text, "num"))
            rows.append(row)
        parts.append(f"<h3>by {e(key)}</h3>" + table([key, "n", *names], rows, "slices numeric"))
    return section("slices", "Slices", "".join(parts), f"{e(primary)} per slice; bold: best in the row.")


def _comparisons(results: dict[str, Any]) -> str:
    comps = results.get("comparisons") or []
    if not comps:
        return ""
    rows = []
    for c in comps:
        m = str(c.get("metric", ""))
        ci = c.get("ci") or [None, None]
        test = describe_test(c)
        sig = bool(c.get("significant"))
        rows.append([
            td(e(c.get("a", "")), "name"),
            td(e(c.get("b", "")), "name"),
            td(e(m)),
            td(e(c.get("n", "—")), "num"),
            td(e(f"{fmt_signed(m, c.get('diff'))} [{fmt_signed(m, ci[0])}, {fmt_signed(m, ci[1])}]"), "num"),
            td(e(fmt_p(c.get("p_value"))), "num"),
            td(e(fmt_p(c.get("p_holm"))), "num"),
            td(e(test)),
            td('<span class="badge yes">yes</span>' if sig else '<span class="badge no">no</span>'),
        ])
    head = ["A", "B", "metric", "n", "A − B [95% CI]", "p", "p (Holm)", "test", "significant"]
    return section("pairwise", "Pairwise comparisons", table(head, rows, "pairwise"),
                    "Paired on the same examples; Holm's correction per metric across all pairs.")


def _history(results: dict[str, Any], history: list[dict[str, Any]], colors: dict[str, str]) -> str:
    suite = results["suite"]
    primary = primary_metric(results)
    runs: dict[str, dict[str, Any]] = {}
    for entry in history:
        if entry.get("suite") != suite.get("name") or not isinstance(entry.get("metrics"), dict):
            continue
        run = runs.setdefault(str(entry.get("run_id")), {"created": str(entry.get("created", "")), "values": {}, "sha": set()})
        run["sha"].add(entry.get("suite_sha256"))
        value = entry["metrics"].get(primary)
        if isinstance(value, (int, float)):
            run["values"][str(entry.get("strategy"))] = float(value)
    current = runs.setdefault(str(results.get("run_id")), {"created": str(results.get("created", "")), "values": {}, "sha": set()})
    current["sha"].add(suite.get("sha256"))
    for name, s in results["strategies"].items():
        value = metric_value(s, primary)[0]
        if math.isfinite(value):
            current["values"][name] = value
    if len(runs) < 2:
        return ""
    ordered = sorted(runs.items(), key=lambda kv: created_time(kv[1]["created"]))
    names = list(dict.fromkeys([n for _, r in ordered for n in r["values"]]))
    series = []
    for i, name in enumerate(names):
        pts = [(float(x), r["values"][name]) for x, (_, r) in enumerate(ordered) if name in r["values"]]
        series.append(svg.Series(name, pts, colors.get(name, svg.color(len(colors) + i))))
    ticks = [(float(x), _short_date(r["created"]) or rid[:10]) for x, (rid, r) in enumerate(ordered)]
    if len(ticks) > 8:  # keep the axis readable: label about eight runs
        step = math.ceil(len(ticks) / 8)
        ticks = ticks[::step]
    chart = svg.line_chart(series, title=f"{primary} across runs", x_label="run", y_label=primary, x_ticks=ticks)
    shas = {sha for _, r in ordered for sha in r["sha"] if sha}
    note = f"{e(primary)} per strategy over {len(ordered)} runs of suite {e(suite.get('name', ''))}."
    if len(shas) > 1:
        note += " The suite's files changed between some of these runs (sha256 differs): compare with care."
    return section("history", "History", chart, note)


def _short_date(created: str) -> str:
    try:
        return datetime.fromisoformat(created).strftime("%m-%d %H:%M")
    except ValueError:
        return ""

