"""The "Answers" section of report.md and report.html: how each strategy's answers came out of the
model (free text, label choice by likelihood, constrained decoding), how many free-text answers were
unusable, what a mode changes of a fine-tune's lead (format rather than knowledge), and for label
choices the confusion matrix and a reliability plot (harness.scoring.answers)."""

from __future__ import annotations

from harness.core.results import ChoiceStats, RunResults
from harness.report.formats.html_parts import e, section, table, td
from harness.report.formats.md import md_table
from harness.scoring.fmt import fmt_share

HEAD = ["Strategy", "answer mode", "unusable answers", "calibration error (ECE)"]
NOTE = ("free: the model writes its answer and a parser finds the label or the JSON in it (unusable: none "
        "found); choice: every label scored as the model's reply, the most likely one wins; constrained: "
        "decoding limited to the labels or the suite's JSON fields. Training is the same in every mode.")


def shown(results: RunResults) -> bool:
    """The section is for label and field tasks, or any run that uses a mode other than free."""
    return results.suite.task in ("classification", "extraction") or any(
        s.answer != "free" for s in results.strategies.values())


def answer_names(results: RunResults) -> dict[str, str] | None:
    """Each strategy's answer mode, for an "Answer" column: only when they differ."""
    modes = {name: s.answer for name, s in results.strategies.items()}
    return modes if len(set(modes.values())) > 1 else None


def _rows(results: RunResults) -> list[list[str]]:
    return [[name, s.answer, fmt_share(s.invalid_rate), f"{s.choice.ece:.3f}" if s.choice else "—"]
            for name, s in results.strategies.items()]


def _confusion(stats: ChoiceStats) -> tuple[list[str], list[list[str]]]:
    head = ["gold \\ chosen", *stats.labels]
    return head, [[gold, *map(str, row)] for gold, row in zip(stats.labels, stats.confusion, strict=True)]


def _reliability(stats: ChoiceStats) -> tuple[list[str], list[list[str]]]:
    head = ["confidence", "n", "mean confidence", "accuracy"]
    return head, [[f"{b.low:.1f}–{b.high:.1f}", str(b.n), f"{b.confidence:.3f}", f"{b.accuracy:.3f}"]
                  for b in stats.reliability]


def answers_markdown(results: RunResults) -> list[str]:
    if not shown(results):
        return []
    out = ["## Answers", "", *md_table(HEAD, _rows(results), ["l", "l", "r", "r"]), "", f"_{NOTE}_", ""]
    out += [f"- {g.text}" for g in results.format_gaps] + ([""] if results.format_gaps else [])
    for name, s in results.strategies.items():
        if s.choice is None:
            continue
        out += [f"### {name}: confusion and reliability", "", *md_table(*_confusion(s.choice)), ""]
        out += [*md_table(*_reliability(s.choice)), ""]
    return out


def reliability_svg(stats: ChoiceStats, width: int = 300) -> str:
    """Accuracy against confidence per bin, the diagonal for perfect calibration; bar width by count."""
    size, pad = width, 34
    inner = size - 2 * pad
    top = max(b.n for b in stats.reliability)
    parts = [f'<svg class="chart" viewBox="0 0 {size} {size}" width="{size}" height="{size}" role="img" '
             f'aria-label="reliability: accuracy against confidence">',
             f'<line x1="{pad}" y1="{size - pad}" x2="{size - pad}" y2="{pad}" stroke="#9ca3af" stroke-dasharray="4 3"/>',
             f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="none" stroke="#e5e7eb"/>']
    for b in stats.reliability:
        x, w = pad + b.low * inner, (b.high - b.low) * inner
        h = b.accuracy * inner
        opacity = 0.35 + 0.65 * b.n / top
        parts.append(f'<rect class="bin" x="{x + 1:.1f}" y="{size - pad - h:.1f}" width="{w - 2:.1f}" height="{h:.1f}" '
                     f'fill="#2563eb" fill-opacity="{opacity:.2f}"><title>{b.n} examples: confidence '
                     f'{b.confidence:.2f}, accuracy {b.accuracy:.2f}</title></rect>')
    parts.append(f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle" font-size="11">confidence of the chosen label</text>')
    parts.append(f'<text x="10" y="{size / 2}" font-size="11" transform="rotate(-90 10 {size / 2})" '
                 'text-anchor="middle">accuracy</text></svg>')
    return "".join(parts)


def answers_html(results: RunResults) -> str:
    if not shown(results):
        return ""
    rows = [[td(e(r[0]), "name"), td(e(r[1])), td(e(r[2]), "num"), td(e(r[3]), "num")] for r in _rows(results)]
    inner = table(HEAD, rows, "numeric")
    if results.format_gaps:
        inner += '<ul class="facts-list">' + "".join(f"<li>{e(g.text)}</li>" for g in results.format_gaps) + "</ul>"
    for name, s in results.strategies.items():
        if s.choice is None:
            continue
        head, body = _confusion(s.choice)
        grid = table(head, [[td(e(c), "name" if i == 0 else "num") for i, c in enumerate(r)] for r in body], "numeric")
        inner += (f"<h3>{e(name)}: confusion and reliability (ECE {s.choice.ece:.3f})</h3>{grid}"
                  f"<figure><figcaption>Reliability of {e(name)}: bars at the diagonal are calibrated</figcaption>"
                  f"{reliability_svg(s.choice)}</figure>")
    return section("answers", "Answers", inner, e(NOTE))
