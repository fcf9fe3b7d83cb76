"""results.json's `judges`: per judged metric, how it was graded, by whom, and how far to trust it.

Written by harness.scoring.judge_summary; docs/results-schema.md, "judges".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.core.results.codec import omit

Interval = tuple[float | None, float | None]


@dataclass(frozen=True)
class JudgeAgreement:
    """The judge against people on the outputs both graded (harness.scoring.agreement)."""

    n: int
    labels: list[str]
    rate: float  # fraction graded alike
    kappa: float | None  # Cohen's kappa (None where undefined: one grade only)
    weighted_kappa: float | None  # quadratic weights: the grades are ordinal
    confusion: list[list[int]]  # [human grade][judge grade], in `labels` order (worst first)
    mean_diff: float | None  # judge minus people, in grade steps: > 0 lenient, < 0 harsh
    too_high: int | None
    too_low: int | None


@dataclass(frozen=True)
class JudgedStrategy:
    """One strategy's judged metric: the judge's mean and, with human grades, the corrected one."""

    n: int
    judge_mean: float | None
    judge_ci: Interval
    unparsable: int = 0  # replies with no grade: scored as the lowest
    errors: int = 0  # failed judge requests: scored as the lowest
    n_human: int = 0
    human_mean: float | None = omit()  # people's mean on the graded subset
    ppi: float | None = omit()  # prediction-powered estimate (Angelopoulos et al. 2023; PPI++)
    ppi_ci: Interval | None = omit()
    ppi_lambda: float | None = omit()
    judge_tokens: int = 0
    judge_s: float = 0.0


@dataclass(frozen=True)
class JudgedPair:
    """Two strategies on the judged metric: a - b, the judge's paired difference and, with human
    grades, the prediction-powered one (pairwise mode: a's win rate over b instead)."""

    a: str
    b: str
    n: int
    judge_diff: float | None
    judge_ci: Interval
    judge_p: float | None
    ppi_diff: float | None = omit()
    ppi_ci: Interval | None = omit()
    ppi_p: float | None = omit()
    win_rate: float | None = omit()  # pairwise: a wins 1, a tie 0.5
    win_ci: Interval | None = omit()
    wins: int | None = omit()
    losses: int | None = omit()
    ties: int | None = omit()
    flip_rate: float | None = omit()  # pairwise: verdicts that changed when the answers swapped places
    longer_wins: float | None = omit()  # pairwise: of the decisive verdicts, those for the longer answer


@dataclass(frozen=True)
class JudgeResult:
    name: str
    mode: str
    model: dict[str, Any]  # the judge's [[models]] name and backend record
    answer: str  # how grades came out: choice, constrained or free
    template_version: str
    template_sha256: str
    template: str
    rubric: str = ""
    calls: int = 0  # grades asked of the model in this run (0: all from the cache)
    graded: int = 0  # grades in all
    unparsable: int = 0
    errors: int = 0
    strategies: dict[str, JudgedStrategy] = field(default_factory=dict)
    pairs: list[JudgedPair] = field(default_factory=list)
    human_file: str | None = None
    agreement: JudgeAgreement | None = None
    # The correlation of grade with output length across strategies, within examples (None: one
    # strategy, or no spread): a judge that likes long answers shows it here.
    length_bias: float | None = None
    self_preference: list[str] = field(default_factory=list)  # strategies whose model is the judge's
    notes: list[str] = field(default_factory=list)

    @property
    def validated(self) -> bool:
        return self.agreement is not None and self.agreement.n > 0
