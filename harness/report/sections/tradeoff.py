"""Quality against cost, for the report: which strategies are worth their price.

The cost axis is the dollars per 1,000 requests when the run had a price, else the seconds each
example took (its share of the decoding batch). A strategy is marked when no strategy that costs
no more beats it significantly on the primary metric (Holm-adjusted, as in the comparisons): the
cheapest choices that the evidence does not rule out.
"""

from __future__ import annotations

import math

from harness.core.results import RunResults, number
from harness.report.formats import svg
from harness.scoring.registry import higher_is_better


def cost_axis(results: RunResults) -> tuple[str, str]:
    """(cost key, axis title)."""
    costs = [s.cost for s in results.strategies.values()]
    if costs and all(c.usd_per_1k_requests is not None for c in costs):
        return "usd_per_1k_requests", "USD per 1,000 requests"
    return "batch_share_p50_s", "seconds per example (share of batch)"


def beats(results: RunResults, a: str, b: str, metric: str) -> bool:
    """Whether `a` is significantly better than `b` on `metric`."""
    c = results.comparison(a, b, metric)
    if c is None or not c.significant or c.diff is None:
        return False
    return c.diff > 0 if higher_is_better(metric) else c.diff < 0


def marked(results: RunResults, metric: str, key: str) -> set[str]:
    cost = {n: number(s.cost.figure(key)) for n, s in results.strategies.items()}
    return {
        s for s in cost if math.isfinite(cost[s])
        and not any(t != s and math.isfinite(cost[t]) and cost[t] <= cost[s] and beats(results, t, s, metric)
                    for t in cost)
    }


def tradeoff_chart(results: RunResults, colors: dict[str, str]) -> str:
    metric = results.primary_metric
    key, x_title = cost_axis(results)
    keep = marked(results, metric, key)
    points = []
    for name, s in results.strategies.items():
        low, high = s.interval(metric)
        points.append(svg.Point(name, number(s.cost.figure(key)), s.value(metric), low, high,
                                colors.get(name, svg.color(0)), name in keep))
    return svg.scatter_chart(points, x_title=x_title, y_title=metric,
                             title=f"{metric} against cost; ringed: not beaten significantly by a cheaper strategy")
