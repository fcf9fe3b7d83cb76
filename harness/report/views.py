"""A finished run as stored on disk (`results.json` + `predictions.jsonl`), and the read-only views
of it that the report, the gate and the history share.

Everything here works from the files alone: no suite, no model. Helpers that only need the
results take the results dict, so `print_summary` can use them before any file is read back.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.types import Example
from harness.scoring.registry import format_value, higher_is_better, scale_of

SCHEMA = "sft-harness/results/v1"
SIGNIFICANCE = ((0.01, "‡"), (0.05, "†"))  # strictest first
SIGNIFICANCE_LEGEND = (
    "bold: best per metric; † significantly below the best (Holm-adjusted p < 0.05), "
    "‡ (p < 0.01); brackets: 95% bootstrap interval"
)


@dataclass(frozen=True)
class Run:
    dir: Path
    results: dict[str, Any]
    predictions: list[dict[str, Any]]

    @property
    def strategies(self) -> list[str]:
        return list(self.results["strategies"])

    @property
    def suite(self) -> dict[str, Any]:
        return self.results["suite"]

    @property
    def task(self) -> str:
        return str(self.suite.get("task", ""))

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.suite.get("labels") or ())

    @property
    def metrics(self) -> list[str]:
        return metric_names(self.results)

    @property
    def primary_metric(self) -> str:
        return primary_metric(self.results)

    def predictions_for(self, strategy: str) -> list[dict[str, Any]]:
        """The strategy's lines in file order, one per example (a resumed run may repeat a line:
        the last one wins, as it does for the runner)."""
        by_id: dict[str, dict[str, Any]] = {}
        for line in self.predictions:
            if line["strategy"] == strategy:
                by_id.pop(str(line["example_id"]), None)
                by_id[str(line["example_id"])] = line
        return list(by_id.values())


def load_run(run_dir: Path) -> Run:
    """Read a run folder; every problem is a HarnessError that names the file (and line)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"{run_dir}: no such run folder (expected reports/<run-id> with results.json)")
    results = _load_results(run_dir / "results.json")
    predictions = _load_predictions(run_dir / "predictions.jsonl")
    return Run(run_dir, results, predictions)


