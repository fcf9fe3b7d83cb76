"""From records to the per-strategy and pairwise parts of results.json, as typed records
(harness.core.results): `score_strategy`, `compare_strategies`, `cost_summary`.

Pure functions over `Suite`, `Example` and the scoring pass's `PredictionRecord`s, whose
per-example rows were computed once (harness.scoring.records). Values that are undefined (a metric
on zero examples) are None, never NaN, so results.json stays strict JSON. The recommendation that
reads them is harness.scoring.recommend.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from harness.core.results import Comparison, Cost, MetricValue, Power, SliceCell
from harness.core.runrecord import PredictionRecord, last_wins
from harness.core.types import Example, Suite
from harness.scoring.metric import Metric
from harness.scoring.paired import PairedComparison, paired_comparison
from harness.scoring.power import power_figures
from harness.scoring.rows import answer_of, bind_metrics, rows_over
from harness.scoring.stats import bootstrap_ci, holm, resamples_for_holm

ALPHA = 0.05
MISSING_SLICE = "(missing)"


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _slice_keys(example: Example, field: str) -> list[str]:
    if field not in example.meta:
        return [MISSING_SLICE]
    value = example.meta[field]
    values = value if isinstance(value, (list, tuple)) else [value]  # tags: one slice each
    return [v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True) for v in values]


def capped_note(metric: Metric, resamples: int, wanted: int) -> str | None:
    """A note, only where the metric caps the resamples (it has no sufficient statistics and
    recomputes per resample, like an evaluate module)."""
    if resamples >= wanted:
        return None
    return (f"{metric.name} is recomputed per resample, so {resamples} resamples instead of {wanted}: "
            "its interval and p-values are coarser")


def metric_value(value: float, ci: tuple[float, float], metric: Metric, resamples: int, wanted: int) -> MetricValue:
    note = capped_note(metric, resamples, wanted)
    return MetricValue(_num(value), (_num(ci[0]), _num(ci[1])), resamples if note else None, note)


@dataclass(frozen=True)
class StrategyScores:
    """A strategy's scores on the scored examples: what `score_strategy` gives a StrategyResult."""

    n: int
    metrics: dict[str, MetricValue]
    invalid_rate: float
    errors: int
    slices: dict[str, dict[str, SliceCell]]


def score_strategy(
    suite: Suite,
    examples: Sequence[Example],
    predictions: Sequence[PredictionRecord],
    *,
    seed: int,
    slice_by: Sequence[str] = (),
    n_resamples: int = 1000,
) -> StrategyScores:
    """n, metrics {name: value and interval}, invalid_rate, errors, slices of one strategy.

    Predictions are matched to examples by example_id; an example without a prediction, or
    whose prediction has `error` set, counts as invalid (wrong). `errors` counts those examples;
    `invalid_rate` is the share of examples whose answer is None (errors included).
    """
    preds = last_wins(predictions)
    answers = [answer_of(preds.get(e.id)) for e in examples]
    n = len(examples)
    errors = sum(1 for e in examples if (p := preds.get(e.id)) is None or p.error is not None)

    # Results keep the name the suite used (an alias such as exact_match included).
    aggs = bind_metrics(suite)
    stats = {m: rows_over(aggs[m], m, examples, preds) for m in suite.metrics}
    metrics: dict[str, MetricValue] = {}
    for m in suite.metrics:
        resamples = aggs[m].metric.resamples(n_resamples)
        ci = bootstrap_ci(stats[m], aggs[m], n_resamples=resamples, seed=seed)
        metrics[m] = metric_value(aggs[m](stats[m]), ci, aggs[m].metric, resamples, n_resamples)

    slices: dict[str, dict[str, SliceCell]] = {}
    for field in slice_by:
        groups: dict[str, list[int]] = {}
        for i, e in enumerate(examples):
            for key in _slice_keys(e, field):
                groups.setdefault(key, []).append(i)
        # Slices subset the same rows, so a slice's corpus BLEU is exact, not an average.
        slices[field] = {
            key: SliceCell(len(rows), {m: _num(aggs[m](stats[m][rows])) for m in suite.metrics})
            for key, rows in sorted(groups.items())
        }
    invalid = (sum(a is None for a in answers) / n) if n else 0.0
    return StrategyScores(n, metrics, invalid, errors, slices)


def compare_strategies(
    suite: Suite,
    examples: Sequence[Example],
    predictions_by_strategy: Mapping[str, Sequence[PredictionRecord]],
    *,
    seed: int,
    n_resamples: int = 1000,
) -> list[Comparison]:
    """Every unordered pair of strategies (in the mapping's order) on every suite metric.

    Each pair is compared on the examples both strategies have a prediction for, by
    `harness.scoring.paired.paired_comparison`: diff = a - b with a paired-bootstrap interval;
    p_value is the paired bootstrap's, except for accuracy, where it is the exact McNemar test on
    per-example correctness ("test": "mcnemar_exact"; the bootstrap p is kept as "bootstrap_p").
    Holm's correction is applied per metric across pairs; the bootstrap draws enough resamples for
    its p-values to survive it (`resamples_for_holm`).
    """
    names = list(predictions_by_strategy)
    by_strategy = {s: last_wins(predictions_by_strategy[s]) for s in names}
    n_pairs = len(names) * (len(names) - 1) // 2
    wanted = resamples_for_holm(n_pairs, ALPHA, at_least=n_resamples)
    aggs = bind_metrics(suite)
    rows: list[Comparison] = []
    for a, b in itertools.combinations(names, 2):
        common = [e for e in examples if e.id in by_strategy[a] and e.id in by_strategy[b]]
        for m in suite.metrics:
            res = paired_comparison(rows_over(aggs[m], m, common, by_strategy[a]),
                                    rows_over(aggs[m], m, common, by_strategy[b]),
                                    aggs[m], seed=seed, n_resamples=wanted)
            rows.append(_comparison(a, b, m, len(common), res, capped_note(aggs[m].metric, res.resamples, wanted)))
    return with_holm(rows, suite.metrics)


