"""report.html: one self-contained page (inline CSS, inline SVG, a little inline JS, no URLs).

Pure: `render_html(run, history)` returns the page text. Every string that came from a suite or a
model (inputs, targets, outputs, labels, strategy, suite and model names, meta) passes through
`e()` = html.escape with quotes, so a payload in the data stays text on the page.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from html import escape
from typing import Any

from harness.report import svg
from harness.report.history import created_time
from harness.report.views import (
    SIGNIFICANCE_LEGEND,
    Run,
    best_strategies,
    cost_columns,
    describe_test,
    example_scores,
    fmt_metric,
    fmt_num,
    fmt_p,
    fmt_value_ci,
    metric_names,
    metric_value,
    primary_metric,
    recommendation_text,
    retrieval_line,
    scale_max,
    significance_marker,
    size_text,
    slice_tables,
    training_line,
)
from harness.scoring.metrics import EXAMPLE_SCORE_NAME, graded


def e(value: Any) -> str:
    return escape(str(value), quote=True)


def render_html(run: Run, history: list[dict[str, Any]] | None = None) -> str:
    results = run.results
    colors = {name: svg.color(i) for i, name in enumerate(run.strategies)}
    scores = example_scores(run)
    sections = [
        _recommendation(results),
        _comparison(results, colors),
        _training(results, colors),
        _winloss(run, scores),
        _cost(results),
        _slices(results),
        _comparisons(results),
        _history(results, history or [], colors),
        _examples(run, scores),
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
    ("training", "Retrieval & training"),
    ("winloss", "Win/loss"),
    ("cost", "Cost"),
    ("slices", "Slices"),
    ("pairwise", "Pairwise tests"),
    ("history", "History"),
    ("examples", "Examples"),
)


def _section(anchor: str, title: str, inner: str, note: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{anchor}">\n<h2>{title}</h2>\n{note_html}{inner}\n</section>'


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """Header strings are escaped here; cells arrive as HTML their builders escaped."""
    ths = "".join(f"<th>{e(h)}</th>" for h in head)
    trs = "\n".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return f'<div class="table-wrap"><table class="{cls}"><thead><tr>{ths}</tr></thead>\n<tbody>\n{trs}\n</tbody></table></div>'


def _td(html: str, cls: str = "") -> str:
    return f'<td class="{cls}">{html}</td>' if cls else f"<td>{html}</td>"


def _swatch(color: str) -> str:
    return f'<span class="swatch" style="background:{color}"></span>'


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
    for name, s in strategies.items():
        cells = [_td(_swatch(colors[name]) + e(name), "name")]
        for m in metrics:
            text = e(fmt_value_ci(m, s))
            if name in best[m]:
                text = f"<strong>{text}</strong>"
            mark = significance_marker(results, name, m)
            if mark:
                text += f'<sup class="sig">{mark}</sup>'
            cells.append(_td(text, "num best" if name in best[m] else "num"))
        cells.append(_td(e(s.get("n", "—")), "num"))
        invalid = s.get("invalid_rate")
        cells.append(_td(e(f"{100 * float(invalid):.1f}%" if invalid is not None else "—"), "num"))
        cells.append(_td(e(s.get("errors", 0)), "num"))
        rows.append(cells)
    table = _table(["Strategy", *metrics, "n", "invalid", "errors"], rows, "comparison")
    primary = primary_metric(results)
    bars = []
    for name, s in strategies.items():
        value, lo, hi = metric_value(s, primary)
        bars.append(svg.Bar(name, value, lo, hi, fmt_value_ci(primary, s), colors[name], name in best.get(primary, [])))
    chart = svg.bar_chart(bars, axis_max=scale_max(primary), title=f"{primary} per strategy with 95% intervals")
    figure = f'<figure><figcaption>{e(primary)} per strategy, whiskers: 95% bootstrap interval</figcaption>{chart}</figure>'
    return _section("comparison", "Comparison", table + f'<p class="legend">{e(SIGNIFICANCE_LEGEND)}</p>' + figure)


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
    return _section("training", "Retrieval and training", inner)


def _winloss(run: Run, scores: dict[str, dict[str, float]]) -> str:
    strategies = run.strategies
    if len(strategies) < 2:
        return ""
    is_graded = graded(run.task)
    score_name = EXAMPLE_SCORE_NAME.get(run.task, "score")
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    for a in strategies:
        for b in strategies:
            if a != b:
                shared = scores[a].keys() & scores[b].keys()
                wins = sum(1 for i in shared if scores[a][i] > scores[b][i])
                counts[(a, b)] = (wins, len(shared))
    top = max((w for w, _ in counts.values()), default=0) or 1
    rows = []
    for a in strategies:
        cells = [f'<th scope="row">{e(a)}</th>']
        for b in strategies:
            if a == b:
                cells.append('<td class="diag">—</td>')
                continue
            wins, n = counts[(a, b)]
            alpha = 0.08 + 0.5 * wins / top
            title = (f"{a} scored higher than {b} on {wins} of {n} shared examples" if is_graded
                     else f"{a} right, {b} wrong on {wins} of {n} shared examples")
            cells.append(
                f'<td class="num wl" style="background:rgba(37,99,235,{alpha:.2f})" title="{e(title)}">{wins}</td>'
            )
        rows.append(cells)
    if is_graded:
        head = ["higher ↓ / lower →", *strategies]
        note = (f"Cell (row, column): examples where the row strategy's {score_name} is higher than the column "
                "strategy's. Compare a cell with its mirror across the diagonal; the rest are ties.")
    else:
        head = ["right ↓ / wrong →", *strategies]
        note = ("Cell (row, column): examples the row strategy got right and the column strategy got wrong "
                "(the stored answer against the target). Compare a cell with its mirror across the diagonal.")
    return _section("winloss", "Win/loss matrix", _table(head, rows, "winloss"), e(note))


def _cost(results: dict[str, Any]) -> str:
    cols = cost_columns(results)
    rows = []
    for name, s in results["strategies"].items():
        cost = s.get("cost") or {}
        rows.append([_td(e(name), "name")] + [_td(e(fmt_num(cost.get(k), d)), "num") for k, _, d in cols])
    return _section("cost", "Cost", _table(["Strategy", *[t for _, t, _ in cols]], rows, "cost numeric"))


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
            row = [_td(e(value), "name"), _td(e(n), "num")]
            for name in names:
                v = scores.get(name)
                text = e(fmt_metric(primary, v))
                is_top = v is not None and top is not None and float(v) == top
                row.append(_td(f"<strong>{text}</strong>" if is_top else text, "num"))
            rows.append(row)
        parts.append(f"<h3>by {e(key)}</h3>" + _table([key, "n", *names], rows, "slices numeric"))
    return _section("slices", "Slices", "".join(parts), f"{e(primary)} per slice; bold: best in the row.")


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
            _td(e(c.get("a", "")), "name"),
            _td(e(c.get("b", "")), "name"),
            _td(e(m)),
            _td(e(c.get("n", "—")), "num"),
            _td(e(f"{_signed(m, c.get('diff'))} [{_signed(m, ci[0])}, {_signed(m, ci[1])}]"), "num"),
            _td(e(fmt_p(c.get("p_value"))), "num"),
            _td(e(fmt_p(c.get("p_holm"))), "num"),
            _td(e(test)),
            _td('<span class="badge yes">yes</span>' if sig else '<span class="badge no">no</span>'),
        ])
    head = ["A", "B", "metric", "n", "A − B [95% CI]", "p", "p (Holm)", "test", "significant"]
    return _section("pairwise", "Pairwise comparisons", _table(head, rows, "pairwise"),
                    "Paired on the same examples; Holm's correction per metric across all pairs.")


def _signed(metric: str, value: Any) -> str:
    text = fmt_metric(metric, value)
    return text if text.startswith("-") or text == "—" else "+" + text


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
    return _section("history", "History", chart, note)


def _short_date(created: str) -> str:
    try:
        return datetime.fromisoformat(created).strftime("%m-%d %H:%M")
    except ValueError:
        return ""


def _examples(run: Run, scores: dict[str, dict[str, float]]) -> str:
    names = run.strategies
    by_strategy = {n: {str(ln["example_id"]): ln for ln in run.predictions_for(n)} for n in names}
    ids = list(dict.fromkeys(i for n in names for i in by_strategy[n]))
    show_answer = run.task in ("classification", "extraction")
    is_graded = graded(run.task)
    score_name = EXAMPLE_SCORE_NAME.get(run.task, "score")
    rows = []
    n_disagree = 0
    for i in ids:
        first = next(by_strategy[n][i] for n in names if i in by_strategy[n])
        here = [scores[n][i] for n in names if i in scores[n]]
        disagree = bool(here) and max(here) - min(here) >= DISAGREE_SPREAD
        n_disagree += disagree
        meta = first.get("meta") or {}
        meta_html = "".join(f'<span class="meta">{e(k)}: {e(v)}</span>' for k, v in meta.items())
        cells = [
            f'<td class="id">{e(i)}{meta_html}</td>',
            f'<td><div class="text">{e(first.get("input", ""))}</div></td>',
            f'<td><div class="text">{e(_target_text(first.get("target")))}</div></td>',
        ]
        for n in names:
            line = by_strategy[n].get(i)
            if line is None:
                cells.append('<td class="missing">no prediction</td>')
                continue
            score = scores[n].get(i, 0.0)
            verdict = "right" if score >= 1.0 else "wrong" if score <= 0.0 else "partial"
            badge = _badge(verdict, score, score_name if is_graded else "")
            extra = ""
            if show_answer:
                answer = line.get("answer")
                shown = "invalid" if answer is None else (json.dumps(answer, ensure_ascii=False) if isinstance(answer, dict) else answer)
                extra += f'<div class="answer">answer: {e(shown)}</div>'
            if line.get("error"):
                extra += f'<div class="error">error: {e(line["error"])}</div>'
            cells.append(f'<td class="{verdict}">{badge}<div class="text">{e(line.get("output", ""))}</div>{extra}</td>')
        rows.append(f'<tr data-disagree="{int(disagree)}">' + "".join(cells) + "</tr>")
    head = "".join(f"<th>{e(h)}</th>" for h in ["example", "input", "target", *names])
    disagree_what = (f"{score_name} differs by {DISAGREE_SPREAD:g} or more" if is_graded
                     else "one right, another wrong")
    controls = (
        '<div class="controls"><label><input type="checkbox" id="only-disagree"> only examples where strategies '
        f'disagree ({disagree_what}: {n_disagree})</label>'
        '<input type="search" id="example-search" placeholder="filter by text…" aria-label="filter examples by text">'
        f'<span id="example-count">{len(ids)} examples</span></div>'
    )
    table = (
        f'<div class="table-wrap"><table id="examples-table" class="examples"><thead><tr>{head}</tr></thead>'
        f'<tbody>\n{chr(10).join(rows)}\n</tbody></table></div>'
    )
    note = (f"Each answer's {score_name} against the target (best over references). " if is_graded
            else "Right or wrong is the stored answer against the target. ") + "Add #disagree to the URL to open filtered."
    return _section("examples", "Per-example results", controls + table, e(note))


# Graded scores differ a little on almost every example; "disagree" means a difference a reader
# would see: one answer half right or better where another is not (exact tasks: 0 vs 1).
DISAGREE_SPREAD = 0.5


def _badge(verdict: str, score: float, score_name: str) -> str:
    if not score_name:  # exact tasks: right or wrong
        return '<span class="badge yes">✓ right</span>' if verdict == "right" else '<span class="badge no">✗ wrong</span>'
    css = {"right": "yes", "wrong": "no", "partial": "part"}[verdict]
    return f'<span class="badge {css}">{e(score_name)} {score:.2f}</span>'


def _target_text(target: Any) -> str:
    if isinstance(target, list):
        return " | ".join(str(t) for t in target)
    if isinstance(target, dict):
        return json.dumps(target, ensure_ascii=False)
    return "" if target is None else str(target)


CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f6f7f9;--card:#fff;--accent:#2563eb;--ok:#15803d;--bad:#b91c1c}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
header,nav,main,footer{max-width:1200px;margin:0 auto;padding:0 24px}
header{padding-top:28px}
h1{font-size:24px;margin:0 0 12px;font-weight:650}
h1 .suite{color:var(--accent)}
h2{font-size:18px;margin:0 0 12px;font-weight:650}
h3{font-size:14px;margin:16px 0 8px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:6px 18px;margin:0 0 12px}
.facts div{min-width:0}
.facts div.wide{grid-column:span 3}
.facts dt{font-size:11px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.facts dd{margin:0;overflow-wrap:anywhere}
nav{display:flex;flex-wrap:wrap;gap:4px 16px;padding-top:4px;padding-bottom:8px;border-bottom:1px solid var(--line);margin-bottom:18px}
nav a{color:var(--accent);text-decoration:none;font-size:13px}
nav a:hover{text-decoration:underline}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:18px 20px;margin:0 0 18px}
.recommendation{border-left:5px solid var(--accent);background:#eff6ff}
.recommendation .label{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:var(--accent);font-weight:700}
.rec-text{font-size:17px;margin:4px 0 6px;font-weight:550}
.rec-detail{margin:0;color:var(--muted)}
.note,.legend{color:var(--muted);font-size:12.5px;margin:0 0 10px}
.legend{margin-top:8px}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{background:#f1f5f9;font-weight:600;white-space:nowrap;position:sticky;top:0}
table.numeric thead th:not(:first-child){text-align:right}
table.cost thead th{white-space:normal;vertical-align:bottom}
tbody tr:nth-child(even){background:#fafbfc}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.name{font-weight:550;white-space:nowrap}
td.best{background:#ecfdf5}
sup.sig{color:var(--bad);margin-left:2px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:7px;vertical-align:0}
table.winloss{width:auto}
table.slices{width:auto;min-width:50%}
table.winloss th[scope=row]{background:#f1f5f9}
td.wl{text-align:center;min-width:64px}
td.diag{text-align:center;color:var(--muted);background:#f9fafb}
figure{margin:16px 0 0}
figcaption{font-size:12.5px;color:var(--muted);margin-bottom:6px}
svg.chart{max-width:760px;display:block}
svg .grid{stroke:#eef0f3}
svg .axis{stroke:#9ca3af}
svg .tick{fill:var(--muted)}
svg text{fill:var(--fg)}
svg .whisker line{stroke:#111827;stroke-width:1.5}
.badge{display:inline-block;font-size:11px;font-weight:600;border-radius:10px;padding:0 8px;white-space:nowrap}
.badge.yes{background:#dcfce7;color:var(--ok)}
.badge.no{background:#fee2e2;color:var(--bad)}
.badge.part{background:#fef3c7;color:#92400e}
.controls{display:flex;flex-wrap:wrap;gap:10px 20px;align-items:center;margin-bottom:10px}
.controls input[type=search]{padding:4px 8px;border:1px solid var(--line);border-radius:6px;min-width:220px;font:inherit}
#example-count{color:var(--muted);font-size:12.5px}
table.examples td{min-width:140px}
table.examples td.id{min-width:90px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.text{white-space:pre-wrap;overflow-wrap:anywhere;max-height:9em;overflow:auto;margin-top:2px}
.meta{display:block;color:var(--muted);font-size:11px}
.answer{color:var(--muted);font-size:12px;margin-top:4px;overflow-wrap:anywhere}
.error{color:var(--bad);font-size:12px;margin-top:4px}
td.wrong{background:#fff7f7}
td.partial{background:#fffbeb}
td.missing{color:var(--muted);font-style:italic}
.facts-list{margin:0;padding-left:18px}
footer{color:var(--muted);font-size:12px;padding-bottom:28px}
"""

JS = """
(function () {
  try {
    var box = document.getElementById('only-disagree');
    var search = document.getElementById('example-search');
    var count = document.getElementById('example-count');
    if (!box || !search || !count) { document.documentElement.setAttribute('data-js', 'ok'); return; }
    var rows = Array.prototype.slice.call(document.querySelectorAll('#examples-table tbody tr'));
    function apply() {
      var text = search.value.trim().toLowerCase();
      var shown = 0;
      rows.forEach(function (row) {
        var show = (!box.checked || row.getAttribute('data-disagree') === '1') &&
                   (!text || row.textContent.toLowerCase().indexOf(text) !== -1);
        row.hidden = !show;
        if (show) { shown += 1; }
      });
      count.textContent = shown + ' of ' + rows.length + ' examples shown';
    }
    box.addEventListener('change', apply);
    search.addEventListener('input', apply);
    if (window.location.hash === '#disagree') { box.checked = true; }
    apply();
    document.documentElement.setAttribute('data-js', 'ok');
  } catch (err) {
    document.documentElement.setAttribute('data-js', 'error: ' + err);
  }
})();
"""
