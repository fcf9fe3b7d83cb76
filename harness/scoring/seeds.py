"""Training-seed variance: a strategy trained once per seed (`sft:seeds=3`) is scored as the mean of
its per-seed metrics, with intervals and paired tests that resample seeds as well as examples.

The design is crossed, not nested: every seed's adapter is decoded on the same test examples. So
one resample draws seeds with replacement and, independently, one set of examples with replacement
that every drawn seed is scored on; the resampled value is the mean over the drawn seeds of the
metric on the drawn examples (the "pigeonhole" bootstrap of a crossed design). Drawing examples
anew per seed would let the example noise average out over seeds, which it does not: the seeds
share the test set. The metric of a resample is computed per seed on real rows (corpus BLEU and
macro-F1 stay exact) and then averaged, so a multi-seed value is always the mean of the per-seed
values that results.json lists.

A paired comparison resamples the examples once for both strategies (they share them) and each
strategy's seeds independently (different training runs). The per-example score of a multi-seed
strategy is thus, in effect, the mean over its seeds; McNemar's test does not apply to such
fractional correctness, so the p-value is the bootstrap's. With one seed per strategy everything
here reduces to harness.scoring.stats (the same draws from the same seed), so it is only used when
some strategy has more than one seed.

With few seeds (3 is common) the bootstrap sees the seed-to-seed spread only through those few
values and understates it when seeds dominate the noise; the report therefore also shows the
per-seed values and their standard deviation, and says when that spread exceeds a claimed difference.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from harness.core.results import Comparison, MetricValue, Recommendation, SliceCell, StrategyResult
from harness.core.runrecord import PredictionRecord, last_wins
from harness.core.types import Example, Suite
from harness.scoring.clean import clean_metrics
from harness.scoring.compare import (
    ALPHA,
    StrategyScores,
    _num,
    capped_note,
    metric_value,
    score_strategy,
    with_holm,
)
from harness.scoring.rows import bind_metrics, rows_over
from harness.scoring.stats import (
    Aggregate,
    PairedResult,
    _percentile_ci,
    _resampled,
    paired_result,
    resamples_for_holm,
)


def seed_values(stats_by_seed: Sequence[np.ndarray], aggregate: Aggregate) -> np.ndarray:
    """The metric of each seed's rows (one array of per-example rows per seed)."""
    return np.array([float(aggregate(np.asarray(s))) for s in stats_by_seed], dtype=np.float64)


def seed_sd(values: Sequence[float | None] | np.ndarray) -> float | None:
    """Sample standard deviation (n - 1) of per-seed values; None for fewer than two finite ones."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    return float(np.std(v, ddof=1)) if len(v) >= 2 else None


def _draws(stats_by_seed: Sequence[np.ndarray], aggregate: Aggregate, ex_idx: np.ndarray,
           seed_idx: np.ndarray) -> np.ndarray:
    """Resampled values: per resample r, the mean over seeds seed_idx[r] of the metric on rows ex_idx[r]."""
    per_seed = np.stack([_resampled(np.asarray(s), aggregate, ex_idx) for s in stats_by_seed], axis=1)  # R x S
    return np.take_along_axis(per_seed, seed_idx, axis=1).mean(axis=1)


def _check(stats_by_seed: Sequence[np.ndarray]) -> int:
    if not stats_by_seed:
        raise ValueError("no seeds")
    lengths = {len(s) for s in stats_by_seed}
    if len(lengths) > 1:
        raise ValueError(f"the seeds' rows differ in length: {sorted(lengths)}")
    return lengths.pop()


def hierarchical_ci(
    stats_by_seed: Sequence[np.ndarray],
    aggregate: Aggregate,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of the mean over seeds of aggregate(rows), resampling seeds and examples
    (see the module docstring); widened to contain the point estimate, as bootstrap_ci is."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    n = _check(stats_by_seed)
    point = float(seed_values(stats_by_seed, aggregate).mean())
    if n == 0 or math.isnan(point):
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    ex_idx = rng.integers(0, n, size=(n_resamples, n))  # first, as stats._indices draws it
    seed_idx = rng.integers(0, len(stats_by_seed), size=(n_resamples, len(stats_by_seed)))
    lo, hi = _percentile_ci(_draws(stats_by_seed, aggregate, ex_idx, seed_idx), confidence)
    return (min(lo, point), max(hi, point))


def hierarchical_paired(
    stats_a: Sequence[np.ndarray],
    stats_b: Sequence[np.ndarray],
    aggregate: Aggregate,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedResult:
    """Paired bootstrap of mean-over-seeds(a) - mean-over-seeds(b): the same resampled examples for
    both, each side's seeds drawn independently; the p-value as in stats.paired_bootstrap."""
    n_a, n_b = _check(stats_a), _check(stats_b)
    if n_a != n_b:
        raise ValueError(f"paired rows differ in length: {n_a} vs {n_b}")
    value_a = float(seed_values(stats_a, aggregate).mean())
    value_b = float(seed_values(stats_b, aggregate).mean())
    diff = value_a - value_b
    if n_a == 0 or math.isnan(diff):
        return PairedResult(math.nan, (math.nan, math.nan), 1.0, value_a, value_b)
    rng = np.random.default_rng(seed)
    ex_idx = rng.integers(0, n_a, size=(n_resamples, n_a))
    seeds_a = rng.integers(0, len(stats_a), size=(n_resamples, len(stats_a)))
    seeds_b = rng.integers(0, len(stats_b), size=(n_resamples, len(stats_b)))
    diffs = _draws(stats_a, aggregate, ex_idx, seeds_a) - _draws(stats_b, aggregate, ex_idx, seeds_b)
    return paired_result(diffs, value_a, value_b, confidence)


