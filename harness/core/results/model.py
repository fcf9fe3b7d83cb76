"""The records of results.json (schema sft-harness/results/v3, docs/results-schema.md): one
frozen dataclass per concept, written and read by harness.core.results.codec. Values that are
undefined (a metric on zero examples, a loss that diverged) are None here and null in the file.

The scoring layer builds them, the runner adds the run-level fields, and the report, the gate and
the history read their fields; nothing in between passes results around as a dict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from harness.core.results.answers import ChoiceStats, FormatGap
from harness.core.results.codec import extra, omit
from harness.core.results.judges import JudgeResult

Interval = tuple[float | None, float | None]


def number(x: float | None) -> float:
    """A value as a float; NaN where it is undefined."""
    return math.nan if x is None else float(x)


# --------------------------------------------------------------------------- one strategy


@dataclass(frozen=True)
class MetricValue:
    value: float | None
    ci: Interval = (None, None)
    resamples: int | None = omit()  # only for a metric that caps its resamples (evaluate modules)
    note: str | None = omit()


@dataclass(frozen=True)
class SliceCell:
    n: int
    metrics: dict[str, float | None]


@dataclass(frozen=True)
class Cost:
    """What one strategy cost (harness.scoring.compare.cost_summary; docs: "Cost")."""

    prepare_s: float
    predict_s: float
    examples_per_s: float | None = None
    batch_share_p50_s: float | None = None  # each example's share of its decoding batch: a cost figure
    batch_share_p95_s: float | None = None
    latency_p50_s: float | None = None  # real per-request latency: only a backend serving requests has it
    latency_p95_s: float | None = None
    prompt_tokens_per_example: float | None = None
    output_tokens_per_example: float | None = None
    training_tokens: int = 0
    usd_per_1k_requests: float | None = None
    training_usd: float | None = None
    usd_per_correct: float | None = None
    monthly_usd: float | None = None  # with a price and a monthly volume
    # What grading this strategy's outputs cost (judged metrics): an evaluation cost, not a
    # serving one, so it enters no break-even figure.
    judge_tokens: int | None = omit()
    judge_s: float | None = omit()
    judge_usd: float | None = omit()

    def figure(self, key: str) -> float | None:
        """A cost figure by its key (the report's cost columns are a list of keys)."""
        value = getattr(self, key)
        return None if value is None else float(value)


@dataclass(frozen=True)
class Retrieval:
    k: int
    recall_at_k: float | None = None
    index: dict[str, Any] | str | None = None


LossCurve = list[tuple[float, float | None]]  # (step or epoch, loss); a diverged loss is None


@dataclass(frozen=True)
class Training:
    loss_curve: LossCurve = field(default_factory=list)
    val_loss: LossCurve = field(default_factory=list)
    tokens_per_s: float | None = None
    padding_share: float | None = None
    train_tokens: int | None = None
    target_tokens: int | None = None
    examples: int | None = None
    skipped_too_long: int | None = None
    adapter_path: str | None = None
    adapter_key: str | None = None
    epochs: int | None = None
    steps: int | None = None
    seconds: float | None = None
    device: str | None = None
    precision: str | None = None
    cached: bool = False
    resumed_from_step: int = 0  # > 0: a killed training continued from its checkpoint at that step
    processes: int = 1  # data-parallel training processes
    global_batch: int | None = None  # examples per optimizer step over all processes
    shard: str = "none"  # fsdp: the weights were sharded over the processes (FSDP2)


@dataclass(frozen=True)
class SeedRun:
    """Where one training seed of a multi-seed strategy put its records and its adapter."""

    seed: int
    name: str
    prepare_s: float
    adapter_path: str | None = None
    val_loss: LossCurve | None = None


@dataclass(frozen=True)
class ModelRecord:
    """A model as its backend records it, with the [[models]] name (the run's --model at the top
    level); keys a plugin backend adds are kept in `extra`."""

    backend: str = "transformers"
    id: str = ""
    name: str | None = None
    sha256: str | None = omit()
    resolved: str | None = omit()
    dtype: str | None = omit()
    device: str | None = omit()
    served_model: str | None = omit()
    base_url: str | None = omit()
    embedder: str | None = omit()  # the run's embedder (top-level model only)
    extra: dict[str, Any] = extra()


@dataclass(frozen=True)
class StrategyResult:
    name: str
    kind: str
    params: dict[str, Any]
    n: int
    metrics: dict[str, MetricValue]
    invalid_rate: float
    errors: int
    cost: Cost
    model: ModelRecord | None = None
    answer: str = "free"  # how its answers came out of the model: free | choice (...) | constrained
    slices: dict[str, dict[str, SliceCell]] = field(default_factory=dict)
    retrieval: Retrieval | None = None
    training: Training | None = None
    adapter: dict[str, Any] | None = omit()  # the `adapter` strategy: the folder it evaluated
    clean_metrics: dict[str, MetricValue] | None = omit()  # when some scored example leaks
    n_clean: int | None = omit()
    seeds: list[int] | None = omit()  # a strategy trained once per seed (sft:seeds=3)
    per_seed: dict[str, list[float | None]] | None = omit()
    seed_sd: dict[str, float | None] | None = omit()
    seed_runs: list[SeedRun] | None = omit()
    choice: ChoiceStats | None = omit()  # answer=choice
    extra: dict[str, Any] = extra()  # the sections a plugin strategy's details() adds

    def value(self, metric: str, clean: bool = False) -> float:
        """The metric's value (on the clean subset with `clean`); NaN where it is missing or undefined."""
        m = ((self.clean_metrics or {}) if clean else self.metrics).get(metric)
        return number(m.value) if m is not None else math.nan

    def interval(self, metric: str) -> tuple[float, float]:
        m = self.metrics.get(metric)
        return (number(m.ci[0]), number(m.ci[1])) if m is not None else (math.nan, math.nan)


# --------------------------------------------------------------------------- between strategies


@dataclass(frozen=True)
class Power:
    """For a pair not significantly different: what this test set could have detected."""

    mde: float | None
    n_needed: int | None
    alpha: float
    power: float


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    metric: str
    n: int
    diff: float | None  # a - b
    ci: Interval
    p_value: float
    test: str
    resamples: int
    p_holm: float | None = None
    significant: bool = False
    mcnemar_p: float | None = omit()
    bootstrap_p: float | None = omit()
    power: Power | None = omit()
    note: str | None = omit()
    seed_sd: dict[str, float | None] | None = omit()
    seed_note: str | None = omit()

    @property
    def p(self) -> float:
        """The p-value the verdict uses: Holm-adjusted where it was."""
        return self.p_value if self.p_holm is None else self.p_holm

    def oriented(self, a: str, b: str) -> Comparison:
        """This comparison as `a` - `b` (it is stored once per unordered pair)."""
        if (self.a, self.b) == (a, b):
            return self
        lo, hi = self.ci
        return replace(self, a=a, b=b, diff=None if self.diff is None else -self.diff,
                       ci=(None if hi is None else -hi, None if lo is None else -lo))


@dataclass(frozen=True)
class Recommendation:
    winner: str | None
    metric: str
    runner_up: str | None = None
    margin: float | None = None  # how much better the winner is on the metric (negative: worse)
    significant: bool = False
    text: str = ""
    uninformative: list[str] | None = omit()  # metrics every strategy scored the same extreme value of
    seed_note: str | None = omit()
    judge_note: str | None = omit()  # decided on a judged metric: how far its judge is validated


@dataclass(frozen=True)
class BreakEven:
    higher_one_off: str
    lower_one_off: str
    one_off_diff_usd: float
    per_1k_saving_usd: float
    break_even_requests: float | None  # None: never
    break_even_months: float | None = None


@dataclass(frozen=True)
class Economics:
    usd_per_device_hour: float | None = None
    monthly_requests: float | None = None
    break_even: list[BreakEven] = field(default_factory=list)


# --------------------------------------------------------------------------- trust checks


@dataclass(frozen=True)
class LeakPair:
    kind: str  # exact | reordered | ngram | near | passage
    split: str  # train | validation | corpus | test (duplicates inside test)
    test_id: str
    other_id: str
    score: float | None = None  # the cosine of a near-duplicate


@dataclass(frozen=True)
class Leakage:
    checked: bool
    n_test: int = 0
    n_leaked: int = 0
    leaked_ids: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    pairs: list[LeakPair] = field(default_factory=list)
    test_duplicates: list[LeakPair] = field(default_factory=list)
    test_duplicate_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    thresholds: dict[str, int | float | None] = field(default_factory=dict)
    embedder: str | None = None
    short_inputs: int = 0
    seconds: float = 0.0
    summary: str = ""


@dataclass(frozen=True)
class ControlInfo:
    name: str
    task: str
    sha256: str
    path: str
    metrics: list[str]
    primary_metric: str
    n: int


@dataclass(frozen=True)
class ControlMetric:
    base: float | None
    adapter: float | None
    diff: float | None  # adapter - base
    ci: Interval
    p_value: float
    test: str
    significant: bool


@dataclass(frozen=True)
class PerplexityChange:
    base: float | None
    adapter: float | None
    change: float | None  # adapter - base
    ratio: float | None  # adapter / base
    texts: int
    tokens: int
    base_mean_nll: float | None = omit()
    adapter_mean_nll: float | None = omit()


@dataclass(frozen=True)
class ControlResult:
    n: int
    model: str
    metrics: dict[str, ControlMetric]
    perplexity: PerplexityChange


@dataclass(frozen=True)
class Forgetting:
    controls: list[ControlInfo]
    limit: int
    alpha: float
    strategies: dict[str, dict[str, ControlResult]]  # strategy -> control suite -> result


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class SuiteInfo:
    name: str
    task: str
    sha256: str = ""
    path: str | None = None
    sizes: dict[str, int] = field(default_factory=dict)  # train, test, validation, corpus, scored
    labels: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    primary_metric: str | None = None
    instruction: str = ""
    judged: list[str] = field(default_factory=list)  # the metrics graded by a judge (results.judges)


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int
    stop: list[str] = field(default_factory=list)
    decoding: str = "greedy"
    batch_size: int | None = None
    extra: dict[str, Any] = extra()


@dataclass(frozen=True)
class Work:
    """Whether this run needed the weights at all: a fully cached rerun loads neither."""

    generator_loaded: bool
    embedder_loaded: bool


@dataclass(frozen=True)
class Scored:
    """The scored parts of a run (harness.scoring.results), before the runner adds the rest."""

    suite: SuiteInfo
    strategies: dict[str, StrategyResult]
    comparisons: list[Comparison]
    recommendation: Recommendation
    economics: Economics
    format_gaps: list[FormatGap] = field(default_factory=list)


@dataclass(frozen=True)
class RunResults:
    schema: str
    run_id: str
    created: str
    suite: SuiteInfo
    strategies: dict[str, StrategyResult]
    comparisons: list[Comparison]
    recommendation: Recommendation
    economics: Economics = field(default_factory=Economics)
    leakage: Leakage = field(default_factory=lambda: Leakage(checked=False))
    model: ModelRecord = field(default_factory=ModelRecord)
    decoding: Decoding | None = None
    seed: int = 0
    limit: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    work: Work | None = None
    forgetting: Forgetting | None = omit()  # only with --control
    format_gaps: list[FormatGap] = field(default_factory=list)  # a strategy in two answer modes
    judges: dict[str, JudgeResult] = field(default_factory=dict)  # judged metrics (harness.core.judges)

    @property
    def primary_metric(self) -> str:
        names = self.metric_names()
        return str(self.suite.primary_metric or (names[0] if names else "accuracy"))

    def metric_names(self) -> list[str]:
        """The suite's metrics in its order, then any other metric a strategy reports."""
        names = list(self.suite.metrics)
        for s in self.strategies.values():
            names += [m for m in s.metrics if m not in names]
        return names

    def comparison(self, a: str, b: str, metric: str) -> Comparison | None:
        """The comparison of `a` and `b` on `metric`, oriented as a - b."""
        for c in self.comparisons:
            if c.metric == metric and {c.a, c.b} == {a, b}:
                return c.oriented(a, b)
        return None
