"""The metric registry: every metric is one `Metric` (harness.scoring.metric), found by the name a
suite uses. This is the public entry point for metric authors: `from harness.scoring.registry
import Metric, get_metric`.

Where metrics come from, in lookup order:
- built-ins: `harness.scoring.metrics.register_builtins`, imported on first use;
- `evaluate:NAME_OR_PATH[#KEY]`: a Hugging Face `evaluate` module (`harness.scoring.hf_evaluate`);
- plugins: the entry-point group `sft_harness.metrics`. An entry point is named like its metric
  and resolves to a `Metric` or to a zero-argument factory returning one; a plugin may not take
  a built-in's name.

The built-ins and the evaluate adapter import `metric`, never this module, so the package has
no import cycle (tests/test_layers.py checks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.errors import HarnessError
from harness.core.metricref import EVALUATE_PREFIX, is_evaluate
from harness.core.text import did_you_mean
from harness.core.types import TASKS, Example
from harness.scoring.metric import (
    PAIRED_TESTS,
    SCALES,
    Aggregator,
    Metric,
    MetricContext,
    _shown,
    mean_of_rows,
    mean_of_rows_many,
)

if TYPE_CHECKING:
    import numpy as np

    from harness.core.types import Suite

__all__ = ["ENTRY_POINT_GROUP", "PAIRED_TESTS", "REGISTRY", "SCALES", "Aggregator", "Metric", "MetricContext",
           "Registry", "aggregate", "aggregator", "check_metric", "compute", "display_metric", "format_value",
           "get_metric", "higher_is_better", "load_suite_metrics", "mean_of_rows", "mean_of_rows_many",
           "metric_names", "metric_stats", "require_trust", "scale_of"]

ENTRY_POINT_GROUP = "sft_harness.metrics"
BuiltinLoader = Callable[["Registry"], None]


def load_builtin_metrics(registry: Registry) -> None:
    """The default built-ins: harness.scoring.metrics, imported on first use (so a broken
    dependency of one built-in is reported as such, not as "unknown metric")."""
    from harness.scoring import metrics

    metrics.register_builtins(registry)


class Registry:
    """Built-ins (with aliases) and entry-point plugins; `evaluate:` names go to harness.scoring.hf_evaluate."""

    def __init__(self, builtins: BuiltinLoader = load_builtin_metrics, group: str = ENTRY_POINT_GROUP) -> None:
        self._load, self._group = builtins, group
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
        if is_evaluate(name):
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
        if is_evaluate(name):
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
            self._load(self)
        except HarnessError:
            raise
        except Exception as e:  # say why, instead of calling every built-in "unknown"
            where = getattr(self._load, "__module__", "?") if self._load is not load_builtin_metrics else \
                "harness.scoring.metrics"
            raise HarnessError(f"the built-in metrics ({where}) could not be loaded: "
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
    if is_evaluate(name) and not trusted:
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
    if is_evaluate(name):
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


# --------------------------------------------------------------------------- by name


def aggregator(name: str, task: str, labels: Sequence[str] = ()) -> Aggregator:
    """The metric `name` bound to a task: rows -> value, with a vectorised path for resamples."""
    return get_metric(name).bind(task, labels)


def metric_stats(
    name: str, task: str, answers: Sequence[Any], examples: Sequence[Example], labels: Sequence[str] = ()
) -> np.ndarray:
    """Per-example sufficient statistics of `name`, shape (n_examples, d)."""
    return aggregator(name, task, labels).stats(answers, examples)


def aggregate(name: str, task: str, stats: np.ndarray, labels: Sequence[str] = ()) -> float:
    """The corpus value of `name` from rows of `metric_stats` (any subset or resample)."""
    return aggregator(name, task, labels)(stats)


def compute(
    name: str, task: str, answers: Sequence[Any], examples: Sequence[Example], labels: Sequence[str] = ()
) -> float:
    """The corpus value of one metric."""
    agg = aggregator(name, task, labels)
    return agg(agg.stats(answers, examples))
