"""Read-only views of a finished run that the report, the gate and the history share.

The run folder itself is read by `harness.core.runrecord.load_run`; everything here works from
what it holds (no suite, no model, no scoring: per-example scores are stored with each
prediction). Helpers that only need the results take the results dict, so `print_summary` can
use them before any file is read back.
"""

from __future__ import annotations

import math
from typing import Any

from harness.core.runrecord import RunRecord
from harness.scoring.fmt import fmt_metric, fmt_num, fmt_p, fmt_share, number, paired_test_name
from harness.scoring.registry import higher_is_better, scale_of

SIGNIFICANCE = ((0.01, "‡"), (0.05, "†"))  # strictest first
SIGNIFICANCE_LEGEND = (
    "bold: best per metric; † significantly below the best (Holm-adjusted p < 0.05), "
    "‡ (p < 0.01); brackets: 95% bootstrap interval"
)


# --------------------------------------------------------------------------- views of results


def model_names(results: dict[str, Any]) -> dict[str, str] | None:
    """Each strategy's model name, for a "Model" column: None when the strategies share one model
    (or the run predates per-strategy models), so single-model reports keep their shape."""
    names = {}
    for name, s in (results.get("strategies") or {}).items():
        model = s.get("model") if isinstance(s, dict) else None
        names[name] = model_label(model) if isinstance(model, dict) else "—"
    return names if len(set(names.values())) > 1 else None


def model_label(model: dict[str, Any]) -> str:
    """`small: smollm2-135m-instruct (transformers)`: the [[models]] name, what it is, its backend
    (a folder shows its last part only; the run's default model shows no name)."""
    ident = str(model.get("id") or "")
    ident = ident.rstrip("/").rsplit("/", 1)[-1] if ident.startswith(("/", ".", "~")) else ident
    name = str(model.get("name") or "")
    if not ident:  # an older or hand-made results.json: the name is all there is
        head = name or "—"
    else:
        head = f"{name}: {ident}" if name and name not in ("default", ident) else ident
    return f"{head} ({model.get('backend') or 'transformers'})"


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
    return number(m.get("value")), number(ci[0] if len(ci) > 0 else None), number(ci[1] if len(ci) > 1 else None)


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
    p = number(c.get("p_holm", c.get("p_value")))
    if math.isnan(p):
        return "†" if c.get("significant") else ""
    return next((mark for level, mark in SIGNIFICANCE if p < level), "")


def describe_test(comparison: dict[str, Any]) -> str:
    """The test behind a comparison's p value, with the other test's p when both were run."""
    test = str(comparison.get("test", ""))
    text = paired_test_name(test)
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
    # Each example's share of its decoding batch's wall time: a cost, not a request's latency.
    ("batch_share_p50_s", "time per example p50 s (share of batch)", 3),
    ("batch_share_p95_s", "time per example p95 s (share of batch)", 3),
    # Real per-request latency: only from a backend that serves requests (null for local decoding).
    ("latency_p50_s", "request latency p50 s", 3),
    ("latency_p95_s", "request latency p95 s", 3),
    ("prompt_tokens_per_example", "prompt tok/ex", 1),
    ("output_tokens_per_example", "output tok/ex", 1),
    ("training_tokens", "training tokens", 0),
    ("usd_per_1k_requests", "USD / 1k requests", 4),
    ("training_usd", "training USD", 2),
    ("usd_per_correct", "USD / correct", 5),
    ("monthly_usd", "USD / month at the stated volume", 2),
)
# Shown only when some strategy has a value: a price was given, a backend measured requests.
OPTIONAL_COST_KEYS = frozenset({"usd_per_1k_requests", "training_usd", "usd_per_correct", "latency_p50_s",
                                "latency_p95_s", "monthly_usd"})


def break_even_rows(results: dict[str, Any]) -> list[list[str]]:
    """The break-even table: which strategy costs more up front, what it saves per 1,000 requests,
    and after how many requests (and months, at the stated volume) it is the cheaper one."""
    econ = results.get("economics")
    pairs = econ.get("break_even") if isinstance(econ, dict) else None
    rows = []
    for p in pairs if isinstance(pairs, list) else []:
        # (Nearly) equal one-off costs: the cheaper per request is cheaper at any volume, as the
        # cost table already says; a hundredth of a cent of set-up is no break-even.
        if not isinstance(p, dict) or not isinstance(p.get("one_off_diff_usd"), (int, float)) \
                or p["one_off_diff_usd"] < 1e-4:
            continue
        n, months = p.get("break_even_requests"), p.get("break_even_months")
        when = "never" if n is None else f"{fmt_num(n, 0)} requests" + (
            f" ({fmt_num(months, 1)} months)" if months is not None else "")
        rows.append([str(p.get("higher_one_off")), str(p.get("lower_one_off")), fmt_num(p.get("one_off_diff_usd"), 4),
                     fmt_num(p.get("per_1k_saving_usd"), 4), when])
    return rows


BREAK_EVEN_HEAD = ["pays more up front", "than", "extra one-off USD", "saves USD / 1k requests", "cheaper in total after"]


def cost_columns(results: dict[str, Any]) -> list[tuple[str, str, int]]:
    """The cost columns to show (see OPTIONAL_COST_KEYS)."""
    costs = [s.get("cost") or {} for s in results.get("strategies", {}).values()]
    return [
        col for col in COST_COLUMNS
        if col[0] not in OPTIONAL_COST_KEYS or any(c.get(col[0]) is not None for c in costs)
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
        parts.append(f"padding {fmt_share(training['padding_share'])}")
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


def example_scores(run: RunRecord) -> dict[str, dict[str, float]]:
    """{strategy: {example_id: score in [0, 1]}}: the score stored with each prediction
    (harness.core.runrecord.SCORE_NAME): right/wrong for labels, token or field F1 where an
    answer can be partly right."""
    return {name: {r.example_id: r.score for r in run.predictions_for(name)} for name in run.strategies}
