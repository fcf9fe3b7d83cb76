"""Metrics on the clean subset: the scored test examples that leak into nothing a strategy can see
(harness.engine.leakage). Computed from the same stored per-example rows as the full metrics, so a
reader sees whether a verdict depends on leaked examples.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from harness.core.results import MetricValue
from harness.core.runrecord import PredictionRecord
from harness.core.types import Example, Suite
from harness.scoring.compare import score_strategy

Clean = tuple[dict[str, MetricValue], int]  # (clean_metrics, n_clean)


def clean_subset(
    suite: Suite,
    examples: Sequence[Example],
    predictions: Sequence[PredictionRecord],
    leaked_ids: Collection[str],
    *,
    seed: int,
    n_resamples: int = 1000,
) -> Clean | None:
    """(metrics on the clean subset, its size) when some scored example leaked, else None."""
    return clean_metrics(suite, examples, leaked_ids, lambda clean: score_strategy(
        suite, clean, predictions, seed=seed, n_resamples=n_resamples).metrics)


def clean_metrics(
    suite: Suite,
    examples: Sequence[Example],
    leaked_ids: Collection[str],
    score: Callable[[list[Example]], dict[str, MetricValue]],
) -> Clean | None:
    """The clean-subset metrics with `score(clean examples)`: one strategy's predictions
    (clean_subset) or a multi-seed strategy's (scoring.seeds.clean_seeded)."""
    leaked = set(leaked_ids)
    if not any(e.id in leaked for e in examples):
        return None
    clean = [e for e in examples if e.id not in leaked]
    if not clean:
        return {m: MetricValue(None) for m in suite.metrics}, 0
    return score(clean), len(clean)
