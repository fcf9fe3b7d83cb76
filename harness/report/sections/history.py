"""Metric history across runs: `<out>/index.jsonl` beside the run folders (`reports/index.jsonl` by
default), one line per (run, strategy).

Appending is one write of whole lines to a file opened for append, then fsync, so concurrent
or interrupted runs never interleave half lines; a line that is corrupt anyway (a crash
mid-write, a bad merge, a hand edit) is reported with file:line and skipped, never fatal.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.core import jsonl
from harness.core.results import RunResults
from harness.scoring.fmt import fmt_metric, fmt_signed

INDEX = "index.jsonl"
BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_POINTS = 20  # the last N runs; a wider sparkline stops being readable in a table cell


def entries_for(results: RunResults, run_dir: Path | str) -> list[dict[str, Any]]:
    """The history lines of one run: one per strategy, with its metric values."""
    suite = results.suite
    return [{"run_id": results.run_id, "created": results.created, "suite": suite.name,
             "suite_sha256": suite.sha256, "primary_metric": suite.primary_metric, "model": results.model.name,
             "strategy": name, "n": s.n, "metrics": {m: v.value for m, v in s.metrics.items()},
             "run_dir": str(run_dir)} for name, s in results.strategies.items()]


def append_run(reports_root: Path, results: RunResults, run_dir: Path | None = None) -> None:
    """Append the run's lines to the history file of the folder its run folder is in (the run's
    --out: `<out>/index.jsonl`), one write, flushed and fsynced; a torn last line left by a crash
    is closed first (harness.core.jsonl)."""
    reports_root = Path(reports_root)
    reports_root.mkdir(parents=True, exist_ok=True)
    jsonl.append(reports_root / INDEX, entries_for(results, run_dir or reports_root / results.run_id))


def load_history(
    reports_root: Path, suite: str | None = None, *, problems: list[str] | None = None
) -> list[dict[str, Any]]:
    """Entries of index.jsonl (of one suite if given), oldest first; a run re-appended for the
    same strategy keeps its last line. Corrupt lines go to `problems` (or stderr) and are skipped."""
    path = Path(reports_root) / INDEX
    if not path.is_file():
        return []
    found: list[str] = []
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for line in jsonl.read(path):  # lines by \n only; deep nesting or huge numbers are a line's problem
        entry, why = _entry(line)
        if entry is None:
            found.append(f"{path}:{line.number}: {why}; line skipped")
            continue
        if suite is None or entry["suite"] == suite:
            key = (entry["run_id"], entry["strategy"])
            by_key.pop(key, None)
            by_key[key] = entry
    if problems is not None:
        problems.extend(found)
    else:
        for msg in found:
            print(f"warning: {msg}", file=sys.stderr)
    return sorted(by_key.values(), key=lambda e: created_time(e.get("created")))


def _entry(line: jsonl.Line) -> tuple[dict[str, Any] | None, str]:
    if line.error is not None:
        return None, f"not valid JSON ({line.error.removeprefix('bad JSON: ')})" if line.error.startswith("bad JSON") \
            else line.error
    entry = line.value
    if not isinstance(entry, dict):
        return None, f"expected a JSON object, got {type(entry).__name__}"
    for key in ("run_id", "strategy", "suite"):
        if not isinstance(entry.get(key), str):
            return None, f"missing or non-text '{key}'"
    if not isinstance(entry.get("metrics"), dict):
        return None, "missing 'metrics' object"
    return entry, ""


def created_time(created: Any) -> datetime:
    """A run's `created` as an aware datetime (naive means UTC; unparseable sorts first)."""
    try:
        t = datetime.fromisoformat(str(created))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def sparkline(values: Sequence[float | None]) -> str:
    """Unicode blocks scaled to the min..max of the finite values; a gap for a missing one."""
    vals = [v if isinstance(v, (int, float)) and math.isfinite(v) else None for v in values][-SPARK_POINTS:]
    finite = [v for v in vals if v is not None]
    if not finite:
        return ""
    lo, hi = min(finite), max(finite)
    if hi == lo:
        return "".join(BLOCKS[3] if v is not None else " " for v in vals)
    return "".join(
        BLOCKS[round((v - lo) / (hi - lo) * (len(BLOCKS) - 1))] if v is not None else " " for v in vals
    )


def print_history(reports_root: Path, suite: str | None, console: Console) -> None:
    """A trend table per suite: per strategy and metric, runs, latest value, change, sparkline."""
    problems: list[str] = []
    entries = load_history(reports_root, suite, problems=problems)
    for msg in problems:
        console.print(Text(f"warning: {msg}", style="yellow"))
    path = Path(reports_root) / INDEX
    if not entries:
        where = f" for suite {suite}" if suite else ""
        console.print(f"no runs recorded{where} in {path}", markup=False)
        return
    suites = list(dict.fromkeys(e["suite"] for e in entries))
    for name in suites:
        _print_suite(name, [e for e in entries if e["suite"] == name], console)


def _print_suite(suite: str, entries: list[dict[str, Any]], console: Console) -> None:
    runs = list(dict.fromkeys(e["run_id"] for e in entries))  # oldest first: entries are sorted
    strategies = list(dict.fromkeys(e["strategy"] for e in entries))
    metrics = list(dict.fromkeys(m for e in entries for m in e["metrics"]))
    first_primary = next((e.get("primary_metric") for e in reversed(entries) if e.get("primary_metric")), None)
    if first_primary in metrics:  # the primary metric first: it is what people look for
        metrics.remove(first_primary)
        metrics.insert(0, first_primary)
    last = entries[-1]
    table = Table(
        title=Text(f"{suite}: {len(runs)} run(s), oldest first"), title_justify="left",
        box=box.SIMPLE_HEAD, pad_edge=False,
    )
    # Numbers and sparklines never wrap; a long strategy name folds instead (80-column terminals).
    for col in ("strategy", "metric", "runs", "latest", "change", "trend"):
        table.add_column(col, justify="right" if col in ("runs", "latest", "change") else "left",
                         no_wrap=col != "strategy", overflow="fold", min_width=8 if col == "strategy" else None)
    for strategy in strategies:
        mine = [e for e in entries if e["strategy"] == strategy]
        for m in metrics:
            series = [(e["run_id"], e["metrics"].get(m)) for e in mine if m in e["metrics"]]
            values = [v if isinstance(v, (int, float)) else None for _, v in series]
            if not any(v is not None for v in values):
                continue
            latest = values[-1]
            change = Text("—", style="dim")
            if len(values) >= 2 and latest is not None and values[-2] is not None:
                delta = latest - values[-2]
                change = Text(fmt_signed(m, delta), style="green" if delta > 0 else "red" if delta < 0 else "dim")
            table.add_row(Text(strategy), Text(m), str(len(series)), fmt_metric(m, latest), change,
                          Text(sparkline(values), style="cyan"))
    console.print(table)
    console.print(Text(f"latest run {last['run_id']} ({last.get('created', '')}); change: vs the run before",
                       style="dim"))
    shas = list(dict.fromkeys(e.get("suite_sha256") for e in entries if e.get("suite_sha256")))
    if len(shas) > 1:
        console.print(Text(f"note: the suite's files changed across these runs ({len(shas)} versions by sha256); "
                           "values before and after a change may not be comparable", style="yellow"))
