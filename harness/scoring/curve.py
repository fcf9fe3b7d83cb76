"""Learning-curve statistics: curves over train sizes with intervals that resample both the test
examples and the training seeds, and the size at which one curve overtakes another.

A curve is a metric at each train size, averaged over seeds. The hierarchical bootstrap draws, per
resample, one multiset of test examples (shared by every cell, so strategies stay paired) and one
multiset of seeds (shared by every size and strategy: seed i fixes the train ordering that all of
them saw), and scores every cell on the drawn examples exactly (corpus metrics recomputed from
their rows, as harness.scoring.stats does). All pure numpy, vectorised over resamples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.scoring.stats import _resampled

Aggregate = Callable[[np.ndarray], float]


def crossover(sizes: Sequence[float], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where curve `a` first exceeds curve `b`, per row: the first measured size with a > b,
    linearly interpolated in log(size) from the size before it (where a <= b). At the smallest
    size already: that size. Never: +inf. `a`, `b`: (..., len(sizes)); sizes ascending."""
    x = np.log(np.asarray(sizes, dtype=np.float64))
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    ahead = d > 0
    found = ahead.any(axis=-1)
    j = np.argmax(ahead, axis=-1)  # the first size where a leads (0 where it never does)
    prev = np.maximum(j - 1, 0)
    d_prev = np.take_along_axis(d, prev[..., None], axis=-1)[..., 0]
    d_j = np.take_along_axis(d, j[..., None], axis=-1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(j > 0, -d_prev / (d_j - d_prev), 0.0)  # d_prev <= 0 < d_j: t in [0, 1)
    at = np.where(t == 0, np.asarray(sizes, dtype=np.float64)[prev], np.exp(x[prev] + t * (x[j] - x[prev])))
    return np.where(found, at, np.inf)


def order_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """A percentile interval by order statistics, so +inf (no crossover) sorts last and is never
    interpolated into nan: (lower, upper), either of them possibly inf."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    alpha = (1.0 - confidence) / 2
    lo = v[int(math.floor(alpha * (len(v) - 1)))]
    hi = v[int(math.ceil((1 - alpha) * (len(v) - 1)))]
    return float(lo), float(hi)


@dataclass(frozen=True)
class StrategyCells:
    """One strategy's metric rows: `rows[(size_index, seed_index)]` (n_test x d) for a strategy that
    uses the train split; `flat` for one that does not (measured once, the same at every size)."""

    rows: Mapping[tuple[int, int], np.ndarray] | None = None
    flat: np.ndarray | None = None


@dataclass(frozen=True)
class CurveStats:
    sizes: list[float]
    point: dict[str, np.ndarray]  # strategy -> (S,) mean over seeds on the full test set
    seed_values: dict[str, np.ndarray]  # strategy -> (S, seeds) per-seed values (flat: one column)
    boot: dict[str, np.ndarray]  # strategy -> (R, S) resampled curves


def curve_stats(
    cells: Mapping[str, StrategyCells],
    sizes: Sequence[float],
    n_seeds: int,
    aggregate: Aggregate,
    *,
    n_test: int,
    n_resamples: int = 2000,
    seed: int = 0,
) -> CurveStats:
    """Point curves and their hierarchical bootstrap (see the module docstring)."""
    rng = np.random.default_rng(seed)
    example_idx = rng.integers(0, n_test, size=(n_resamples, n_test))
    seed_idx = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    point, per_seed, boot = {}, {}, {}
    for name, c in cells.items():
        if c.flat is not None:
            value = float(aggregate(c.flat))
            per_seed[name] = np.full((len(sizes), 1), value)
            point[name] = np.full(len(sizes), value)
            boot[name] = np.repeat(_resampled(c.flat, aggregate, example_idx)[:, None], len(sizes), axis=1)
            continue
        assert c.rows is not None
        values = np.full((len(sizes), n_seeds), np.nan)
        resampled = np.full((n_resamples, len(sizes), n_seeds), np.nan)
        for (i, j), rows in c.rows.items():
            values[i, j] = aggregate(rows)
            resampled[:, i, j] = _resampled(rows, aggregate, example_idx)
        per_seed[name] = values
        point[name] = values.mean(axis=1)
        # resampled[r, s, seed_idx[r, k]] for every k: the drawn seeds of resample r, averaged.
        drawn = np.take_along_axis(resampled, seed_idx[:, None, :], axis=2)
        boot[name] = drawn.mean(axis=2)
    return CurveStats(list(sizes), point, per_seed, boot)


def summary(stats: CurveStats, name: str, confidence: float = 0.95) -> list[dict[str, object]]:
    """Per size: the mean over seeds, their sd (0 with one seed), and the bootstrap interval."""
    out = []
    for s, size in enumerate(stats.sizes):
        seeds = stats.seed_values[name][s]
        lo, hi = np.quantile(stats.boot[name][:, s], [(1 - confidence) / 2, (1 + confidence) / 2])
        mean = float(stats.point[name][s])
        out.append({"size": size, "mean": mean, "sd": float(seeds.std(ddof=1)) if len(seeds) > 1 else 0.0,
                    "ci": [min(float(lo), mean), max(float(hi), mean)]})
    return out


def pair_crossover(stats: CurveStats, a: str, b: str, confidence: float = 0.95) -> dict[str, object]:
    """Where `a` overtakes `b`: the point estimate (None: not within the sizes), its interval from
    the bootstrap (None for an end beyond the largest size), and the share of resamples in which
    `a` never overtakes `b`."""
    at = float(crossover(stats.sizes, stats.point[a], stats.point[b]))
    boot = crossover(stats.sizes, stats.boot[a], stats.boot[b])
    lo, hi = order_interval(boot, confidence)
    return {
        "a": a, "b": b,
        "at": at if math.isfinite(at) else None,
        "from_start": bool(stats.point[a][0] > stats.point[b][0]),
        "ci": [lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None],
        "no_crossover_share": float(np.mean(np.isinf(boot))),
        "resamples": len(boot),
    }


def crossovers(stats: CurveStats, uses_train: Mapping[str, bool]) -> list[dict[str, object]]:
    """Every pair with at least one curve that uses the train split, oriented so that `a` is the one
    behind (or level) at the smallest size: the question is whether and where it catches up."""
    names = list(stats.point)
    out = []
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            if not (uses_train[x] or uses_train[y]):
                continue
            a, b = (y, x) if stats.point[x][0] > stats.point[y][0] else (x, y)
            if stats.point[x][0] == stats.point[y][0] and not uses_train[x]:
                a, b = y, x  # level at the start: ask whether the learner pulls ahead
            out.append(pair_crossover(stats, a, b))
    return out