def spread_note(name: str, entry: StrategyResult, metric: str, diff: float | None) -> str | None:
    """"the seed spread of sft (sd 0.031 over 3 seeds) is larger than the difference (0.020)", when it is."""
    sd = (entry.seed_sd or {}).get(metric)
    if sd is None or diff is None or sd <= abs(diff):
        return None
    return f"the training-seed spread of {name} (sd {sd:.3g} over {len(entry.seeds or [])} seeds) is " \
           f"larger than the difference ({abs(diff):.3g} {metric})"


@dataclass(frozen=True)
class SeededScores(StrategyScores):
    """score_strategy's scores of a strategy trained once per seed, with the per-seed values."""

    seeds: list[int]
    per_seed: dict[str, list[float | None]]
    seed_sd: dict[str, float | None]


# --------------------------------------------------------------------------- results.json


def score_seeded(
    suite: Suite,
    examples: Sequence[Example],
    records_by_seed: Mapping[int, Sequence[PredictionRecord]],
    *,
    seed: int,
    slice_by: Sequence[str] = (),
    n_resamples: int = 1000,
) -> SeededScores:
    """score_strategy's scores for a strategy trained once per seed (`records_by_seed`: training
    seed -> its records): each metric the mean over seeds with a hierarchical interval, slices and
    the invalid rate averaged over seeds, errors counted over every seed's decodes; plus `seeds`,
    `per_seed` {metric: [value per seed]} and `seed_sd` {metric: sd over seeds}."""
    runs = list(records_by_seed.values())
    per = [score_strategy(suite, examples, r, seed=seed, slice_by=slice_by, n_resamples=n_resamples) for r in runs]
    aggs = bind_metrics(suite)
    metrics: dict[str, MetricValue] = {}
    per_seed: dict[str, list[float | None]] = {}
    sds: dict[str, float | None] = {}
    for m in suite.metrics:
        stats = [rows_over(aggs[m], m, examples, last_wins(r)) for r in runs]
        values = seed_values(stats, aggs[m])
        resamples = aggs[m].metric.resamples(n_resamples)
        ci = hierarchical_ci(stats, aggs[m], n_resamples=resamples, seed=seed)
        metrics[m] = metric_value(float(values.mean()), ci, aggs[m].metric, resamples, n_resamples)
        per_seed[m] = [_num(v) for v in values]
        sds[m] = seed_sd(values)
    return SeededScores(per[0].n, metrics, float(np.mean([p.invalid_rate for p in per])),
                        sum(p.errors for p in per), _mean_slices([p.slices for p in per]),
                        list(records_by_seed), per_seed, sds)