def with_holm(rows: Sequence[Comparison], metrics: Sequence[str]) -> list[Comparison]:
    """Holm's correction per metric across the pairs, `significant` at ALPHA after it, and the power
    figures of every pair that is not significant (redone whenever a row's test changes)."""
    out = list(rows)
    for m in metrics:
        group = [i for i, r in enumerate(out) if r.metric == m]
        for i, p in zip(group, holm([out[i].p_value for i in group]), strict=True):
            r = replace(out[i], p_holm=p, significant=p < ALPHA, power=None)
            out[i] = r if r.significant else replace(r, power=_power(r))
    return out


def _power(row: Comparison) -> Power | None:
    """For a pair that is not significantly different: what this test set could have detected."""
    lo, hi = row.ci
    if row.diff is None or lo is None or hi is None:
        return None
    power = power_figures(row.diff, (lo, hi), row.n, alpha=ALPHA)
    return None if power is None else Power(_num(power.mde), power.n_needed, power.alpha, power.power)


def _comparison(a: str, b: str, metric: str, n: int, res: PairedComparison, note: str | None) -> Comparison:
    return Comparison(a, b, metric, n, _num(res.diff), (_num(res.ci[0]), _num(res.ci[1])), res.p_value, res.test,
                      res.resamples, mcnemar_p=res.mcnemar_p, bootstrap_p=res.bootstrap_p if res.mcnemar_p is not None
                      else None, note=note)


def cost_summary(
    predictions: Sequence[PredictionRecord],
    *,
    prepare_s: float,
    predict_s: float,
    training_tokens: int = 0,
    usd_per_hour: float | None = None,
    n_correct: float | None = None,
    request_latencies: Sequence[float] | None = None,
    token_prices: tuple[float, float] | None = None,
    recorded_usd: float | None = None,
) -> Cost:
    """The "cost" block of results.json.

    The engine decodes in batches and charges each example an equal share of its batch's wall
    time (`latency_s`): `batch_share_p50_s` / `_p95_s` are percentiles of those shares, a cost
    figure, not what a user would wait for one request. Real per-request latency
    (`latency_p50_s` / `_p95_s`) is only known to a backend that serves requests one by one (an
    OpenAI-compatible server): it passes `request_latencies`; local decoding leaves them None.
    Throughput and dollars come from the wall-clock prepare/predict times. Dollar figures are None
    without a rate; usd_per_correct is (training_usd + inference usd) / n_correct, None when
    nothing is correct. An API model (`token_prices`: USD per million input and output tokens)
    is priced by its tokens instead, with no device-hour cost. n_correct is the sum of per-example scores (`records.score_sum`): right
    answers for labels, F1-weighted answers for free text.
    """
    n = len(predictions)
    shares = np.array([p.latency_s for p in predictions], dtype=np.float64)
    requests = np.array([] if request_latencies is None else request_latencies, dtype=np.float64)
    infer_usd = training_usd = per_1k = per_correct = None
    if recorded_usd is not None:  # outputs produced elsewhere, with what each cost (strategies.outputs)
        infer_usd, training_usd = float(recorded_usd), 0.0
        per_1k = infer_usd / n * 1000.0 if n else None
        if n_correct:
            per_correct = infer_usd / n_correct
    elif token_prices is not None:  # an API model: its own token prices, no device hours
        usd_in, usd_out = token_prices
        prompt = sum(p.prompt_tokens for p in predictions)
        output = sum(p.output_tokens for p in predictions)
        infer_usd = (prompt * usd_in + output * usd_out) / 1e6
        training_usd = 0.0
        per_1k = infer_usd / n * 1000.0 if n else None
        if n_correct:
            per_correct = infer_usd / n_correct
    elif usd_per_hour is not None:
        training_usd = usd_per_hour * prepare_s / 3600.0
        infer_usd = usd_per_hour * predict_s / 3600.0
        per_1k = infer_usd / n * 1000.0 if n else None
        if n_correct:
            per_correct = (training_usd + infer_usd) / n_correct
    return Cost(
        prepare_s=float(prepare_s), predict_s=float(predict_s),
        examples_per_s=n / predict_s if predict_s > 0 else None,
        batch_share_p50_s=_percentile(shares, 50), batch_share_p95_s=_percentile(shares, 95),
        latency_p50_s=_percentile(requests, 50), latency_p95_s=_percentile(requests, 95),
        prompt_tokens_per_example=sum(p.prompt_tokens for p in predictions) / n if n else None,
        output_tokens_per_example=sum(p.output_tokens for p in predictions) / n if n else None,
        training_tokens=int(training_tokens), usd_per_1k_requests=per_1k, training_usd=training_usd,
        usd_per_correct=per_correct,
    )


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


