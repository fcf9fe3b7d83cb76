"""The per-example views of report.html: the win/loss matrix and the table of every example.

Both compare the score stored with each prediction record (harness.core.runrecord.SCORE_NAME):
right or wrong for labels, token or field F1 where an answer can be partly right.
"""

from __future__ import annotations

import json
from typing import Any

from harness.core.runrecord import SCORE_NAME, PredictionRecord, RunRecord, graded
from harness.report.formats.html_parts import e, section, table


def winloss_section(run: RunRecord, scores: dict[str, dict[str, float]]) -> str:
    strategies = run.strategies
    if len(strategies) < 2:
        return ""
    is_graded = graded(run.task)
    score_name = SCORE_NAME.get(run.task, "score")
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
    return section("winloss", "Win/loss matrix", table(head, rows, "winloss"), e(note))


def examples_section(run: RunRecord, scores: dict[str, dict[str, float]]) -> str:
    names = run.strategies
    by_strategy = {n: {r.example_id: r for r in run.predictions_for(n)} for n in names}
    ids = list(dict.fromkeys(i for n in names for i in by_strategy[n]))
    score_name = SCORE_NAME.get(run.task, "score") if graded(run.task) else ""
    rows = []
    n_disagree = 0
    for i in ids:
        first = next(by_strategy[n][i] for n in names if i in by_strategy[n])
        here = [scores[n][i] for n in names if i in scores[n]]
        disagree = bool(here) and max(here) - min(here) >= DISAGREE_SPREAD
        n_disagree += disagree
        meta_html = "".join(f'<span class="meta">{e(k)}: {e(v)}</span>' for k, v in first.meta.items())
        cells = [
            f'<td class="id">{e(i)}{meta_html}</td>',
            f'<td><div class="text">{e(first.input)}</div></td>',
            f'<td><div class="text">{e(_target_text(first.target))}</div></td>',
        ]
        for n in names:
            record = by_strategy[n].get(i)
            cells.append(_cell(run.task, record, scores[n].get(i, 0.0), score_name) if record is not None
                         else '<td class="missing">no prediction</td>')
        rows.append(f'<tr data-disagree="{int(disagree)}">' + "".join(cells) + "</tr>")
    head = "".join(f"<th>{e(h)}</th>" for h in ["example", "input", "target", *names])
    disagree_what = f"{score_name} differs by {DISAGREE_SPREAD:g} or more" if score_name else "one right, another wrong"
    controls = (
        '<div class="controls"><label><input type="checkbox" id="only-disagree"> only examples where strategies '
        f'disagree ({disagree_what}: {n_disagree})</label>'
        '<input type="search" id="example-search" placeholder="filter by text…" aria-label="filter examples by text">'
        f'<span id="example-count">{len(ids)} examples</span></div>'
    )
    grid = (
        f'<div class="table-wrap"><table id="examples-table" class="examples"><thead><tr>{head}</tr></thead>'
        f'<tbody>\n{chr(10).join(rows)}\n</tbody></table></div>'
    )
    note = (f"Each answer's {score_name} against the target (best over references). " if score_name
            else "Right or wrong is the stored answer against the target. ") + "Add #disagree to the URL to open filtered."
    return section("examples", "Per-example results", controls + grid, e(note))


def _cell(task: str, record: PredictionRecord, score: float, score_name: str) -> str:
    """One strategy's prediction for one example; `score_name` is empty for exact tasks."""
    verdict = "right" if score >= 1.0 else "wrong" if score <= 0.0 else "partial"
    extra = ""
    if task in ("classification", "extraction"):  # the parsed answer differs from the raw output
        answer = record.answer
        shown = "invalid" if answer is None else json.dumps(answer, ensure_ascii=False) if isinstance(answer, dict) else answer
        extra += f'<div class="answer">answer: {e(shown)}</div>'
    if record.error:
        extra += f'<div class="error">error: {e(record.error)}</div>'
    return f'<td class="{verdict}">{_badge(verdict, score, score_name)}<div class="text">{e(record.output)}</div>{extra}</td>'


# Graded scores differ a little on almost every example; "disagree" means a difference a reader
# would see: one answer half right or better where another is not (exact tasks: 0 vs 1).
DISAGREE_SPREAD = 0.5


def _badge(verdict: str, score: float, score_name: str) -> str:
    if not score_name:  # exact tasks: right or wrong
        return '<span class="badge yes">✓ right</span>' if verdict == "right" else '<span class="badge no">✗ wrong</span>'
    css = {"right": "yes", "wrong": "no", "partial": "part"}[verdict]
    return f'<span class="badge {css}">{e(score_name)} {score:.2f}</span>'


def _target_text(target: Any) -> str:
    if isinstance(target, (list, tuple)):
        return " | ".join(str(t) for t in target)
    if isinstance(target, dict):
        return json.dumps(target, ensure_ascii=False)
    return "" if target is None else str(target)

