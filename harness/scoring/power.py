"""Statistical power of a paired comparison: what a test set of this size could have detected.

"No significant difference" on 40 examples says little. From the paired bootstrap interval of the
difference (which resamples the per-example rows of both strategies together) comes its standard
error, se = (high - low) / (2 z_{0.975}); a two-sided test at level alpha with power 1 - beta then
detects differences of at least

    mde = (z_{1-alpha/2} + z_{1-beta}) * se

and, since se shrinks as 1/sqrt(n), the observed difference would need about n * (mde / |diff|)^2
examples to be detected with that power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

Z95 = NormalDist().inv_cdf(0.975)  # the bootstrap interval is a 95% one


@dataclass(frozen=True)
class Power:
    mde: float  # smallest difference detectable with `power` at `alpha`, in the metric's scale
    n_needed: int | None  # test examples to detect the observed difference (None: it is zero)
    alpha: float
    power: float


def power_figures(diff: float, ci: tuple[float, float], n: int, *, alpha: float = 0.05,
                  power: float = 0.8) -> Power | None:
    """Power figures of a paired comparison of `n` examples with 95% interval `ci` of `diff`."""
    low, high = ci
    if n < 1 or not all(math.isfinite(x) for x in (diff, low, high)):
        return None
    se = (high - low) / (2 * Z95)
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    mde = z * se
    needed = math.ceil(n * (mde / abs(diff)) ** 2) if diff != 0 else None
    return Power(mde=mde, n_needed=needed, alpha=alpha, power=power)
