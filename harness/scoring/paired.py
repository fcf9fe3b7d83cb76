"""The one paired comparison of two systems on the same examples, shared by the pairwise
comparisons of a run (`harness.scoring.compare`) and the regression gate (`harness.gate`).

From the two systems' per-example rows of one metric: the difference of the metric's values with
a paired-bootstrap interval, and a p-value: the exact McNemar test where the metric's rows are 0/1
correctness (`Metric.paired_test == "mcnemar_exact"`: accuracy), the paired bootstrap's otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.scoring.metric import Aggregator
from harness.scoring.stats import mcnemar_exact, paired_bootstrap


@dataclass(frozen=True)
class PairedComparison:
    value_a: float
    value_b: float
    diff: float  # value_a - value_b
    ci: tuple[float, float]  # paired-bootstrap 95% interval of the difference
    p_value: float  # the test's (two-sided)
    test: str  # "mcnemar_exact" | "paired_bootstrap"
    bootstrap_p: float
    mcnemar_p: float | None  # only where the rows are 0/1 correctness
    resamples: int  # what the metric afforded of the resamples asked for (see Metric.resamples)


def paired_comparison(
    stats_a: np.ndarray, stats_b: np.ndarray, binding: Aggregator, *, seed: int, n_resamples: int
) -> PairedComparison:
    """Compare system a with system b on rows of the same examples, in the same order."""
    metric = binding.metric
    resamples = metric.resamples(n_resamples)  # evaluate modules recompute per resample: capped
    boot = paired_bootstrap(stats_a, stats_b, binding, n_resamples=resamples, seed=seed)
    p, test, mcnemar_p = boot.p_value, "paired_bootstrap", None
    if metric.paired_test == "mcnemar_exact":  # rows are 0/1 correctness
        mcnemar_p = mcnemar_exact(np.asarray(stats_a)[:, 0] > 0.5, np.asarray(stats_b)[:, 0] > 0.5)
        p, test = mcnemar_p, "mcnemar_exact"
    return PairedComparison(boot.value_a, boot.value_b, boot.diff, boot.ci, p, test, boot.p_value, mcnemar_p, resamples)
