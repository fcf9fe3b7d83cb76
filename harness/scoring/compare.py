"""From predictions to the per-strategy, pairwise and recommendation parts of results.json.

Pure functions over `Suite`, `Example` and the scoring pass's `PredictionRecord`s, whose
per-example rows were computed once (harness.scoring.records). `harness.runner` adds the run-level fields and writes the file
(docs/results-schema.md). Values that are undefined (a metric on zero examples) are written as
None, never NaN, so results.json stays strict JSON.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.core.runrecord import PredictionRecord, last_wins
from harness.core.types import Example, Suite
from harness.scoring.fmt import fmt_metric, fmt_seconds, p_phrase
from harness.scoring.paired import PairedComparison, paired_comparison
from harness.scoring.power import power_figures
from harness.scoring.registry import Metric, higher_is_better, scale_of
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
    predictions: Sequence[PredictionRecord],
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
    preds = last_wins(predictions)
    answers = [answer_of(preds.get(e.id)) for e in examples]
    n = len(examples)
    errors = sum(1 for e in examples if (p := preds.get(e.id)) is None or p.error is not None)

    # Results keep the name the suite used (an alias such as exact_match included).
    aggs = bind_metrics(suite)
    stats = {m: rows_over(aggs[m], m, examples, preds) for m in suite.metrics}
    metrics: dict[str, Any] = {}
    for m in suite.metrics:
        resamples = aggs[m].metric.resamples(n_resamples)
        lo, hi = bootstrap_ci(stats[m], aggs[m], n_resamples=resamples, seed=seed)
        metrics[m] = {"value": _num(aggs[m](stats[m])), "ci": [_num(lo), _num(hi)],
                      **_capped(aggs[m].metric, resamples, n_resamples)}

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
    predictions_by_strategy: Mapping[str, Sequence[PredictionRecord]],
    *,
    seed: int,
    n_resamples: int = 1000,
) -> list[dict[str, Any]]:
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
    rows: list[dict[str, Any]] = []
    for a, b in itertools.combinations(names, 2):
        common = [e for e in examples if e.id in by_strategy[a] and e.id in by_strategy[b]]
        for m in suite.metrics:
            res = paired_comparison(rows_over(aggs[m], m, common, by_strategy[a]),
                                    rows_over(aggs[m], m, common, by_strategy[b]),
                                    aggs[m], seed=seed, n_resamples=wanted)
            rows.append({"a": a, "b": b, "metric": m, "n": len(common), **_comparison(res),
                         **_capped(aggs[m].metric, res.resamples, wanted)})  # evaluate modules: fewer, said so
    for m in suite.metrics:
        group = [r for r in rows if r["metric"] == m]
        for r, p in zip(group, holm([r["p_value"] for r in group]), strict=True):
            r["p_holm"] = p
            r["significant"] = p < ALPHA
            if not r["significant"] and r["diff"] is not None and None not in r["ci"]:
                _add_power(r)
    return rows


def _add_power(row: dict[str, Any]) -> None:
    """For a pair that is not significantly different: what this test set could have detected."""
    power = power_figures(row["diff"], (row["ci"][0], row["ci"][1]), row["n"], alpha=ALPHA)
    if power is not None:
        row["power"] = {"mde": _num(power.mde), "n_needed": power.n_needed, "alpha": power.alpha,
                        "power": power.power}


def _comparison(res: PairedComparison) -> dict[str, Any]:
    row: dict[str, Any] = {"diff": _num(res.diff), "ci": [_num(res.ci[0]), _num(res.ci[1])],
                           "p_value": res.p_value, "test": res.test, "resamples": res.resamples}
    if res.mcnemar_p is not None:
        row.update(mcnemar_p=res.mcnemar_p, bootstrap_p=res.bootstrap_p)
    return row


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
) -> dict[str, Any]:
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
    if token_prices is not None:  # an API model: its own token prices, no device hours
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
    return {
        "prepare_s": float(prepare_s),
        "predict_s": float(predict_s),
        "examples_per_s": n / predict_s if predict_s > 0 else None,
        "batch_share_p50_s": _percentile(shares, 50),
        "batch_share_p95_s": _percentile(shares, 95),
        "latency_p50_s": _percentile(requests, 50),
        "latency_p95_s": _percentile(requests, 95),
        "prompt_tokens_per_example": sum(p.prompt_tokens for p in predictions) / n if n else None,
        "output_tokens_per_example": sum(p.output_tokens for p in predictions) / n if n else None,
        "training_tokens": int(training_tokens),
        "usd_per_1k_requests": per_1k,
        "training_usd": training_usd,
        "usd_per_correct": per_correct,
    }


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


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
    return fmt_metric(metric, v, missing="n/a")


def _fmt_cost(strategy: Mapping[str, Any]) -> str:
    s = _seconds(strategy)
    if s is None:
        return "cost not measured"
    return f"{fmt_seconds(s[0])} to prepare and {fmt_seconds(s[1])} to predict"


def _power_text(c: Mapping[str, Any] | None, m: str) -> str:
    """`; with 62 examples only differences above 0.090 f1 can be detected` (80% power, alpha 0.05)."""
    power = (c or {}).get("power")
    if not power or power.get("mde") is None:
        return ""
    return f"; with {c['n']} examples only differences above {_fmt(m, power['mde'])} {m} can be detected" \
           f" (80% power at alpha {power['alpha']:g})" if c else ""


def _advice(winner: str | None, metric: str, text: str, runner_up: str | None = None, margin: float | None = None,
            significant: bool = False) -> dict[str, Any]:
    return {"winner": winner, "metric": metric, "runner_up": runner_up, "margin": margin,
            "significant": significant, "text": text}


def uninformative(strategies: Mapping[str, Mapping[str, Any]], metric: str) -> float | None:
    """The value, when every scored strategy has the same extreme value of `metric` (all 0, or
    all at the top of its scale): such a metric cannot tell strategies apart. Else None."""
    values = [v for s in strategies.values() if (v := _value(s, metric)) is not None]
    if len(values) < 2 or len(set(values)) > 1:
        return None
    return values[0] if values[0] in (0.0, scale_of(metric)) else None


def recommend(
    strategies: Mapping[str, Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]],
    primary_metric: str,
    metrics: Sequence[str] = (),
) -> dict[str, Any]:
    """The recommendation on the primary metric or, when it is uninformative (every strategy at the
    same extreme value), on the first informative metric of `metrics`; see `_recommend_on`."""
    stuck = uninformative(strategies, primary_metric)
    if stuck is None:
        return _recommend_on(strategies, comparisons, primary_metric)
    other = next((m for m in metrics if m != primary_metric and uninformative(strategies, m) is None), None)
    note = f"{primary_metric} is uninformative here (every strategy scored {_fmt(primary_metric, stuck)})"
    if other is None:
        return _advice(None, primary_metric, f"{note}, and so is every other metric: nothing to recommend.")
    advice = _recommend_on(strategies, comparisons, other)
    advice["text"] = f"{note}, so this is decided on {other}. {advice['text']}"
    advice["uninformative"] = [primary_metric]
    return advice


def _recommend_on(
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
        return _advice(None, m, f"No strategy has a {m} score, so there is nothing to recommend.")

    def rank_key(name: str) -> tuple[float, float, str]:
        total = _total(scored[name])
        return (-sign * values[name], math.inf if total is None else total, name)

    ranked = sorted(scored, key=rank_key)
    top = ranked[0]
    if len(ranked) == 1:
        return _advice(top, m, f"Only {top} was scored ({m} {_fmt(m, values[top])}, {_fmt_cost(scored[top])}); "
                       "there is nothing to compare it with.")
    top_cost = _total(scored[top])
    cheaper_tied = []
    for name in ranked[1:]:
        cost = _total(scored[name])
        c = _pair(comparisons, top, name, m)
        if top_cost is not None and cost is not None and cost < top_cost and not (c and c.get("significant")):
            cheaper_tied.append(name)
    if cheaper_tied:
        pick = min(cheaper_tied, key=lambda s: (_total(scored[s]), -sign * values[s], s))
        return _cheaper_tie(pick, top, scored, values, comparisons, m)
    return _top_wins(top, ranked[1], scored, values, comparisons, m)


def _cheaper_tie(pick: str, top: str, scored: Mapping[str, Mapping[str, Any]], values: Mapping[str, float],
                 comparisons: Sequence[Mapping[str, Any]], m: str) -> dict[str, Any]:
    """`pick` is cheaper than the top scorer `top` and not significantly worse: use it."""
    sign = 1.0 if higher_is_better(m) else -1.0
    c = _pair(comparisons, pick, top, m)
    p = c.get("p_holm") if c else None
    text = (
        f"Use {pick}: its {m} ({_fmt(m, values[pick])}) shows no significant difference from {top}'s "
        f"({_fmt(m, values[top])}; {p_phrase(p)} after Holm's correction{_power_text(c, m)}), and it is cheaper "
        f"({_fmt_cost(scored[pick])}, against {_fmt_cost(scored[top])} for {top})."
    )
    return _advice(pick, m, text, runner_up=top, margin=sign * (values[pick] - values[top]))


def _top_wins(top: str, runner: str, scored: Mapping[str, Mapping[str, Any]], values: Mapping[str, float],
              comparisons: Sequence[Mapping[str, Any]], m: str) -> dict[str, Any]:
    """No cheaper strategy ties with the top scorer: it wins, significantly or not."""
    sign = 1.0 if higher_is_better(m) else -1.0
    v_top, v_run = values[top], values[runner]
    c = _pair(comparisons, top, runner, m)
    significant = bool(c and c.get("significant") and sign * (c.get("diff") or 0.0) > 0)
    p = c.get("p_holm") if c else None
    margin = sign * (v_top - v_run)
    head = f"Use {top}: its {m} is {_fmt(m, v_top)} against {_fmt(m, v_run)} for {runner} (+{_fmt(m, margin)}"
    if c and c.get("ci") and c["ci"][0] is not None:
        head += f", 95% CI [{_fmt(m, c['ci'][0])}, {_fmt(m, c['ci'][1])}]"
    if significant:
        text = f"{head}, {p_phrase(p)} after Holm's correction), a significant difference; it takes {_fmt_cost(scored[top])}."
    else:
        # No cheaper strategy ties with the top one, so here the runner-up costs at least as much.
        why = (
            f"{top} is also no more expensive ({_fmt_cost(scored[top])}, against "
            f"{_fmt_cost(scored[runner])} for {runner})"
            if _total(scored[top]) is not None and _total(scored[runner]) is not None
            else "more test examples are needed to tell them apart"
        )
        text = f"{head}), but there is no significant difference ({p_phrase(p)} after Holm's correction){_power_text(c, m)}; {why}."
    return _advice(top, m, text, runner_up=runner, margin=margin, significant=significant)
