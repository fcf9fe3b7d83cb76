"""The forgetting section of report.md and report.html, from results.json's `forgetting` block
(harness.runner.control, harness.scoring.forgetting): per adapter strategy and control suite, each
metric base versus adapter with its paired interval and a plain sentence, and the perplexity change
on held-out text of the control suite. The gate's forgetting checks read the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator

from harness.core.results import ControlMetric, Forgetting, PerplexityChange, RunResults, number
from harness.report.formats.html_parts import e, section, table, td
from harness.report.formats.md import md_table
from harness.scoring.fmt import fmt_metric, fmt_num, fmt_p, fmt_signed, p_phrase
from harness.scoring.registry import higher_is_better

HEAD = ["Strategy", "Control suite", "Metric", "base", "adapter", "change [95% CI]", "p", "perplexity base → adapter"]
EPS = 1e-9  # a drop of exactly the tolerated amount passes (as in the gate)
Row = tuple[str, str, str, ControlMetric, PerplexityChange]


def rows(block: Forgetting) -> Iterator[Row]:
    """(strategy, control suite, metric, the metric's row, the perplexity change) of every entry."""
    for strategy, controls in block.strategies.items():
        for control, entry in controls.items():
            for metric, row in entry.metrics.items():
                yield strategy, control, metric, row, entry.perplexity


def cost(metric: str, row: ControlMetric) -> tuple[float, float, float]:
    """What the adapter costs on `metric` (positive: worse than the base) and that cost's interval."""
    sign = 1.0 if higher_is_better(metric) else -1.0
    lo, hi = row.ci
    return -sign * number(row.diff), -sign * number(hi if sign > 0 else lo), -sign * number(lo if sign > 0 else hi)


def sentence(strategy: str, control: str, metric: str, row: ControlMetric, alpha: float = 0.05) -> str:
    """"sft costs 0.120 accuracy on poem-sentiment (95% CI 0.050 to 0.190, p < 0.001)", a gain
    likewise, or "no significant change"."""
    size_, lo, hi = cost(metric, row)
    p = row.p_value
    if not p < alpha or size_ != size_ or abs(size_) < EPS:  # size_ != size_: NaN
        return (f"{strategy}: no significant change in {metric} on {control} ({fmt_signed(metric, row.diff)}, "
                f"95% CI {fmt_metric(metric, row.ci[0])} to {fmt_metric(metric, row.ci[1])}, {p_phrase(p)})")
    verb, (size, a, b) = ("costs", (size_, lo, hi)) if size_ > 0 else ("gains", (-size_, -hi, -lo))
    return (f"{strategy} {verb} {fmt_metric(metric, size)} {metric} on {control} "
            f"(95% CI {fmt_metric(metric, a)} to {fmt_metric(metric, b)}, {p_phrase(p)})")


def perplexity_text(ppl: PerplexityChange) -> str:
    if ppl.ratio is None:
        return "—"
    return f"{fmt_num(ppl.base)} → {fmt_num(ppl.adapter)} ({100 * (ppl.ratio - 1):+.1f}%)"


def _cells(strategy: str, control: str, metric: str, row: ControlMetric, ppl: PerplexityChange) -> list[str]:
    return [strategy, control, metric, fmt_metric(metric, row.base), fmt_metric(metric, row.adapter),
            f"{fmt_signed(metric, row.diff)} [{fmt_signed(metric, row.ci[0])}, {fmt_signed(metric, row.ci[1])}]",
            fmt_p(row.p_value), perplexity_text(ppl)]


def _intro(block: Forgetting) -> str:
    names = ", ".join(c.name for c in block.controls)
    return (f"Each adapter on control suites it was not trained for ({names}), with their own zero-shot prompt, "
            "paired against the same model without the adapter on the same examples; change = adapter − base. "
            "Perplexity on held-out text of the control suite (a rise: the adapter models that text worse).")


NONE = "No strategy of this run decodes with an adapter: nothing to control."


def forgetting_markdown(results: RunResults) -> list[str]:
    """The "Forgetting" section of report.md (nothing when the run had no --control)."""
    block = results.forgetting
    if block is None:
        return []
    found = list(rows(block))
    if not found:
        return ["## Forgetting", "", f"_{NONE}_", ""]
    out = ["## Forgetting", "", _intro(block), ""]
    out += md_table(HEAD, [_cells(*r) for r in found], ["l"] * len(HEAD))
    out += ["", *[f"- {sentence(s, c, m, row, block.alpha)}" for s, c, m, row, _ in found], ""]
    return out


def forgetting_html(results: RunResults) -> str:
    """The "Forgetting" section of report.html ("" when the run had no --control)."""
    block = results.forgetting
    if block is None:
        return ""
    found = list(rows(block))
    if not found:
        return section("forgetting", "Forgetting", f"<p>{NONE}</p>")
    body = [[td(e(c), "name" if i < 3 else "num") for i, c in enumerate(_cells(*r))] for r in found]
    sentences = "".join(f"<li>{e(sentence(s, c, m, row, block.alpha))}</li>" for s, c, m, row, _ in found)
    return section("forgetting", "Forgetting", table(HEAD, body, "forgetting numeric") + f"<ul>{sentences}</ul>",
                   e(_intro(block)))