def _mean_slices(per_seed: Sequence[Mapping[str, Mapping[str, SliceCell]]]) -> dict[str, dict[str, SliceCell]]:
    """The seeds' slice tables with each metric the mean over seeds (None where a seed has none)."""
    out: dict[str, dict[str, SliceCell]] = {}
    for field, groups in per_seed[0].items():
        out[field] = {}
        for key, cell in groups.items():
            cells = [s[field][key].metrics for s in per_seed]
            out[field][key] = SliceCell(cell.n, {
                m: None if any(c.get(m) is None for c in cells) else float(np.mean([c[m] for c in cells]))
                for m in cell.metrics})
    return out


def clean_seeded(
    suite: Suite,
    examples: Sequence[Example],
    records_by_seed: Mapping[int, Sequence[PredictionRecord]],
    leaked_ids: Collection[str],
    *,
    seed: int,
    n_resamples: int = 1000,
) -> tuple[dict[str, MetricValue], int] | None:
    """clean_subset for a multi-seed strategy: the metrics of the examples that do not leak, over seeds."""
    return clean_metrics(suite, examples, leaked_ids, lambda clean: score_seeded(
        suite, clean, records_by_seed, seed=seed, n_resamples=n_resamples).metrics)


def seeded_comparisons(
    suite: Suite,
    examples: Sequence[Example],
    comparisons: Sequence[Comparison],
    runs: Mapping[str, Mapping[int, Sequence[PredictionRecord]]],
    strategies: Mapping[str, StrategyResult],
    *,
    seed: int,
    n_resamples: int = 1000,
) -> list[Comparison]:
    """compare_strategies' rows, with each pair that involves a multi-seed strategy tested again by
    `hierarchical_paired` (`runs[name]`: training seed -> records; one entry for a single-seed
    strategy), then Holm's correction and the power figures redone per metric. Such rows get
    `seed_sd` ({strategy: sd}) and, where a spread exceeds the difference, `seed_note`."""
    by = {name: [last_wins(r) for r in seeds.values()] for name, seeds in runs.items()}
    n_pairs = len(by) * (len(by) - 1) // 2
    wanted = resamples_for_holm(n_pairs, ALPHA, at_least=n_resamples)
    aggs = bind_metrics(suite)
    out = []
    for row in comparisons:
        a, b, m = row.a, row.b, row.metric
        if len(by[a]) == 1 and len(by[b]) == 1:
            out.append(row)
            continue
        common = [e for e in examples if all(e.id in d for d in by[a] + by[b])]
        resamples = aggs[m].metric.resamples(wanted)
        res = hierarchical_paired([rows_over(aggs[m], m, common, d) for d in by[a]],
                                  [rows_over(aggs[m], m, common, d) for d in by[b]],
                                  aggs[m], n_resamples=resamples, seed=seed)
        diff = _num(res.diff)
        sds = {x: (strategies[x].seed_sd or {}).get(m) for x in (a, b) if strategies[x].seed_sd}
        notes = [n for x in (a, b) if (n := spread_note(x, strategies[x], m, diff))]
        out.append(Comparison(a, b, m, len(common), diff, (_num(res.ci[0]), _num(res.ci[1])), res.p_value,
                              "hierarchical_bootstrap", resamples, note=capped_note(aggs[m].metric, resamples, wanted),
                              seed_sd=sds, seed_note="; ".join(notes) or None))
    return with_holm(out, suite.metrics)


def seed_advice(advice: Recommendation, comparisons: Sequence[Comparison]) -> Recommendation:
    """The recommendation, with a warning when the seed spread of the pair it rests on exceeds their difference."""
    pair = {advice.winner, advice.runner_up}
    row = next((c for c in comparisons if c.metric == advice.metric and {c.a, c.b} == pair and c.seed_note), None)
    if row is None or row.seed_note is None:
        return advice
    return replace(advice, seed_note=row.seed_note, text=f"{advice.text} Caution: {row.seed_note}, so a single adapter "
                   "trained with another seed may land on the other side of it.")
