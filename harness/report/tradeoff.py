"""Quality against cost, for the report: which strategies are worth their price.

The cost axis is the dollars per 1,000 requests when the run had a price, else the seconds each
example took (its share of the decoding batch). A strategy is marked when no strategy that costs
no more beats it significantly on the primary metric (Holm-adjusted, as in the comparisons): the
cheapest choices that the evidence does not rule out.
"""

from __future__ import annotations

import math
from typing import Any

from harness.report import svg
from harness.report.views import find_comparison, metric_value, primary_metric
from harness.scoring.fmt import number
from harness.scoring.registry import higher_is_better


def cost_axis(results: dict[str, Any]) -> tuple[str, str]:
    """(cost key, axis title)."""
    costs = [s.get("cost") or {} for s in results["strategies"].values()]
    if costs and all(isinstance(c.get("usd_per_1k_requests"), (int, float)) for c in costs):
        return "usd_per_1k_requests", "USD per 1,000 requests"
    return "batch_share_p50_s", "seconds per example (share of batch)"


def beats(results: dict[str, Any], a: str, b: str, metric: str) -> bool:
    """Whether `a` is significantly better than `b` on `metric`."""
    c = find_comparison(results, a, b, metric)
    if not c or not c.get("significant") or not isinstance(c.get("diff"), (int, float)):
        return False
    diff = c["diff"] if c.get("a") == a else -c["diff"]
    return diff > 0 if higher_is_better(metric) else diff < 0


def marked(results: dict[str, Any], metric: str, key: str) -> set[str]:
    cost = {n: number((s.get("cost") or {}).get(key)) for n, s in results["strategies"].items()}
    return {
        s for s in cost if math.isfinite(cost[s])
        and not any(t != s and math.isfinite(cost[t]) and cost[t] <= cost[s] and beats(results, t, s, metric)
                    for t in cost)
    }


def tradeoff_chart(results: dict[str, Any], colors: dict[str, str]) -> str:
    metric = primary_metric(results)
    key, x_title = cost_axis(results)
    keep = marked(results, metric, key)
    points = []
    for name, s in results["strategies"].items():
        value, low, high = metric_value(s, metric)
        points.append(svg.Point(name, number((s.get("cost") or {}).get(key)), value, low, high,
                                colors.get(name, svg.color(0)), name in keep))
    return svg.scatter_chart(points, x_title=x_title, y_title=metric,
                             title=f"{metric} against cost; ringed: not beaten significantly by a cheaper strategy")
