"""report.html: one self-contained page (inline CSS, inline SVG, a little inline JS, no URLs).

Pure: `render_html(run, history)` returns the page text: the core sections here, the feature
sections from harness.report.sections, the per-example views in html_examples, the building blocks
(CSS, JS, tables) in html_parts. Every string that came from a suite or a model (inputs, targets,
outputs, labels, strategy, suite and model names, meta) passes through `e()` = html.escape with
quotes, so a payload in the data stays text on the page.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from harness.core.results import RunResults
from harness.core.runrecord import RunRecord
from harness.report.formats import svg
from harness.report.formats.html_examples import examples_section, winloss_section
from harness.report.formats.html_parts import CSS, JS, e, section, swatch, table, td
from harness.report.formats.markdown import recommendation_text
from harness.report.sections.answers import answer_names, answers_html
from harness.report.sections.forgetting import forgetting_html
from harness.report.sections.history import created_time
from harness.report.sections.judges import judges_html
from harness.report.sections.leakage import leakage_html
from harness.report.sections.seeds import seeds_html
from harness.report.sections.tradeoff import tradeoff_chart
from harness.report.views import (
    BREAK_EVEN_HEAD,
    SIGNIFICANCE_LEGEND,
    best_of,
    best_strategies,
    break_even_rows,
    cost_columns,
    describe_test,
    example_scores,
    fmt_value_ci,
    model_names,
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
        answers_html(results),
        judges_html(results),
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
    nav = "".join(f'<a href="#{anchor}">{e(label)}</a>' for anchor, label in NAV if f'id="{anchor}"' in body)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>sft-harness report · {e(results.suite.name)}</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n"
        f"{_header(results)}\n<nav>{nav}</nav>\n<main>\n{body}\n</main>\n"
        f"<footer>Rendered by sft-harness from results.json and predictions.jsonl in {e(run.dir.name)}.</footer>\n"
        f"<script>{JS}</script>\n</body>\n</html>\n"
    )


NAV = (
    ("comparison", "Comparison"),
    ("answers", "Answers"),
    ("judges", "Judges"),
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


def _header(results: RunResults) -> str:
    suite, model, device, decoding = results.suite, results.model, results.device, results.decoding
    facts: list[tuple[str, Any]] = [
        ("Suite", f"{suite.name} ({suite.task})"),
        ("Test examples", size_text(suite)),
        ("Suite sha256", suite.sha256[:12] or "—"),
        ("Model", model.name or "—"),
        ("Embedder", model.embedder or "—"),
        ("Device", " · ".join(str(x) for x in (device.get("type"), device.get("name"), model.dtype) if x) or "—"),
        ("Decoding", f"{decoding.decoding}, max {decoding.max_new_tokens} new tokens" if decoding else "—"),
        ("Seed", results.seed),
        ("Run", results.run_id),
        ("Created", results.created),
        ("Versions", ", ".join(f"{k} {v}" for k, v in results.versions.items() if v) or "—"),
    ]
    if results.limit is not None:
        facts.insert(2, ("Limit", results.limit))
    dl = "".join(f'<div{" class=wide" if k == "Versions" else ""}><dt>{e(k)}</dt><dd>{e(v)}</dd></div>' for k, v in facts)
    return (f'<header><h1>Evaluation report <span class="suite">{e(suite.name)}</span></h1>'
            f'<dl class="facts">{dl}</dl></header>')


def _recommendation(results: RunResults) -> str:
    rec = results.recommendation
    detail = []
    if rec.winner:
        detail.append(f"winner <strong>{e(rec.winner)}</strong>")
    if rec.metric:
        detail.append(f"on {e(rec.metric)}")
    if rec.runner_up:
        detail.append(f"runner-up {e(rec.runner_up)}")
    if rec.margin is not None:
        detail.append(f"margin {e(fmt_metric(rec.metric, rec.margin))}")
    if rec.winner:
        detail.append("significant" if rec.significant else "not significant")
    return ('<section id="recommendation" class="recommendation">'
            f'<div class="label">Recommendation</div><p class="rec-text">{e(recommendation_text(results))}</p>'
            f'<p class="rec-detail">{" · ".join(detail)}</p></section>')


def _comparison(results: RunResults, colors: dict[str, str]) -> str:
    metrics = results.metric_names()
    best = {m: best_strategies(results, m) for m in metrics}
    rows = []
    models, answers = model_names(results), answer_names(results)
    for name, s in results.strategies.items():
        cells = [td(swatch(colors[name]) + e(name), "name")] + ([td(e(models[name]), "name")] if models else [])
        cells += [td(e(answers[name]))] if answers else []
        for m in metrics:
            text = e(fmt_value_ci(m, s))
            if name in best[m]:
                text = f"<strong>{text}</strong>"
            if mark := significance_marker(results, name, m):
                text += f'<sup class="sig">{mark}</sup>'
            cells.append(td(text, "num best" if name in best[m] else "num"))
        cells += [td(e(s.n), "num"), td(e(fmt_share(s.invalid_rate)), "num"), td(e(s.errors), "num")]
        rows.append(cells)
    grid = table(["Strategy", *(["Model"] if models else []), *(["Answer"] if answers else []), *metrics, "n",
                  "invalid", "errors"], rows, "comparison")
    primary = results.primary_metric
    bars = []
    for name, s in results.strategies.items():
        lo, hi = s.interval(primary)
        bars.append(svg.Bar(name, s.value(primary), lo, hi, fmt_value_ci(primary, s), colors[name],
                            name in best.get(primary, [])))
    chart = svg.bar_chart(bars, axis_max=scale_max(primary), title=f"{primary} per strategy with 95% intervals")
    figure = f'<figure><figcaption>{e(primary)} per strategy, whiskers: 95% bootstrap interval</figcaption>{chart}</figure>'
    return section("comparison", "Comparison", grid + f'<p class="legend">{e(SIGNIFICANCE_LEGEND)}</p>' + figure)


def _training(results: RunResults, colors: dict[str, str]) -> str:
    lines, series = [], []
    for name, s in results.strategies.items():
        if s.retrieval:
            lines.append(f"<li>Retrieval · {e(retrieval_line(name, s.retrieval))}</li>")
    for name, s in results.strategies.items():
        if not s.training:
            continue
        lines.append(f"<li>Training · {e(training_line(name, s.training))}</li>")
        curve = [(float(step), float(loss)) for step, loss in s.training.loss_curve if loss is not None]
        if curve:
            series.append(svg.Series(name, curve, colors[name]))
    if not lines:
        return ""
    inner = f'<ul class="facts-list">{"".join(lines)}</ul>'
    if series:
        chart = svg.line_chart(series, title="training loss per step", x_label="step", y_label="training loss")
        inner += f"<figure><figcaption>Training loss</figcaption>{chart}</figure>"
    return section("training", "Retrieval and training", inner)


def _cost(results: RunResults, colors: dict[str, str]) -> str:
    cols = cost_columns(results)
    rows = [[td(e(name), "name")] + [td(e(fmt_num(s.cost.figure(k), d)), "num") for k, _, d in cols]
            for name, s in results.strategies.items()]
    inner = table(["Strategy", *[t for _, t, _ in cols]], rows, "cost numeric")
    if len(results.strategies) > 1 and (chart := tradeoff_chart(results, colors)):
        inner += f"<figure><figcaption>Quality against cost</figcaption>{chart}</figure>"
    if breaks := break_even_rows(results):
        inner += "<h3>Break-even</h3>" + table(BREAK_EVEN_HEAD, [[td(e(c)) for c in r] for r in breaks], "numeric")
    return section("cost", "Cost", inner)


def _slices(results: RunResults) -> str:
    tables = slice_tables(results)
    if not tables:
        return ""
    primary, names = results.primary_metric, list(results.strategies)
    parts = []
    for key, values in tables.items():
        rows = []
        for value, cells in values.items():
            scores = {n: cells[n][1] for n in names if n in cells}
            top = set(best_of({n: math.nan if v is None else v for n, v in scores.items()}, primary))
            row = [td(e(value), "name"), td(e(next(iter(cells.values()))[0]), "num")]
            for name in names:
                text = e(fmt_metric(primary, scores.get(name)))
                row.append(td(f"<strong>{text}</strong>" if name in top else text, "num"))
            rows.append(row)
        parts.append(f"<h3>by {e(key)}</h3>" + table([key, "n", *names], rows, "slices numeric"))
    return section("slices", "Slices", "".join(parts), f"{e(primary)} per slice; bold: best in the row.")


def _comparisons(results: RunResults) -> str:
    if not results.comparisons:
        return ""
    rows = []
    for c in results.comparisons:
        m = c.metric
        rows.append([
            td(e(c.a), "name"), td(e(c.b), "name"), td(e(m)), td(e(c.n), "num"),
            td(e(f"{fmt_signed(m, c.diff)} [{fmt_signed(m, c.ci[0])}, {fmt_signed(m, c.ci[1])}]"), "num"),
            td(e(fmt_p(c.p_value)), "num"), td(e(fmt_p(c.p_holm)), "num"), td(e(describe_test(c))),
            td('<span class="badge yes">yes</span>' if c.significant else '<span class="badge no">no</span>'),
        ])
    head = ["A", "B", "metric", "n", "A − B [95% CI]", "p", "p (Holm)", "test", "significant"]
    return section("pairwise", "Pairwise comparisons", table(head, rows, "pairwise"),
                   "Paired on the same examples; Holm's correction per metric across all pairs.")


def _history(results: RunResults, history: list[dict[str, Any]], colors: dict[str, str]) -> str:
    """The primary metric across the runs of this suite in the history file (index.jsonl lines)."""
    suite, primary = results.suite, results.primary_metric
    runs: dict[str, dict[str, Any]] = {}
    for entry in history:
        if entry.get("suite") != suite.name or not isinstance(entry.get("metrics"), dict):
            continue
        run = runs.setdefault(str(entry.get("run_id")), {"created": str(entry.get("created", "")), "values": {}, "sha": set()})
        run["sha"].add(entry.get("suite_sha256"))
        value = entry["metrics"].get(primary)
        if isinstance(value, (int, float)):
            run["values"][str(entry.get("strategy"))] = float(value)
    current = runs.setdefault(results.run_id, {"created": results.created, "values": {}, "sha": set()})
    current["sha"].add(suite.sha256)
    for name, s in results.strategies.items():
        if math.isfinite(s.value(primary)):
            current["values"][name] = s.value(primary)
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
        ticks = ticks[:: math.ceil(len(ticks) / 8)]
    chart = svg.line_chart(series, title=f"{primary} across runs", x_label="run", y_label=primary, x_ticks=ticks)
    shas = {sha for _, r in ordered for sha in r["sha"] if sha}
    note = f"{e(primary)} per strategy over {len(ordered)} runs of suite {e(suite.name)}."
    if len(shas) > 1:
        note += " The suite's files changed between some of these runs (sha256 differs): compare with care."
    return section("history", "History", chart, note)


def _short_date(created: str) -> str:
    try:
        return datetime.fromisoformat(created).strftime("%m-%d %H:%M")
    except ValueError:
        return ""