def _load_results(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise HarnessError(f"{path}: not found; is {path.parent} a run folder written by `sft-harness run`?")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise HarnessError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); re-run to regenerate it") from None
    except (OSError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: cannot be read ({e})") from None
    if not isinstance(results, dict):
        raise HarnessError(f"{path}: expected a JSON object, got {type(results).__name__}")
    if results.get("schema") != SCHEMA:
        raise HarnessError(f"{path}: schema is {results.get('schema')!r}, expected {SCHEMA!r}")
    suite = results.get("suite")
    if not isinstance(suite, dict) or not isinstance(suite.get("name"), str) or not suite.get("task"):
        raise HarnessError(f"{path}: 'suite' must be an object with 'name' and 'task'")
    strategies = results.get("strategies")
    if not isinstance(strategies, dict) or not all(isinstance(s, dict) for s in strategies.values()):
        raise HarnessError(f"{path}: 'strategies' must be an object of strategy results")
    for name, s in strategies.items():
        if not isinstance(s.get("metrics", {}), dict):
            raise HarnessError(f"{path}: strategies.{name}.metrics must be an object")
    if not isinstance(results.get("comparisons", []), list):
        raise HarnessError(f"{path}: 'comparisons' must be a list")
    return results


def _load_predictions(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise HarnessError(f"{path}: not found; the run folder is incomplete (re-run to regenerate it)")
    lines: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError as e:
                    raise HarnessError(f"{path}:{n}: not valid JSON ({e.msg})") from None
                if not isinstance(obj, dict) or "strategy" not in obj or "example_id" not in obj:
                    raise HarnessError(f"{path}:{n}: expected an object with 'strategy' and 'example_id'")
                lines.append(obj)
    except UnicodeDecodeError as e:
        raise HarnessError(f"{path}: not UTF-8 text ({e.reason})") from None
    return lines


def to_example(line: dict[str, Any]) -> Example:
    """The example a prediction line was scored on (input, target and meta are stored with it)."""
    target = line.get("target")
    if isinstance(target, list):
        target = tuple(str(t) for t in target)
    elif target is None:
        target = ""
    elif not isinstance(target, dict):
        target = str(target)
    return Example(
        id=str(line["example_id"]),
        input=str(line.get("input", "")),
        target=target,
        meta=dict(line.get("meta") or {}),
    )


def answer_of(line: dict[str, Any]) -> Any:
    """What the metrics saw: a failed prediction is an invalid answer, as harness.scoring treats it."""
    return None if line.get("error") is not None else line.get("answer")


# --------------------------------------------------------------------------- views of results


def metric_names(results: dict[str, Any]) -> list[str]:
    """The suite's metrics in its order, then any other metric a strategy reports."""
    names = [str(m) for m in results.get("suite", {}).get("metrics") or []]
    for s in results.get("strategies", {}).values():
        names += [m for m in s.get("metrics", {}) if m not in names]
    return names


def primary_metric(results: dict[str, Any]) -> str:
    suite = results.get("suite", {})
    names = metric_names(results)
    return str(suite.get("primary_metric") or (names[0] if names else "accuracy"))


def metric_value(strategy: dict[str, Any], metric: str) -> tuple[float, float, float]:
    """(value, ci_low, ci_high); NaN where absent."""
    m = strategy.get("metrics", {}).get(metric) or {}
    ci = m.get("ci") or [None, None]
    return _num(m.get("value")), _num(ci[0] if len(ci) > 0 else None), _num(ci[1] if len(ci) > 1 else None)


def _num(x: Any) -> float:
    try:
        return float(x) if x is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def fmt_metric(metric: str, value: Any) -> str:
    v = _num(value)
    if math.isnan(v):
        return "—"
    return format_value(metric, v)  # the metric's own format: 0.812 for accuracy, 31.4 for BLEU


def fmt_value_ci(metric: str, strategy: dict[str, Any]) -> str:
    value, lo, hi = metric_value(strategy, metric)
    if math.isnan(value):
        return "—"
    if math.isnan(lo) or math.isnan(hi):
        return fmt_metric(metric, value)
    return f"{fmt_metric(metric, value)} [{fmt_metric(metric, lo)}, {fmt_metric(metric, hi)}]"


def scale_max(metric: str) -> float:
    """The top of the metric's range (1 where unknown: charts grow to fit the values)."""
    return scale_of(metric) or 1.0


def best_strategies(results: dict[str, Any], metric: str) -> list[str]:
    """The strategies with the best value of `metric` (the highest, or the lowest for a
    lower-is-better metric)."""
    values = {n: metric_value(s, metric)[0] for n, s in results.get("strategies", {}).items()}
    values = {n: v for n, v in values.items() if not math.isnan(v)}
    if len(values) < 2:  # a lone strategy is not "best" at anything
        return []
    top = max(values.values()) if higher_is_better(metric) else min(values.values())
    return [n for n, v in values.items() if v == top]


def find_comparison(results: dict[str, Any], a: str, b: str, metric: str) -> dict[str, Any] | None:
    for c in results.get("comparisons") or []:
        if c.get("metric") == metric and {c.get("a"), c.get("b")} == {a, b}:
            return c
    return None


def significance_marker(results: dict[str, Any], strategy: str, metric: str) -> str:
    """† / ‡ when `strategy` is significantly below the best on `metric` (Holm-adjusted)."""
    best = best_strategies(results, metric)
    if not best or strategy in best:
        return ""
    c = find_comparison(results, strategy, best[0], metric)
    if c is None:
        return ""
    p = _num(c.get("p_holm", c.get("p_value")))
    if math.isnan(p):
        return "†" if c.get("significant") else ""
    return next((mark for level, mark in SIGNIFICANCE if p < level), "")


def fmt_p(p: Any) -> str:
    v = _num(p)
    if math.isnan(v):
        return "—"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def fmt_num(x: Any, digits: int = 2) -> str:
    v = _num(x)
    if math.isnan(v):
        return "—"
    if digits == 0 or (v.is_integer() and abs(v) >= 1000):
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


TEST_NAMES = {"paired_bootstrap": "paired bootstrap", "mcnemar_exact": "exact McNemar"}


def describe_test(comparison: dict[str, Any]) -> str:
    """The test behind a comparison's p value, with the other test's p when both were run."""
    test = str(comparison.get("test", ""))
    text = TEST_NAMES.get(test, test)
    if test == "mcnemar_exact" and comparison.get("bootstrap_p") is not None:
        text += f" (bootstrap p {fmt_p(comparison['bootstrap_p'])})"
    elif test != "mcnemar_exact" and comparison.get("mcnemar_p") is not None:
        text += f" (McNemar p {fmt_p(comparison['mcnemar_p'])})"
    return text


def size_text(suite: dict[str, Any]) -> str:
    """'60 test examples', or '6 of 60 test examples scored' when a --limit cut the split."""
    sizes = suite.get("sizes") or {}
    test, scored = sizes.get("test"), sizes.get("scored")
    if scored is not None and test is not None and scored != test:
        return f"{scored} of {test} test examples scored"
    return f"{test if test is not None else '?'} test examples"


def recommendation_text(results: dict[str, Any]) -> str:
    rec = results.get("recommendation") or {}
    return str(rec.get("text") or "No recommendation was recorded for this run.")


COST_COLUMNS: tuple[tuple[str, str, int], ...] = (
    # (cost key, column title, decimals)
    ("prepare_s", "prepare s", 1),
    ("predict_s", "predict s", 1),
    ("examples_per_s", "examples/s", 2),
    ("latency_p50_s", "latency p50 s", 3),
    ("latency_p95_s", "latency p95 s", 3),
    ("prompt_tokens_per_example", "prompt tok/ex", 1),
    ("output_tokens_per_example", "output tok/ex", 1),
    ("training_tokens", "training tokens", 0),
    ("usd_per_1k_requests", "USD / 1k requests", 4),
    ("training_usd", "training USD", 2),
    ("usd_per_correct", "USD / correct", 5),
)
USD_KEYS = frozenset({"usd_per_1k_requests", "training_usd", "usd_per_correct"})


def cost_columns(results: dict[str, Any]) -> list[tuple[str, str, int]]:
    """The cost columns to show: USD ones only when some strategy has a price."""
    costs = [s.get("cost") or {} for s in results.get("strategies", {}).values()]
    return [
        col for col in COST_COLUMNS
        if col[0] not in USD_KEYS or any(c.get(col[0]) is not None for c in costs)
    ]


def slice_tables(results: dict[str, Any]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """{slice key: {slice value: {strategy: {"n": n, "metrics": {...}}}}}, in first-seen order."""
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for name, s in results.get("strategies", {}).items():
        for key, values in (s.get("slices") or {}).items():
            if not isinstance(values, dict):
                continue
            for value, cell in values.items():
                if isinstance(cell, dict):
                    out.setdefault(str(key), {}).setdefault(str(value), {})[name] = cell
    return out


def training_line(name: str, training: dict[str, Any]) -> str:
    parts = []
    curve = training.get("loss_curve") or []
    if curve:
        step, loss = curve[-1][0], curve[-1][1]
        parts.append(f"final loss {fmt_num(loss, 3)} (step {fmt_num(step, 0)})")
    val = training.get("val_loss") or []
    if val:
        parts.append(f"validation loss {fmt_num(val[-1][1], 3)}")
    if training.get("tokens_per_s") is not None:
        parts.append(f"{fmt_num(training['tokens_per_s'], 0)} tokens/s")
    if training.get("padding_share") is not None:
        parts.append(f"padding {fmt_num(100 * _num(training['padding_share']), 1)}%")
    if training.get("train_tokens") is not None:
        parts.append(f"{fmt_num(training['train_tokens'], 0)} training tokens")
    if training.get("epochs") is not None:
        parts.append(f"{fmt_num(training['epochs'], 0)} epoch(s)")
    return f"{name}: " + (", ".join(parts) or "no training figures recorded")


def retrieval_line(name: str, retrieval: dict[str, Any]) -> str:
    k = retrieval.get("k")
    recall = retrieval.get("recall_at_k")
    text = f"recall@{k} = {fmt_num(recall, 3)}" if recall is not None else f"k = {k}, no gold documents to score recall"
    index = retrieval.get("index")
    if isinstance(index, dict):
        parts = [f"{index.get('kind', '?')} index", f"{index.get('chunks', '?')} chunks of {index.get('documents', '?')} documents"]
        if index.get("embedder"):
            parts.append(f"embedder {index['embedder']}")
        if index.get("recall_vs_flat") is not None:
            parts.append(f"recall vs flat search {fmt_num(index['recall_vs_flat'], 3)}")
        text += f" ({', '.join(parts)})"
    elif index:
        text += f" (index {index})"
    return f"{name}: {text}"


def example_scores(run: Run) -> dict[str, dict[str, float]]:
    """{strategy: {example_id: score in [0, 1]}} from each prediction's stored answer and target.

    The score is `metrics.example_scores`: right/wrong for labels, token or field F1 where an
    answer can be partly right.
    """
    from harness.scoring.metrics import (
        example_scores as scores_of,  # numpy-backed; only the views that need it pay for it
    )

    out: dict[str, dict[str, float]] = {}
    for name in run.strategies:
        lines = run.predictions_for(name)
        scores = scores_of(run.task, [answer_of(ln) for ln in lines], [to_example(ln) for ln in lines])
        out[name] = {str(ln["example_id"]): float(v) for ln, v in zip(lines, scores, strict=True)}
    return out
