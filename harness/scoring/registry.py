"""The metric registry: every metric is one `Metric` object, found by the name a suite uses.

A metric is a name, the tasks it applies to, a function giving one row of sufficient statistics
per example, an aggregate over any subset or resample of those rows (and, where one exists, a
vectorised aggregate over bootstrap draw counts), its scale, its direction and its display format.
Statistics (`harness.scoring.stats`) only ever index rows, so every metric gets exact bootstrap
intervals, slices and paired tests without the statistics knowing anything about it.

Where metrics come from, in lookup order:
- built-ins: `harness.scoring.metrics.register_builtins`, imported on first use;
- `evaluate:NAME_OR_PATH[#KEY]`: a Hugging Face `evaluate` module (`harness.scoring.hf_evaluate`);
- plugins: the entry-point group `sft_harness.metrics`. An entry point is named like its metric
  and resolves to a `Metric` or to a zero-argument factory returning one; a plugin may not take
  a built-in's name.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.errors import HarnessError
from harness.core.suites import EVALUATE_PREFIX
from harness.core.text import did_you_mean
from harness.core.types import TASKS, Example

if TYPE_CHECKING:
    import numpy as np

    from harness.core.types import Suite

ENTRY_POINT_GROUP = "sft_harness.metrics"
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


class Registry:
    """Built-ins (with aliases) and entry-point plugins; `evaluate:` names go to harness.scoring.hf_evaluate."""

    def __init__(self, builtin_module: str = "harness.scoring.metrics", group: str = ENTRY_POINT_GROUP) -> None:
        self._builtin_module, self._group = builtin_module, group
        self._builtins: dict[str, Metric] = {}
        self._aliases: dict[str, str] = {}
        self._loaded = False
        self._points: dict[str, metadata.EntryPoint] | None = None
        self._plugins: dict[str, Metric] = {}

    def add_builtin(self, metric: Metric) -> Metric:
        for name in (metric.name, *metric.aliases):
            if name in self._builtins or name in self._aliases:
                raise HarnessError(f"built-in metric '{name}' is registered twice")
        self._builtins[metric.name] = metric
        self._aliases.update(dict.fromkeys(metric.aliases, metric.name))
        return metric

    def refresh(self) -> None:
        """Forget the plugins seen so far (after installing one in the same process)."""
        self._points, self._plugins = None, {}

    def get(self, name: str, suite_dir: Path | None = None) -> Metric:
        """The metric `name` names; a HarnessError that says why when there is none."""
        if name.startswith(EVALUATE_PREFIX):
            from harness.scoring.hf_evaluate import evaluate_metric

            return evaluate_metric(name, suite_dir)
        self._load_builtins()
        points = self._entry_points()
        key = self._aliases.get(name, name)
        if key in self._builtins:
            return self._builtins[key]
        if name in points:
            return self._load_plugin(name, points[name])
        names = self.names()
        raise HarnessError(f"unknown metric '{_shown(name)}'{did_you_mean(name, names)}; known: "
                           f"{', '.join(names)}, or {EVALUATE_PREFIX}NAME_OR_PATH")

    def names(self) -> list[str]:
        """Built-ins in registration order, then their aliases, then plugins."""
        self._load_builtins()
        return [*self._builtins, *self._aliases, *sorted(self._entry_points())]

    def problem(self, name: str, task: str) -> str | None:
        """Why `name` cannot be a metric of a `task` suite, or None (evaluate modules are not
        loaded here: validating a suite must not need a network)."""
        if name.startswith(EVALUATE_PREFIX):
            from harness.scoring.hf_evaluate import availability_problem

            return availability_problem(name)
        try:
            metric = self.get(name)
        except HarnessError as e:
            return str(e)
        if task in TASKS and not metric.applies_to(task):
            return f"metric '{_shown(name)}' does not apply to {task} suites (only to {', '.join(metric.tasks)})"
        return None

    def _load_builtins(self) -> None:
        if self._loaded:
            return
        try:
            module = importlib.import_module(self._builtin_module)
            module.register_builtins(self)
        except HarnessError:
            raise
        except Exception as e:  # say why, instead of calling every built-in "unknown"
            raise HarnessError(f"the built-in metrics ({self._builtin_module}) could not be loaded: "
                               f"{type(e).__name__}: {e}") from e
        self._loaded = True

    def _entry_points(self) -> dict[str, metadata.EntryPoint]:
        if self._points is not None:
            return self._points
        points: dict[str, metadata.EntryPoint] = {}
        for ep in metadata.entry_points(group=self._group):
            where = f"{ep.value}{_dist(ep)}"
            if ep.name in self._builtins or ep.name in self._aliases:
                raise HarnessError(f"metric plugin '{ep.name}' ({where}, entry-point group {self._group}) "
                                   "has the name of a built-in metric; rename the entry point")
            if ep.name in points and points[ep.name].value != ep.value:
                raise HarnessError(f"two metric plugins are named '{ep.name}': {points[ep.name].value}"
                                   f"{_dist(points[ep.name])} and {where}; uninstall one")
            points[ep.name] = ep
        self._points = points
        return points

    def _load_plugin(self, name: str, ep: metadata.EntryPoint) -> Metric:
        if name in self._plugins:
            return self._plugins[name]
        where = f"metric plugin '{name}' ({ep.value}{_dist(ep)})"
        try:
            obj = ep.load()
            if not isinstance(obj, Metric) and callable(obj):
                obj = obj()  # a zero-argument factory
        except HarnessError as e:  # e.g. a Metric that refuses its own definition
            raise HarnessError(f"{where}: {e}") from e
        except Exception as e:
            raise HarnessError(f"{where} failed to load: {type(e).__name__}: {e}") from e
        if not isinstance(obj, Metric):
            raise HarnessError(f"{where} must resolve to a harness.scoring.registry.Metric or a zero-argument "
                               f"factory returning one, got {type(obj).__name__}")
        if obj.name != name:
            raise HarnessError(f"{where} gives a metric named '{_shown(obj.name)}': the entry point and the "
                               "metric must have the same name")
        self._plugins[name] = obj
        return obj


def _dist(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f", from {dist.name} {dist.version}" if dist is not None else ""


def _shown(name: str, limit: int = 60) -> str:
    """A user-given name for a message: bounded, control characters escaped."""
    text = name if len(name) <= limit else name[: limit - 3] + "..."
    return text if text.isprintable() else repr(text)[1:-1]


REGISTRY = Registry()


def get_metric(name: str, suite_dir: Path | None = None) -> Metric:
    """The metric a suite names; `suite_dir` resolves `evaluate:./folder` metrics."""
    return REGISTRY.get(name, suite_dir)


def check_metric(name: str, task: str) -> str | None:
    """Why `name` is no metric of a `task` suite, or None: what harness.suites' `known_metrics` takes."""
    return REGISTRY.problem(name, task)


