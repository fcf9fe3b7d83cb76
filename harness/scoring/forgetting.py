"""Forgetting: what an adapter costs on a control suite it was not trained for (results.json
`forgetting`, docs/results-schema.md).

The adapter's and the base model's predictions on the same control examples are compared paired,
metric by metric, with the comparison every pair of strategies gets (`harness.scoring.paired`):
diff = adapter - base, a paired-bootstrap 95% interval, exact McNemar for accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.core.results import ControlMetric, PerplexityChange
from harness.core.runrecord import PredictionRecord, last_wins
from harness.core.types import Example, Suite
from harness.scoring.paired import paired_comparison
from harness.scoring.rows import bind_metrics, rows_over

ALPHA = 0.05


def _num(x: float) -> float | None:
    return None if math.isnan(float(x)) else float(x)


def control_metrics(
    suite: Suite,
    examples: Sequence[Example],
    base: Sequence[PredictionRecord],
    adapter: Sequence[PredictionRecord],
    *,
    seed: int,
    n_resamples: int = 1000,
) -> dict[str, ControlMetric]:
    """Per metric of the control suite: base and adapter values, their paired difference
    (adapter - base), its interval and p-value, and whether it is significant at ALPHA."""
    base_by_id, adapter_by_id = last_wins(base), last_wins(adapter)
    out: dict[str, ControlMetric] = {}
    for name, binding in bind_metrics(suite).items():
        res = paired_comparison(rows_over(binding, name, examples, adapter_by_id),
                                rows_over(binding, name, examples, base_by_id),
                                binding, seed=seed, n_resamples=n_resamples)
        out[name] = ControlMetric(_num(res.value_b), _num(res.value_a), _num(res.diff),
                                  (_num(res.ci[0]), _num(res.ci[1])), res.p_value, res.test, res.p_value < ALPHA)
    return out


def perplexity_change(base_nll: float, base_tokens: int, adapter_nll: float, adapter_tokens: int,
                      texts: int) -> PerplexityChange:
    """Base and adapter perplexity on the same held-out texts; `change` is adapter - base (a rise:
    the adapter models this text worse), `ratio` adapter / base."""
    if not (base_tokens and adapter_tokens):
        return PerplexityChange(None, None, None, None, texts, 0)
    b, a = math.exp(base_nll / base_tokens), math.exp(adapter_nll / adapter_tokens)
    return PerplexityChange(_num(b), _num(a), _num(a - b), _num(a / b), texts, base_tokens,
                            base_mean_nll=base_nll / base_tokens, adapter_mean_nll=adapter_nll / adapter_tokens)
