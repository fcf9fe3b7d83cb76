"""What each strategy costs at the user's traffic, and when a fine-tune pays for itself.

From each strategy's cost (harness.scoring.compare.cost_summary: one-off `training_usd` for what
`prepare` did, `usd_per_1k_requests` for decoding, both from measured seconds and the device-hour
price, or an API model's token prices) and an expected monthly volume:
- `monthly_usd`: decoding cost per month at that volume,
- for every pair, the break-even volume: the strategy with the higher one-off cost is cheaper in
  total once it has served (one-off difference) / (per-request saving) requests; "never" when it
  is not cheaper per request as well. With a monthly volume this is also said in months.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace

from harness.core.results import BreakEven, Cost, Economics, StrategyResult


def _costs(cost: Cost) -> tuple[float, float] | None:
    """(one-off usd, usd per request) or None when the run had no price."""
    if cost.training_usd is None or cost.usd_per_1k_requests is None:
        return None
    return float(cost.training_usd), float(cost.usd_per_1k_requests) / 1000.0


def break_even(a: str, ca: tuple[float, float], b: str, cb: tuple[float, float],
               monthly_requests: float | None) -> BreakEven:
    """The pair's break-even, `higher` being the strategy with the larger one-off cost."""
    (higher, (t_hi, r_hi)), (lower, (t_lo, r_lo)) = sorted(((a, ca), (b, cb)), key=lambda x: (-x[1][0], x[0]))
    requests: float | None = None
    if t_hi == t_lo:
        requests = 0.0 if r_hi <= r_lo else None  # never behind / never ahead
    elif r_hi < r_lo:
        requests = (t_hi - t_lo) / (r_lo - r_hi)
    months = requests / monthly_requests if requests is not None and monthly_requests else None
    return BreakEven(higher, lower, t_hi - t_lo, (r_lo - r_hi) * 1000.0, requests, months)


def economics(strategies: Mapping[str, StrategyResult], *, monthly_requests: float | None,
              usd_per_hour: float | None) -> tuple[dict[str, StrategyResult], Economics]:
    """The strategies with `monthly_usd` in their cost, and the run's `economics` section."""
    priced = {name: c for name, s in strategies.items() if (c := _costs(s.cost)) is not None}
    out = {name: replace(s, cost=replace(s.cost, monthly_usd=priced[name][1] * monthly_requests
                                         if name in priced and monthly_requests is not None else None))
           for name, s in strategies.items()}
    pairs = [break_even(a, priced[a], b, priced[b], monthly_requests) for a, b in itertools.combinations(priced, 2)]
    return out, Economics(usd_per_hour, monthly_requests, pairs)
