"""What each strategy costs at the user's traffic, and when a fine-tune pays for itself.

From each strategy's cost block (harness.scoring.compare.cost_summary: one-off `training_usd` for
what `prepare` did, `usd_per_1k_requests` for decoding, both from measured seconds and the
device-hour price) and an expected monthly volume:
- `monthly_usd`: decoding cost per month at that volume,
- for every pair, the break-even volume: the strategy with the higher one-off cost is cheaper in
  total once it has served (one-off difference) / (per-request saving) requests; "never" when it
  is not cheaper per request as well. With a monthly volume this is also said in months.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any


def _costs(strategy: Mapping[str, Any]) -> tuple[float, float] | None:
    """(one-off usd, usd per request) or None when the run had no price."""
    cost = strategy.get("cost") or {}
    one_off, per_1k = cost.get("training_usd"), cost.get("usd_per_1k_requests")
    if not isinstance(one_off, (int, float)) or not isinstance(per_1k, (int, float)):
        return None
    return float(one_off), float(per_1k) / 1000.0


def break_even(a: str, ca: tuple[float, float], b: str, cb: tuple[float, float],
               monthly_requests: float | None) -> dict[str, Any]:
    """The pair's break-even, `higher` being the strategy with the larger one-off cost."""
    (higher, (t_hi, r_hi)), (lower, (t_lo, r_lo)) = sorted(((a, ca), (b, cb)), key=lambda x: (-x[1][0], x[0]))
    row: dict[str, Any] = {"higher_one_off": higher, "lower_one_off": lower,
                           "one_off_diff_usd": t_hi - t_lo, "per_1k_saving_usd": (r_lo - r_hi) * 1000.0,
                           "break_even_requests": None, "break_even_months": None}
    if t_hi == t_lo:
        row["break_even_requests"] = 0.0 if r_hi <= r_lo else None  # never behind / never ahead
    elif r_hi < r_lo:
        row["break_even_requests"] = (t_hi - t_lo) / (r_lo - r_hi)
    if row["break_even_requests"] is not None and monthly_requests:
        row["break_even_months"] = row["break_even_requests"] / monthly_requests
    return row


def economics(strategies: Mapping[str, dict[str, Any]], *, monthly_requests: float | None,
              usd_per_hour: float | None) -> dict[str, Any]:
    """Add `monthly_usd` to every cost block; return the run's `economics` section."""
    priced: dict[str, tuple[float, float]] = {}
    for name, s in strategies.items():
        c = _costs(s)
        if c is not None:
            priced[name] = c
        cost = s.setdefault("cost", {})
        cost["monthly_usd"] = c[1] * monthly_requests if c is not None and monthly_requests is not None else None
    pairs = [break_even(a, priced[a], b, priced[b], monthly_requests)
             for a, b in itertools.combinations(priced, 2)]
    return {"usd_per_device_hour": usd_per_hour, "monthly_requests": monthly_requests, "break_even": pairs}
