"""Metrics on the clean subset: the scored test examples that leak into nothing a strategy can see
(harness.engine.leakage). Computed from the same stored per-example rows as the full metrics, so a
reader sees whether a verdict depends on leaked examples.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from harness.core.runrecord import PredictionRecord
from harness.core.types import Example, Suite
from harness.scoring.compare import score_strategy


def clean_subset(
    suite: Suite,
    examples: Sequence[Example],
    predictions: Sequence[PredictionRecord],
    leaked_ids: Collection[str],
    *,
    seed: int,
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """{"clean_metrics": {metric: {value, ci}}, "n_clean": n} when some scored example leaked, else {}."""
    return clean_metrics(suite, examples, leaked_ids, lambda clean: score_strategy(
        suite, clean, predictions, seed=seed, n_resamples=n_resamples)["metrics"])


def clean_metrics(
    suite: Suite,
    examples: Sequence[Example],
    leaked_ids: Collection[str],
    score: Callable[[list[Example]], dict[str, Any]],
) -> dict[str, Any]:
    """The clean-subset section with `score(clean examples)` as its metrics: one strategy's
    predictions (clean_subset) or a multi-seed strategy's (scoring.seeds.clean_seeded)."""
    leaked = set(leaked_ids)
    if not any(e.id in leaked for e in examples):
        return {}
    clean = [e for e in examples if e.id not in leaked]
    if not clean:
        return {"clean_metrics": {m: {"value": None, "ci": [None, None]} for m in suite.metrics}, "n_clean": 0}
    return {"clean_metrics": score(clean), "n_clean": len(clean)}
