"""From predictions to the per-strategy, pairwise and recommendation parts of results.json.

Pure functions over `Suite`, `Example` and `Prediction`; `harness.runner` adds the run-level
fields and writes the file (docs/results-schema.md). Values that are undefined (a metric on
zero examples) are written as None, never NaN, so results.json stays strict JSON.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.core.types import Example, Prediction, Suite
from harness.scoring.registry import Metric, format_value, get_metric, higher_is_better
from harness.scoring.stats import bootstrap_ci, holm, mcnemar_exact, paired_bootstrap, resamples_for_holm

ALPHA = 0.05
MISSING_SLICE = "(missing)"


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _by_id(predictions: Sequence[Prediction]) -> dict[str, Prediction]:
    # A resumed run may write an example twice; the last prediction written wins.
    return {p.example_id: p for p in predictions}


def _answer(pred: Prediction | None) -> Any:
    # No prediction, or one that failed, is an invalid answer: scored as wrong.
    if pred is None or pred.error is not None:
        return None
    return pred.answer


def _slice_keys(example: Example, field: str) -> list[str]:
    if field not in example.meta:
        return [MISSING_SLICE]
    value = example.meta[field]
    values = value if isinstance(value, (list, tuple)) else [value]  # tags: one slice each
    return [v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True) for v in values]


def _suite_metrics(suite: Suite) -> dict[str, Metric]:
    return {m: get_metric(m, suite.path) for m in suite.metrics}


def _capped(metric: Metric, resamples: int, wanted: int) -> dict[str, Any]:
    """`resamples` and a note, only where the metric caps the resamples (it has no sufficient
    statistics and recomputes per resample, like an evaluate module)."""
    if resamples >= wanted:
        return {}
    return {"resamples": resamples, "note": f"{metric.name} is recomputed per resample, so {resamples} resamples "
            f"instead of {wanted}: its interval and p-values are coarser"}


def score_strategy(
    suite: Suite,
    examples: Sequence[Example],
    predictions: Sequence[Prediction],
    *,
    seed: int,
    slice_by: Sequence[str] = (),
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """n, metrics {name: {value, ci}}, invalid_rate, errors, slices of one strategy.

    Predictions are matched to examples by example_id; an example without a prediction, or
    whose prediction has `error` set, counts as invalid (wrong). `errors` counts those examples;
    `invalid_rate` is the share of examples whose answer is None (errors included).
    """
    preds = _by_id(predictions)
    answers = [_answer(preds.get(e.id)) for e in examples]
    n = len(examples)
    errors = sum(1 for e in examples if preds.get(e.id) is None or preds[e.id].error is not None)

    # Results keep the name the suite used (an alias such as exact_match included).
    objs = _suite_metrics(suite)
    aggs = {m: objs[m].bind(suite.task, suite.labels) for m in suite.metrics}
    stats = {m: aggs[m].stats(answers, examples) for m in suite.metrics}
    metrics: dict[str, Any] = {}
    for m in suite.metrics:
        resamples = objs[m].resamples(n_resamples)
        lo, hi = bootstrap_ci(stats[m], aggs[m], n_resamples=resamples, seed=seed)
        metrics[m] = {"value": _num(aggs[m](stats[m])), "ci": [_num(lo), _num(hi)], **_capped(objs[m], resamples, n_resamples)}

    slices: dict[str, Any] = {}
    for field in slice_by:
        groups: dict[str, list[int]] = {}
        for i, e in enumerate(examples):
            for key in _slice_keys(e, field):
                groups.setdefault(key, []).append(i)
        # Slices subset the same rows, so a slice's corpus BLEU is exact, not an average.
        slices[field] = {
            key: {"n": len(rows), "metrics": {m: _num(aggs[m](stats[m][rows])) for m in suite.metrics}}
            for key, rows in sorted(groups.items())
        }

    return {
        "n": n,
        "metrics": metrics,
        "invalid_rate": (sum(a is None for a in answers) / n) if n else 0.0,
        "errors": errors,
        "slices": slices,
    }


def compare_strategies(
    suite: Suite,
    examples: Sequence[Example],
    predictions_by_strategy: Mapping[str, Sequence[Prediction]],
    *,
    seed: int,
    n_resamples: int = 1000,
) -> list[dict[str, Any]]:
    """Every unordered pair of strategies (in the mapping's order) on every suite metric.

    Each pair is compared on the examples both strategies have a prediction for. diff = a - b
    with a paired-bootstrap interval. p_value is the paired bootstrap's, except for accuracy,
    where it is the exact McNemar test on per-example correctness ("test": "mcnemar_exact"; the
    bootstrap p is kept as "bootstrap_p"). Holm's correction is applied per metric across pairs;
    the bootstrap draws enough resamples for its p-values to survive it (`resamples_for_holm`).
    """
    names = list(predictions_by_strategy)
    by_strategy = {s: _by_id(predictions_by_strategy[s]) for s in names}
    n_pairs = len(names) * (len(names) - 1) // 2
    wanted = resamples_for_holm(n_pairs, ALPHA, at_least=n_resamples)
    objs = _suite_metrics(suite)
    rows: list[dict[str, Any]] = []
    for a, b in itertools.combinations(names, 2):
        common = [e for e in examples if e.id in by_strategy[a] and e.id in by_strategy[b]]
        ans_a = [_answer(by_strategy[a][e.id]) for e in common]
        ans_b = [_answer(by_strategy[b][e.id]) for e in common]
        for m in suite.metrics:
            agg = objs[m].bind(suite.task, suite.labels)
            stats_a, stats_b = agg.stats(ans_a, common), agg.stats(ans_b, common)
            resamples = objs[m].resamples(wanted)
            res = paired_bootstrap(stats_a, stats_b, agg, n_resamples=resamples, seed=seed)
            row: dict[str, Any] = {
                "a": a,
                "b": b,
                "metric": m,
                "n": len(common),
                "diff": _num(res.diff),
                "ci": [_num(res.ci[0]), _num(res.ci[1])],
                "p_value": res.p_value,
                "test": "paired_bootstrap",
                "resamples": resamples,
            }
            if objs[m].paired_test == "mcnemar_exact":  # rows are 0/1 correctness
                mc = mcnemar_exact(stats_a[:, 0] > 0.5, stats_b[:, 0] > 0.5)
                row.update(mcnemar_p=mc, bootstrap_p=res.p_value, p_value=mc, test="mcnemar_exact")
            row.update(_capped(objs[m], resamples, wanted))  # evaluate modules: fewer resamples, said so
            rows.append(row)
    for m in suite.metrics:
        group = [r for r in rows if r["metric"] == m]
        for r, p in zip(group, holm([r["p_value"] for r in group]), strict=True):
            r["p_holm"] = p
            r["significant"] = p < ALPHA
    return rows


def cost_summary(
    predictions: Sequence[Prediction],
    *,
    prepare_s: float,
    predict_s: float,
    training_tokens: int = 0,
    usd_per_hour: float | None = None,
    n_correct: float | None = None,
) -> dict[str, Any]:
    """The "cost" block of results.json.

    Latency percentiles come from the per-prediction latencies; throughput and dollars from the
    wall-clock prepare/predict times (batched decoding makes per-request latency overstate the
    cost). Dollar figures are None without a rate; usd_per_correct is (training_usd + inference
    usd) / n_correct, None when nothing is correct. n_correct is the sum of per-example scores
    (`metrics.example_scores`): right answers for labels, F1-weighted answers for free text.
    """
    n = len(predictions)
    latencies = np.array([p.latency_s for p in predictions], dtype=np.float64)
    infer_usd = training_usd = per_1k = per_correct = None
    if usd_per_hour is not None:
        training_usd = usd_per_hour * prepare_s / 3600.0
        infer_usd = usd_per_hour * predict_s / 3600.0
        per_1k = infer_usd / n * 1000.0 if n else None
        if n_correct:
            per_correct = (training_usd + infer_usd) / n_correct
    return {
        "prepare_s": float(prepare_s),
        "predict_s": float(predict_s),
        "examples_per_s": n / predict_s if predict_s > 0 else None,
        "latency_p50_s": float(np.percentile(latencies, 50)) if n else None,
        "latency_p95_s": float(np.percentile(latencies, 95)) if n else None,
        "prompt_tokens_per_example": sum(p.prompt_tokens for p in predictions) / n if n else None,
        "output_tokens_per_example": sum(p.output_tokens for p in predictions) / n if n else None,
        "training_tokens": int(training_tokens),
        "usd_per_1k_requests": per_1k,
        "training_usd": training_usd,
        "usd_per_correct": per_correct,
    }


# --------------------------------------------------------------------------- recommendation


def _value(strategy: Mapping[str, Any], metric: str) -> float | None:
    v = (strategy.get("metrics") or {}).get(metric, {}).get("value")
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _seconds(strategy: Mapping[str, Any]) -> tuple[float, float] | None:
    cost = strategy.get("cost") or {}
    if cost.get("prepare_s") is None or cost.get("predict_s") is None:
        return None
    return float(cost["prepare_s"]), float(cost["predict_s"])


def _total(strategy: Mapping[str, Any]) -> float | None:
    s = _seconds(strategy)
    return None if s is None else s[0] + s[1]


def _pair(comparisons: Sequence[Mapping[str, Any]], x: str, y: str, metric: str) -> dict[str, Any] | None:
    """The comparison of x and y on `metric`, oriented as x - y."""
    for c in comparisons:
        if c.get("metric") != metric:
            continue
        if c.get("a") == x and c.get("b") == y:
            return dict(c)
        if c.get("a") == y and c.get("b") == x:
            flipped = dict(c, a=x, b=y)
            if c.get("diff") is not None:
                flipped["diff"] = -c["diff"]
            ci = c.get("ci")
            if ci and ci[0] is not None and ci[1] is not None:
                flipped["ci"] = [-ci[1], -ci[0]]
            return flipped
    return None


def _fmt(metric: str, v: float | None) -> str:
    return "n/a" if v is None else format_value(metric, v)


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "p not available"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _fmt_cost(strategy: Mapping[str, Any]) -> str:
    s = _seconds(strategy)
    if s is None:
        return "cost not measured"
    return f"{_secs(s[0])} to prepare and {_secs(s[1])} to predict"


def _secs(x: float) -> str:
    return f"{x:.1f} s" if x < 10 else f"{x:.0f} s"


def recommend(
    strategies: Mapping[str, Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]],
    primary_metric: str,
) -> dict[str, Any]:
    """Which strategy to use, by how much, whether that is significant, and at what cost.

    The best strategy on the primary metric wins, unless a cheaper one (prepare + predict
    seconds) is not significantly worse (Holm-adjusted p >= 0.05): then the cheapest such
    strategy is recommended, with "no significant difference" said plainly, and the runner-up
    is the top scorer it was compared with (margin <= 0). "Best" follows the metric's direction;
    the margin is how much better the winner is (negative: worse).
    """
    m = primary_metric
    sign = 1.0 if higher_is_better(m) else -1.0
    values = {name: v for name, s in strategies.items() if (v := _value(s, m)) is not None}
    scored = {name: strategies[name] for name in values}
    if not scored:
        return {
            "winner": None,
            "metric": m,
            "runner_up": None,
            "margin": None,
            "significant": False,
            "text": f"No strategy has a {m} score, so there is nothing to recommend.",
        }

    def rank_key(name: str) -> tuple[float, float, str]:
        total = _total(scored[name])
        return (-sign * values[name], math.inf if total is None else total, name)

    ranked = sorted(scored, key=rank_key)
    top = ranked[0]
    v_top = values[top]
    if len(ranked) == 1:
        return {
            "winner": top,
            "metric": m,
            "runner_up": None,
            "margin": None,
            "significant": False,
            "text": f"Only {top} was scored ({m} {_fmt(m, v_top)}, {_fmt_cost(scored[top])}); "
            "there is nothing to compare it with.",
        }

    top_cost = _total(scored[top])
    cheaper_tied = []
    for name in ranked[1:]:
        cost = _total(scored[name])
        c = _pair(comparisons, top, name, m)
        if top_cost is not None and cost is not None and cost < top_cost and not (c and c.get("significant")):
            cheaper_tied.append(name)

    if cheaper_tied:
        pick = min(cheaper_tied, key=lambda s: (_total(scored[s]), -sign * values[s], s))
        c = _pair(comparisons, pick, top, m)
        v_pick = values[pick]
        p = c.get("p_holm") if c else None
        text = (
            f"Use {pick}: its {m} ({_fmt(m, v_pick)}) shows no significant difference from {top}'s "
            f"({_fmt(m, v_top)}; {_fmt_p(p)} after Holm's correction), and it is cheaper "
            f"({_fmt_cost(scored[pick])}, against {_fmt_cost(scored[top])} for {top})."
        )
        return {
            "winner": pick,
            "metric": m,
            "runner_up": top,
            "margin": sign * (v_pick - v_top),
            "significant": False,
            "text": text,
        }

    runner = ranked[1]
    v_run = values[runner]
    c = _pair(comparisons, top, runner, m)
    significant = bool(c and c.get("significant") and sign * (c.get("diff") or 0.0) > 0)
    p = c.get("p_holm") if c else None
    margin = sign * (v_top - v_run)
    head = f"Use {top}: its {m} is {_fmt(m, v_top)} against {_fmt(m, v_run)} for {runner} (+{_fmt(m, margin)}"
    if c and c.get("ci") and c["ci"][0] is not None:
        head += f", 95% CI [{_fmt(m, c['ci'][0])}, {_fmt(m, c['ci'][1])}]"
    if significant:
        text = f"{head}, {_fmt_p(p)} after Holm's correction), a significant difference; it takes {_fmt_cost(scored[top])}."
    else:
        # No cheaper strategy ties with the top one, so here the runner-up costs at least as much.
        why = (
            f"{top} is also no more expensive ({_fmt_cost(scored[top])}, against "
            f"{_fmt_cost(scored[runner])} for {runner})"
            if top_cost is not None and _total(scored[runner]) is not None
            else "more test examples are needed to tell them apart"
        )
        text = (
            f"{head}), but there is no significant difference ({_fmt_p(p)} after Holm's correction); {why}."
        )
    return {
        "winner": top,
        "metric": m,
        "runner_up": runner,
        "margin": margin,
        "significant": significant,
        "text": text,
    }
