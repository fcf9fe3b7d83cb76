"""The gate's forgetting checks (`gate --max-forgetting METRIC=X`): the candidate run's own control
suites (run --control), each adapter strategy's drop against its base model, by the gate's rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.core.errors import HarnessError
from harness.core.results import RunResults
from harness.report.sections.forgetting import EPS, cost, rows
from harness.scoring.fmt import fmt_metric, p_phrase


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


def forgetting_checks(results: RunResults, strategies: Sequence[str], limits: Mapping[str, float],
                      alpha: float, where: str = "the candidate run") -> list[ForgettingCheck]:
    """Every control-suite metric named in `limits` of the candidate `strategies`: failed when the
    adapter's drop exceeds the limit and is significant (p < alpha), the gate's own rule."""
    if results.forgetting is None:
        raise HarnessError(f"--max-forgetting: {where} has no forgetting section: run it with --control SUITE")
    found = list(rows(results.forgetting))
    checks = [ForgettingCheck(s, c, m, drop, row.p_value, limits[m], drop > limits[m] + EPS and row.p_value < alpha)
              for s, c, m, row, _ in found if s in strategies and m in limits for drop in [cost(m, row)[0]]]
    if not checks:
        scored = sorted({m for s, _, m, _, _ in found if s in strategies})
        raise HarnessError(f"--max-forgetting {', '.join(limits)}: {where} has no forgetting score of that metric for "
                           f"{', '.join(strategies)} (it has: {', '.join(scored) or 'none; no adapter strategy'})")
    return checks