def metric_names() -> list[str]:
    return REGISTRY.names()


def require_trust(name: str, trusted: bool, flag: str = "--trust-remote-code") -> None:
    """An `evaluate:` metric runs Python code (a hub script or one in the suite folder): like model
    code from the hub, it runs only when the user allows it."""
    if name.startswith(EVALUATE_PREFIX) and not trusted:
        raise HarnessError(f"metric '{name}' runs the Python code of an evaluate module: pass {flag} to allow it")


def load_suite_metrics(suite: Suite) -> dict[str, Metric]:
    """Every metric of a suite, loaded now (evaluate modules included), so that a missing one
    stops a run before any model work; errors name the suite.toml."""
    out: dict[str, Metric] = {}
    for name in suite.metrics:
        try:
            out[name] = get_metric(name, suite.path)
        except HarnessError as e:
            where = f"{suite.path / 'suite.toml'}: " if suite.path is not None else ""
            raise HarnessError(f"{where}{e}") from None
    return out


def display_metric(name: str) -> Metric | None:
    """The metric, for formatting and direction only: never raises, never loads an evaluate module."""
    if name.startswith(EVALUATE_PREFIX):
        from harness.scoring.hf_evaluate import display_only

        return display_only(name)
    try:
        return REGISTRY.get(name)
    except HarnessError:
        return None


def format_value(name: str, value: float) -> str:
    """A value of `name` as tables show it (3 decimals for an unknown metric)."""
    metric = display_metric(name)
    return metric.format(value) if metric is not None else f"{value:.3f}"


def higher_is_better(name: str) -> bool:
    metric = display_metric(name)
    return True if metric is None else metric.higher_is_better


def scale_of(name: str) -> float | None:
    metric = display_metric(name)
    return 1.0 if metric is None else metric.scale
