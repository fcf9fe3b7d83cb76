"""One metric: what every suite metric is, whatever its source (built-in, `evaluate:`, plugin).

A metric is a name, the tasks it applies to, a function giving one row of sufficient statistics
per example, an aggregate over any subset or resample of those rows (and, where one exists, a
vectorised aggregate over bootstrap draw counts), its scale, its direction and its display format.
Statistics (`harness.scoring.stats`) only ever index rows, so every metric gets exact bootstrap
intervals, slices and paired tests without the statistics knowing anything about it.

This module knows no registry: the built-ins (harness.scoring.metrics), the evaluate adapter
(harness.scoring.hf_evaluate) and the registry (harness.scoring.registry) all import it, and it
imports none of them, so the scoring package has no import cycle.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.core.errors import HarnessError
from harness.core.types import TASKS, Example

if TYPE_CHECKING:
    import numpy as np

PAIRED_TESTS = ("paired_bootstrap", "mcnemar_exact")
SCALES = (1.0, 100.0)


@dataclass(frozen=True)
class MetricContext:
    """What a metric may need besides answers and examples (a class, so fields can be added)."""

    task: str
    labels: tuple[str, ...] = ()


# stats(answers, examples, ctx) -> rows; aggregate(rows, ctx) -> value;
# aggregate_many(rows, counts, ctx) -> one value per resample (counts[r, i]: draws of row i).
StatsFn = Callable[[Sequence[Any], Sequence[Example], MetricContext], "np.ndarray"]
AggregateFn = Callable[["np.ndarray", MetricContext], float]
ManyFn = Callable[["np.ndarray", "np.ndarray", MetricContext], "np.ndarray"]


def mean_of_rows(rows: np.ndarray, ctx: MetricContext) -> float:
    """The default aggregate: the mean of the first column (per-example scores)."""
    return float(rows[:, 0].mean())


def mean_of_rows_many(rows: np.ndarray, counts: np.ndarray, ctx: MetricContext) -> np.ndarray:
    """`mean_of_rows` of every resample at once: drawn sum / number drawn."""
    return (counts @ rows)[:, 0] / counts.sum(axis=1)


@dataclass(frozen=True)
class Metric:
    """One metric. Only `name` and `stats` are required: the default aggregate is the mean of
    the rows' first column, which suits any per-example score."""

    name: str
    stats: StatsFn
    aggregate: AggregateFn = mean_of_rows
    # None: no vectorised path; the bootstrap then calls `aggregate` once per resample.
    aggregate_many: ManyFn | None = mean_of_rows_many
    tasks: tuple[str, ...] = TASKS
    scale: float | None = 1.0  # values lie in [0, scale]; None: unknown (evaluate modules)
    higher_is_better: bool = True
    format_spec: str = ".3f"  # format(value, format_spec) in tables and messages
    # "mcnemar_exact" needs rows whose first column is 0/1 correctness.
    paired_test: str = "paired_bootstrap"
    max_resamples: int | None = None  # a cap for metrics that recompute per resample
    # Whether a run record keeps this metric's per-example rows (harness.core.runrecord), so that
    # readers never score an answer again. False where the rows are not numbers but the examples
    # themselves (evaluate modules): the gate then recomputes them from the stored answers.
    stored_rows: bool = True
    description: str = ""
    aliases: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise HarnessError(f"metric '{_shown(str(self.name))}': {'; '.join(problems)}")
        if self.aggregate is not mean_of_rows and self.aggregate_many is mean_of_rows_many:
            # A custom aggregate has no matching fast path unless one is given with it.
            object.__setattr__(self, "aggregate_many", None)

    def applies_to(self, task: str) -> bool:
        return task in self.tasks

    def format(self, value: float) -> str:
        return format(value, self.format_spec)

    def resamples(self, wanted: int) -> int:
        """How many bootstrap resamples this metric affords when `wanted` are asked for."""
        return wanted if self.max_resamples is None else min(wanted, self.max_resamples)

    def bind(self, task: str, labels: Sequence[str] = ()) -> Aggregator:
        return Aggregator(self, MetricContext(task, tuple(labels)))


def _problems(m: Metric) -> list[str]:
    out = []
    if not isinstance(m.name, str) or not m.name.strip() or m.name != m.name.strip():
        out.append("the name must be a non-empty string without surrounding spaces")
    if not callable(m.stats) or not callable(m.aggregate):
        out.append("stats and aggregate must be callables")
    if not m.tasks or any(t not in TASKS for t in m.tasks):
        out.append(f"tasks must be some of {', '.join(TASKS)}, got {m.tasks!r}")
    if m.scale is not None and m.scale not in SCALES:
        out.append(f"scale must be 1 or 100 (or None when unknown), got {m.scale!r}")
    if m.paired_test not in PAIRED_TESTS:
        out.append(f"paired_test must be one of {', '.join(PAIRED_TESTS)}, got {m.paired_test!r}")
    if m.max_resamples is not None and m.max_resamples < 1:
        out.append("max_resamples must be at least 1")
    try:
        format(0.5, m.format_spec)
    except (TypeError, ValueError):
        out.append(f"format_spec {m.format_spec!r} does not format a float")
    return out


@dataclass(frozen=True)
class Aggregator:
    """A metric bound to a task and label set: rows -> value, the callable the bootstrap resamples
    (`harness.scoring.stats` uses `many` when it is not None)."""

    metric: Metric
    ctx: MetricContext

    @property
    def name(self) -> str:
        return self.metric.name

    def stats(self, answers: Sequence[Any], examples: Sequence[Example]) -> np.ndarray:
        if len(answers) != len(examples):
            raise ValueError(f"{len(answers)} answers for {len(examples)} examples")
        return self.metric.stats(answers, examples, self.ctx)

    def __call__(self, rows: np.ndarray) -> float:
        import numpy as np

        rows = np.asarray(rows)
        if rows.shape[0] == 0:
            return math.nan  # undefined on zero examples, for every metric
        return float(self.metric.aggregate(rows, self.ctx))

    @property
    def many(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
        fast, ctx = self.metric.aggregate_many, self.ctx
        if fast is None:
            return None

        def many(rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
            import numpy as np

            return fast(np.asarray(rows, dtype=np.float64), np.asarray(counts, dtype=np.float64), ctx)

        return many




def _shown(name: str, limit: int = 60) -> str:
    """A user-given name for a message: bounded, control characters escaped."""
    text = name if len(name) <= limit else name[: limit - 3] + "..."
    return text if text.isprintable() else repr(text)[1:-1]


