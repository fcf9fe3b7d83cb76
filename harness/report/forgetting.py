"""The forgetting section of report.md and report.html, and the gate's forgetting checks, from
results.json's `forgetting` block (harness.runner.control, harness.scoring.forgetting): per adapter
strategy and control suite, each metric base versus adapter with its paired interval and a plain
sentence, and the perplexity change on held-out text of the control suite.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.report.html_parts import e, section, table, td
from harness.report.leakage import _md_table
from harness.scoring.fmt import fmt_metric, fmt_num, fmt_p, fmt_signed, number, p_phrase
from harness.scoring.registry import higher_is_better

HEAD = ["Strategy", "Control suite", "Metric", "base", "adapter", "change [95% CI]", "p", "perplexity base → adapter"]
_EPS = 1e-9  # a drop of exactly the tolerated amount passes (as in the gate)


def _rows(results: Mapping[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    """(strategy, control suite, metric, the metric's row, the perplexity block) of every entry."""
    block = results.get("forgetting")
    if not isinstance(block, dict):
        return
    for strategy, controls in (block.get("strategies") or {}).items():
        for control, entry in (controls or {}).items():
            for metric, row in (entry.get("metrics") or {}).items():
                yield str(strategy), str(control), str(metric), row or {}, entry.get("perplexity") or {}


def _cost(metric: str, row: Mapping[str, Any]) -> tuple[float, float, float]:
    """What the adapter costs on `metric` (positive: worse than the base) and that cost's interval."""
    sign = 1.0 if higher_is_better(metric) else -1.0
    lo, hi = (list(row.get("ci") or [None, None]) + [None, None])[:2]
    return -sign * number(row.get("diff")), -sign * number(hi if sign > 0 else lo), -sign * number(lo if sign > 0 else hi)


def sentence(strategy: str, control: str, metric: str, row: Mapping[str, Any], alpha: float = 0.05) -> str:
    """"sft costs 0.120 accuracy on poem-sentiment (95% CI 0.050 to 0.190, p < 0.001)", a gain
    likewise, or "no significant change"."""
    cost, lo, hi = _cost(metric, row)
    p = number(row.get("p_value"))
    if not p < alpha or cost != cost or abs(cost) < _EPS:  # cost != cost: NaN
        return (f"{strategy}: no significant change in {metric} on {control} ({fmt_signed(metric, row.get('diff'))}, "
                f"95% CI {fmt_metric(metric, (row.get('ci') or [None])[0])} to "
                f"{fmt_metric(metric, (row.get('ci') or [None, None])[1])}, {p_phrase(p)})")
    verb, (size, a, b) = ("costs", (cost, lo, hi)) if cost > 0 else ("gains", (-cost, -hi, -lo))
    return (f"{strategy} {verb} {fmt_metric(metric, size)} {metric} on {control} "
            f"(95% CI {fmt_metric(metric, a)} to {fmt_metric(metric, b)}, {p_phrase(p)})")


def perplexity_text(ppl: Mapping[str, Any]) -> str:
    ratio = number(ppl.get("ratio"))
    if ratio != ratio:
        return "—"
    return f"{fmt_num(ppl.get('base'))} → {fmt_num(ppl.get('adapter'))} ({100 * (ratio - 1):+.1f}%)"


def _cells(strategy: str, control: str, metric: str, row: Mapping[str, Any], ppl: Mapping[str, Any]) -> list[str]:
    ci = list(row.get("ci") or [None, None])
    return [strategy, control, metric, fmt_metric(metric, row.get("base")), fmt_metric(metric, row.get("adapter")),
            f"{fmt_signed(metric, row.get('diff'))} [{fmt_signed(metric, ci[0])}, {fmt_signed(metric, ci[1])}]",
            fmt_p(row.get("p_value")), perplexity_text(ppl)]


def _intro(results: Mapping[str, Any]) -> str:
    block = results.get("forgetting") or {}
    names = ", ".join(str(c.get("name")) for c in block.get("controls") or [])
    return (f"Each adapter on control suites it was not trained for ({names}), with their own zero-shot prompt, "
            "paired against the same model without the adapter on the same examples; change = adapter − base. "
            "Perplexity on held-out text of the control suite (a rise: the adapter models that text worse).")


def _empty(results: Mapping[str, Any]) -> bool:
    return not any(True for _ in _rows(results))


def forgetting_markdown(results: Mapping[str, Any]) -> list[str]:
    """The "Forgetting" section of report.md (nothing when the run had no --control)."""
    block = results.get("forgetting")
    if not isinstance(block, dict):
        return []
    if _empty(results):
        return ["## Forgetting", "", "_No strategy of this run decodes with an adapter: nothing to control._", ""]
    alpha = float(block.get("alpha") or 0.05)
    rows = list(_rows(results))
    out = ["## Forgetting", "", _intro(results), ""]
    out += _md_table(HEAD, [_cells(*r) for r in rows])
    out += ["", *[f"- {sentence(s, c, m, row, alpha)}" for s, c, m, row, _ in rows], ""]
    return out


def forgetting_html(results: Mapping[str, Any]) -> str:
    """The "Forgetting" section of report.html ("" when the run had no --control)."""
    block = results.get("forgetting")
    if not isinstance(block, dict):
        return ""
    if _empty(results):
        return section("forgetting", "Forgetting", "<p>No strategy of this run decodes with an adapter: nothing to control.</p>")
    alpha = float(block.get("alpha") or 0.05)
    rows = list(_rows(results))
    body = [[td(e(c), "name" if i < 3 else "num") for i, c in enumerate(_cells(*r))] for r in rows]
    sentences = "".join(f"<li>{e(sentence(s, c, m, row, alpha))}</li>" for s, c, m, row, _ in rows)
    return section("forgetting", "Forgetting", table(HEAD, body, "forgetting numeric") + f"<ul>{sentences}</ul>",
                   e(_intro(results)))


# --------------------------------------------------------------------------- the gate


@dataclass(frozen=True)
class ForgettingCheck:
    """One (candidate strategy, control suite, metric) that `gate --max-forgetting` judged."""

    strategy: str
    control: str
    metric: str
    cost: float  # what the adapter costs on the control suite (positive: worse than the base)
    p_value: float
    max_forgetting: float
    failed: bool

    def describe(self) -> str:
        return (f"{self.strategy} on {self.control}: {self.metric} drops by {fmt_metric(self.metric, self.cost)} "
                f"({p_phrase(self.p_value)}); tolerated {self.max_forgetting:g}")


def forgetting_checks(results: Mapping[str, Any], strategies: Sequence[str], limits: Mapping[str, float],
                      alpha: float, where: str = "the candidate run") -> list[ForgettingCheck]:
    """Every control-suite metric named in `limits` of the candidate `strategies`: failed when the
    adapter's drop exceeds the limit and is significant (p < alpha), the gate's own rule."""
    from harness.core.errors import HarnessError

    if not isinstance(results.get("forgetting"), dict):
        raise HarnessError(f"--max-forgetting: {where} has no forgetting section: run it with --control SUITE")
    checks = [ForgettingCheck(s, c, m, cost, number(row.get("p_value")), limits[m],
                              cost > limits[m] + _EPS and number(row.get("p_value")) < alpha)
              for s, c, m, row, _ in _rows(results) if s in strategies and m in limits
              for cost in [_cost(m, row)[0]]]
    if not checks:
        scored = sorted({m for s, _, m, _, _ in _rows(results) if s in strategies})
        raise HarnessError(f"--max-forgetting {', '.join(limits)}: {where} has no forgetting score of that metric for "
                           f"{', '.join(strategies)} (it has: {', '.join(scored) or 'none; no adapter strategy'})")
    return checks
