"""Metrics on the clean subset: the scored test examples that leak into nothing a strategy can see
(harness.engine.leakage). Computed from the same stored per-example rows as the full metrics, so a
reader sees whether a verdict depends on leaked examples.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from harness.core.types import Example, Suite
from harness.scoring.compare import score_strategy
from harness.scoring.rows import Predicted


def clean_subset(
    suite: Suite,
    examples: Sequence[Example],
    predictions: Sequence[Predicted],
    leaked_ids: Collection[str],
    *,
    seed: int,
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """{"clean_metrics": {metric: {value, ci}}, "n_clean": n} when some scored example leaked, else {}."""
    leaked = set(leaked_ids)
    if not any(e.id in leaked for e in examples):
        return {}
    clean = [e for e in examples if e.id not in leaked]
    if not clean:
        metrics = {m: {"value": None, "ci": [None, None]} for m in suite.metrics}
    else:
        metrics = score_strategy(suite, clean, predictions, seed=seed, n_resamples=n_resamples)["metrics"]
    return {"clean_metrics": metrics, "n_clean": len(clean)}
