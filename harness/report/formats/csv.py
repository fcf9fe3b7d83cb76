"""summary.csv: one row per (strategy, metric) with its interval, n and the cost figures."""

from __future__ import annotations

import csv
import io
import math

from harness.core.results import RunResults
from harness.report.views import cost_columns

CSV_HEAD = ["strategy", "metric", "value", "ci_low", "ci_high", "n"]


def _csv_safe(text: str) -> str:
    # A cell starting with = + - @ is a formula to spreadsheets; strategy names come from users.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_csv(results: RunResults) -> str:
    cols = cost_columns(results)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEAD + [k for k, _, _ in cols])
    for name, s in results.strategies.items():
        for m in results.metric_names():
            lo, hi = s.interval(m)
            writer.writerow([_csv_safe(name), m, *(_csv_num(x) for x in (s.value(m), lo, hi)), s.n]
                            + [_csv_num(s.cost.figure(k)) for k, _, _ in cols])
    return buf.getvalue()


def _csv_num(x: float | None) -> str:
    if x is None or math.isnan(x):
        return ""
    return repr(x) if not float(x).is_integer() else str(int(x))
