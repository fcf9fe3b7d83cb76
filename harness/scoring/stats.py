"""Seeded statistics over per-example metric rows: bootstrap intervals and paired tests.

Everything takes the rows of a metric's `stats` (harness.scoring.registry) and an aggregate
(rows -> corpus value), so a resample is just a row index: corpus BLEU of a resample is computed
exactly, not approximated by averaging sentence scores. One index matrix is drawn per call from
`numpy.random.default_rng(seed)`: the same seed gives the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Aggregate = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class PairedResult:
    diff: float  # aggregate(a) - aggregate(b) on the full data
    ci: tuple[float, float]  # percentile interval of the resampled differences
    p_value: float  # two-sided, see paired_bootstrap
    value_a: float = math.nan  # aggregate(a) and aggregate(b) on the full data
    value_b: float = math.nan


def _indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


# Draw-count matrices are (resamples x rows); batches of resamples keep one under ~32 MB.
_COUNT_CELLS = 4_000_000


def _draw_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """counts[r, i] = how often row i appears in resample r."""
    r = len(idx)
    flat = (idx + (np.arange(r) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=r * n).reshape(r, n)


def _resampled(stats: np.ndarray, aggregate: Aggregate, idx: np.ndarray) -> np.ndarray:
    # One row-index per resample; the aggregate sees real rows, so nonlinear corpus metrics
    # (BLEU, macro-F1) are recomputed exactly. An aggregate with `many` (harness.scoring.registry's
    # Aggregator, for a metric with a vectorised aggregate) scores whole batches from draw counts:
    # one matrix product instead of a Python call per resample, which is what makes tens of
    # thousands of resamples affordable.
    many = getattr(aggregate, "many", None)
    if many is None:
        return np.fromiter((aggregate(stats[row]) for row in idx), dtype=np.float64, count=len(idx))
    n = stats.shape[0]
    step = max(1, _COUNT_CELLS // max(n, 1))
    return np.concatenate([many(stats, _draw_counts(idx[i : i + step], n)) for i in range(0, len(idx), step)])


def _percentile_ci(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_ci(
    stats: np.ndarray,
    aggregate: Aggregate,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of aggregate(stats), resampling rows with replacement.

    The interval always contains the point estimate: for nonlinear statistics (BLEU's brevity
    penalty and geometric mean, macro-F1) the resampled distribution is skewed and can sit
    entirely on one side of the full-data value; a report showing a value outside its own
    interval reads as a bug, so the interval is widened to the point estimate in that case.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    stats = np.asarray(stats)
    point = float(aggregate(stats))
    if len(stats) == 0 or math.isnan(point):
        return (math.nan, math.nan)
    values = _resampled(stats, aggregate, _indices(len(stats), n_resamples, seed))
    lo, hi = _percentile_ci(values, confidence)
    return (min(lo, point), max(hi, point))


def paired_bootstrap(
    stats_a: np.ndarray,
    stats_b: np.ndarray,
    aggregate: Aggregate,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedResult:
    """Paired bootstrap of aggregate(a) - aggregate(b): both systems see the same resampled rows.

    p-value: two-sided percentile test, p = min(1, 2 * min(k_le, k_ge)) with
    k_le = (1 + #{resampled diff <= 0}) / (R + 1) and k_ge likewise for >= 0. Resamples with a
    difference of exactly zero count on both sides (conservative), so identical systems get
    p = 1 and a difference that holds in every resample gets p = 2 / (R + 1).
    """
    stats_a, stats_b = np.asarray(stats_a), np.asarray(stats_b)
    if len(stats_a) != len(stats_b):
        raise ValueError(f"paired rows differ in length: {len(stats_a)} vs {len(stats_b)}")
    value_a, value_b = float(aggregate(stats_a)), float(aggregate(stats_b))
    diff = value_a - value_b
    if len(stats_a) == 0 or math.isnan(diff):
        return PairedResult(math.nan, (math.nan, math.nan), 1.0, value_a, value_b)
    idx = _indices(len(stats_a), n_resamples, seed)
    diffs = _resampled(stats_a, aggregate, idx) - _resampled(stats_b, aggregate, idx)
    return paired_result(diffs, value_a, value_b, confidence)


def paired_result(diffs: np.ndarray, value_a: float, value_b: float, confidence: float) -> PairedResult:
    """The observed difference with a percentile interval of its resampled `diffs` (widened to
    contain it) and a two-sided bootstrap p-value with the +1 correction (never exactly 0)."""
    diff = value_a - value_b
    lo, hi = _percentile_ci(diffs, confidence)
    r = len(diffs)
    le = (1 + int(np.count_nonzero(diffs <= 0))) / (r + 1)
    ge = (1 + int(np.count_nonzero(diffs >= 0))) / (r + 1)
    p = min(1.0, 2.0 * min(le, ge))
    return PairedResult(diff, (min(lo, diff), max(hi, diff)), p, value_a, value_b)


def resamples_for_holm(n_tests: int, alpha: float, at_least: int = 1000) -> int:
    """Resamples a paired bootstrap needs when its p-value is Holm-corrected over `n_tests`.

    The bootstrap p-value cannot go below 2 / (R + 1), and Holm multiplies the smallest by the
    number of tests: with 1000 resamples, 28 pairs (8 strategies) could never be significant at
    5%. This keeps the floor 20 times below alpha after correction.
    """
    return max(at_least, math.ceil(40 * n_tests / alpha))


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Two-sided exact McNemar test: binomial(n_discordant, 1/2) on the discordant pairs.

    p = min(1, 2 * P(X <= min(b, c))), computed with exact integers; 1.0 without discordant pairs.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired vectors differ in shape: {a.shape} vs {b.shape}")
    only_a = int(np.count_nonzero(a & ~b))
    only_b = int(np.count_nonzero(~a & b))
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    # Integer division keeps precision for large n before the final float.
    return min(1.0, 2 * tail / 2**n)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (monotone, capped at 1)."""
    p = [float(x) for x in p_values]
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted
