"""The recommendation of results.json: which strategy to use, by how much, whether that is
significant, and at what cost, in a sentence a stakeholder can read."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from harness.core.results import Comparison, Recommendation, StrategyResult
from harness.scoring.fmt import fmt_metric, fmt_seconds, p_phrase
from harness.scoring.registry import higher_is_better, scale_of


def _value(strategy: StrategyResult, metric: str) -> float | None:
    v = strategy.value(metric)
    return None if math.isnan(v) else v


def _total(strategy: StrategyResult) -> float:
    return strategy.cost.prepare_s + strategy.cost.predict_s


def _pair(comparisons: Sequence[Comparison], x: str, y: str, metric: str) -> Comparison | None:
    """The comparison of x and y on `metric`, oriented as x - y."""
    return next((c.oriented(x, y) for c in comparisons if c.metric == metric and {c.a, c.b} == {x, y}), None)


def _fmt(metric: str, v: float | None) -> str:
    return fmt_metric(metric, v, missing="n/a")


def _fmt_cost(strategy: StrategyResult) -> str:
    return f"{fmt_seconds(strategy.cost.prepare_s)} to prepare and {fmt_seconds(strategy.cost.predict_s)} to predict"


def _power_text(c: Comparison | None, m: str) -> str:
    """`; with 62 examples only differences above 0.090 f1 can be detected` (80% power, alpha 0.05)."""
    if c is None or c.power is None or c.power.mde is None:
        return ""
    return f"; with {c.n} examples only differences above {_fmt(m, c.power.mde)} {m} can be detected" \
           f" (80% power at alpha {c.power.alpha:g})"


def uninformative(values: Iterable[float | None], metric: str) -> float | None:
    """The value, when every scored strategy (or curve cell) has the same extreme value of `metric`
    (all 0, or all at the top of its scale): such a metric cannot tell them apart. Else None."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if len(values) < 2 or len(set(values)) > 1:
        return None
    return values[0] if values[0] in (0.0, scale_of(metric)) else None


def recommend(strategies: Mapping[str, StrategyResult], comparisons: Sequence[Comparison], primary_metric: str,
              metrics: Sequence[str] = ()) -> Recommendation:
    """The recommendation on the primary metric or, when it is uninformative (every strategy at the
    same extreme value), on the first informative metric of `metrics`; see `_recommend_on`."""
    def stuck_at(m: str) -> float | None:
        return uninformative((_value(s, m) for s in strategies.values()), m)

    stuck = stuck_at(primary_metric)
    if stuck is None:
        return _recommend_on(strategies, comparisons, primary_metric)
    other = next((m for m in metrics if m != primary_metric and stuck_at(m) is None), None)
    note = f"{primary_metric} is uninformative here (every strategy scored {_fmt(primary_metric, stuck)})"
    if other is None:
        return Recommendation(None, primary_metric, text=f"{note}, and so is every other metric: nothing to recommend.")
    advice = _recommend_on(strategies, comparisons, other)
    return Recommendation(advice.winner, advice.metric, advice.runner_up, advice.margin, advice.significant,
                          f"{note}, so this is decided on {other}. {advice.text}", uninformative=[primary_metric])


def _recommend_on(strategies: Mapping[str, StrategyResult], comparisons: Sequence[Comparison],
                  m: str) -> Recommendation:
    """The best strategy on `m` wins, unless a cheaper one (prepare + predict seconds) is not
    significantly worse (Holm-adjusted p >= 0.05): then the cheapest such strategy is recommended,
    with "no significant difference" said plainly, and the runner-up is the top scorer it was
    compared with (margin <= 0). "Best" follows the metric's direction; the margin is how much
    better the winner is (negative: worse)."""
    sign = 1.0 if higher_is_better(m) else -1.0
    values = {name: v for name, s in strategies.items() if (v := _value(s, m)) is not None}
    if not values:
        return Recommendation(None, m, text=f"No strategy has a {m} score, so there is nothing to recommend.")
    ranked = sorted(values, key=lambda name: (-sign * values[name], _total(strategies[name]), name))
    top = ranked[0]
    if len(ranked) == 1:
        return Recommendation(top, m, text=f"Only {top} was scored ({m} {_fmt(m, values[top])}, "
                              f"{_fmt_cost(strategies[top])}); there is nothing to compare it with.")
    cheaper_tied = [name for name in ranked[1:] if _total(strategies[name]) < _total(strategies[top])
                    and not ((c := _pair(comparisons, top, name, m)) and c.significant)]
    if cheaper_tied:
        pick = min(cheaper_tied, key=lambda s: (_total(strategies[s]), -sign * values[s], s))
        return _cheaper_tie(pick, top, strategies, values, comparisons, m)
    return _top_wins(top, ranked[1], strategies, values, comparisons, m)


def _cheaper_tie(pick: str, top: str, strategies: Mapping[str, StrategyResult], values: Mapping[str, float],
                 comparisons: Sequence[Comparison], m: str) -> Recommendation:
    """`pick` is cheaper than the top scorer `top` and not significantly worse: use it."""
    sign = 1.0 if higher_is_better(m) else -1.0
    c = _pair(comparisons, pick, top, m)
    text = (
        f"Use {pick}: its {m} ({_fmt(m, values[pick])}) shows no significant difference from {top}'s "
        f"({_fmt(m, values[top])}; {p_phrase(c.p_holm if c else None)} after Holm's correction{_power_text(c, m)}), "
        f"and it is cheaper ({_fmt_cost(strategies[pick])}, against {_fmt_cost(strategies[top])} for {top})."
    )
    return Recommendation(pick, m, runner_up=top, margin=sign * (values[pick] - values[top]), text=text)


def _top_wins(top: str, runner: str, strategies: Mapping[str, StrategyResult], values: Mapping[str, float],
              comparisons: Sequence[Comparison], m: str) -> Recommendation:
    """No cheaper strategy ties with the top scorer: it wins, significantly or not."""
    sign = 1.0 if higher_is_better(m) else -1.0
    c = _pair(comparisons, top, runner, m)
    significant = bool(c and c.significant and sign * (c.diff or 0.0) > 0)
    p = c.p_holm if c else None
    margin = sign * (values[top] - values[runner])
    head = f"Use {top}: its {m} is {_fmt(m, values[top])} against {_fmt(m, values[runner])} for {runner} (+{_fmt(m, margin)}"
    if c and c.ci[0] is not None:
        head += f", 95% CI [{_fmt(m, c.ci[0])}, {_fmt(m, c.ci[1])}]"
    if significant:
        text = f"{head}, {p_phrase(p)} after Holm's correction), a significant difference; it takes {_fmt_cost(strategies[top])}."
    else:
        # No cheaper strategy ties with the top one, so here the runner-up costs at least as much.
        why = (f"{top} is also no more expensive ({_fmt_cost(strategies[top])}, against "
               f"{_fmt_cost(strategies[runner])} for {runner})")
        text = (f"{head}), but there is no significant difference ({p_phrase(p)} after Holm's correction)"
                f"{_power_text(c, m)}; {why}.")
    return Recommendation(top, m, runner_up=runner, margin=margin, significant=significant, text=text)
