"""What the regression gate decides (harness.gate.compare): one `Check` per (strategy pair, metric),
the `Pairing` of examples behind it, what flipped, and the whole `GateReport` with its JSON form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.results import to_json
from harness.gate.flips import Flips
from harness.gate.forgetting import ForgettingCheck
from harness.scoring.fmt import fmt_metric, fmt_p, fmt_signed, paired_test_name
from harness.scoring.registry import higher_is_better

GATE_SCHEMA = "sft-harness/gate/v2"  # v2: the flipped examples
OK, REGRESSION, IMPROVED = "ok", "REGRESSION", "improved"
_EPS = 1e-9  # 0.8 - 0.7 is 0.10000000000000009: a drop of exactly max_drop is tolerated


@dataclass(frozen=True)
class Check:
    """One (strategy pair, metric) verdict."""

    baseline_strategy: str
    candidate_strategy: str
    metric: str
    n: int
    baseline: float
    candidate: float
    diff: float  # candidate - baseline
    ci: tuple[float, float]
    p_value: float  # the test's own p-value
    test: str  # "mcnemar_exact" | "paired_bootstrap"
    verdict: str  # ok | REGRESSION | improved
    max_drop: float  # the tolerated drop for this metric
    p_holm: float | None = None  # Holm-adjusted across the gate's checks, with correction="holm"

    @property
    def p(self) -> float:
        """The p-value the verdict used."""
        return self.p_value if self.p_holm is None else self.p_holm

    @property
    def pair(self) -> str:
        if self.baseline_strategy == self.candidate_strategy:
            return self.baseline_strategy
        return f"{self.baseline_strategy} → {self.candidate_strategy}"

    def describe(self, alpha: float) -> str:
        m = self.metric
        p = f"p {fmt_p(self.p_value)}" + (f", {fmt_p(self.p_holm)} after Holm" if self.p_holm is not None else "")
        return (
            f"{self.pair} {m}: {fmt_metric(m, self.baseline)} → {fmt_metric(m, self.candidate)} "
            f"(diff {fmt_signed(m, self.diff)}, 95% CI [{fmt_signed(m, self.ci[0])}, {fmt_signed(m, self.ci[1])}], "
            f"{p} by {paired_test_name(self.test)}, n {self.n}; "
            f"fails when the drop exceeds {self.max_drop:g} with p < {alpha:g})"
        )


@dataclass(frozen=True)
class Pairing:
    """Which examples one strategy pair was compared on."""

    baseline_strategy: str
    candidate_strategy: str
    n_shared: int
    only_baseline: int  # examples the baseline scored and the candidate did not: dropped
    only_candidate: int
    changed_targets: int  # shared examples whose target differs between the runs


@dataclass(frozen=True)
class GateReport:
    baseline_dir: Path
    candidate_dir: Path
    baseline_run_id: str
    candidate_run_id: str
    suite: str
    suite_changed: bool
    metrics: tuple[str, ...]
    max_drop: float  # the default tolerated drop
    alpha: float
    pairings: tuple[Pairing, ...]
    checks: tuple[Check, ...]
    notes: tuple[str, ...] = field(default=())
    max_drop_by_metric: Mapping[str, float] = field(default_factory=dict)  # overrides of the default
    correction: str = "none"
    forgetting: tuple[ForgettingCheck, ...] = ()  # --max-forgetting: the candidate's control-suite drops
    max_forgetting: Mapping[str, float] = field(default_factory=dict)
    flips: tuple[Flips, ...] = ()  # per pairing: the examples that broke and the ones fixed

    def drop_text(self) -> str:
        parts = [f"{self.max_drop:g}"] + [f"{m}={v:g}" for m, v in self.max_drop_by_metric.items()]
        return ", ".join(parts)

    @property
    def regressions(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == REGRESSION]

    @property
    def improvements(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == IMPROVED]

    @property
    def forgetting_failures(self) -> list[ForgettingCheck]:
        return [f for f in self.forgetting if f.failed]

    @property
    def passed(self) -> bool:
        return not self.regressions and not self.forgetting_failures

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": GATE_SCHEMA,
            "passed": self.passed,
            "baseline": {"run_dir": str(self.baseline_dir), "run_id": self.baseline_run_id},
            "candidate": {"run_dir": str(self.candidate_dir), "run_id": self.candidate_run_id},
            "suite": self.suite,
            "suite_changed": self.suite_changed,
            "metrics": list(self.metrics),
            "max_drop": self.max_drop,
            "max_drop_by_metric": dict(self.max_drop_by_metric),
            "alpha": self.alpha,
            "correction": self.correction,
            "pairings": [vars(p) for p in self.pairings],
            "checks": [
                {**{k: _json_num(v) for k, v in vars(c).items() if k != "ci"}, "ci": [_json_num(x) for x in c.ci],
                 "pair": c.pair}
                for c in self.checks
            ],
            "regressions": len(self.regressions),
            "max_forgetting": dict(self.max_forgetting),
            "forgetting": [{**{k: _json_num(v) for k, v in vars(f).items()}} for f in self.forgetting],
            "forgetting_failures": len(self.forgetting_failures),
            "improvements": len(self.improvements),
            "flips": [{**to_json(f), "pair": f.pair} for f in self.flips],
            "notes": list(self.notes),
        }


def _json_num(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def judge(c: Check, alpha: float) -> str:
    """REGRESSION: a drop beyond the check's max_drop with p < alpha; improved: a significant gain."""
    gain = c.diff if higher_is_better(c.metric) else -c.diff  # lower-is-better: a rise is the drop
    if gain < -c.max_drop - _EPS and c.p < alpha:
        return REGRESSION
    if gain > _EPS and c.p < alpha:
        return IMPROVED
    return OK
