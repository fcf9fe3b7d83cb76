"""Numbers as people read them: the one set of formatting helpers that the reports, the gate and
the recommendation text share. A metric's value is shown in its own format (harness.scoring.registry:
0.812 for accuracy, 31.4 for BLEU); a value that is missing or not a number is shown as `missing`.
"""

from __future__ import annotations

import math
from typing import Any

from harness.scoring.registry import format_value

MISSING = "—"
TEST_NAMES = {"paired_bootstrap": "paired bootstrap", "mcnemar_exact": "exact McNemar",
              "hierarchical_bootstrap": "bootstrap over seeds and examples"}


def number(x: Any) -> float:
    """`x` as a float; NaN where it is missing or not a number (results.json is read as data)."""
    try:
        return float(x) if x is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def fmt_metric(metric: str, value: Any, missing: str = MISSING) -> str:
    v = number(value)
    return missing if math.isnan(v) else format_value(metric, v)


def fmt_signed(metric: str, value: Any) -> str:
    """A difference of `metric`, with its sign: +0.042, -1.3."""
    text = fmt_metric(metric, value)
    return text if text.startswith("-") or text == MISSING else "+" + text


def fmt_p(p: Any) -> str:
    """A p-value in a table cell: <0.001, 0.031."""
    v = number(p)
    if math.isnan(v):
        return MISSING
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def p_phrase(p: Any) -> str:
    """A p-value in a sentence: p < 0.001, p = 0.031."""
    v = number(p)
    if math.isnan(v):
        return "p not available"
    return "p < 0.001" if v < 0.001 else f"p = {v:.3f}"


def fmt_num(x: Any, digits: int = 2) -> str:
    v = number(x)
    if math.isnan(v):
        return MISSING
    if digits == 0 or (v.is_integer() and abs(v) >= 1000):
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def fmt_share(x: Any, digits: int = 1) -> str:
    """A fraction as a percentage: 0.025 -> 2.5%."""
    v = number(x)
    return MISSING if math.isnan(v) else f"{100 * v:.{digits}f}%"


def fmt_seconds(x: float) -> str:
    return f"{x:.1f} s" if x < 10 else f"{x:.0f} s"


def paired_test_name(test: str) -> str:
    return TEST_NAMES.get(test, test)
