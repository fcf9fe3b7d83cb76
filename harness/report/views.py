"""Read-only views of a finished run that the report formats, the sections, the gate and the history
share, over its records (harness.core.results): no suite, no model, no scoring (per-example scores
are stored with each prediction)."""

from __future__ import annotations

import math

from harness.core.results import Comparison, RunResults, StrategyResult, SuiteInfo, number
from harness.core.results.model import ModelRecord, Retrieval, Training
from harness.core.runrecord import RunRecord
from harness.scoring.fmt import fmt_metric, fmt_num, fmt_p, fmt_share, paired_test_name
from harness.scoring.registry import higher_is_better, scale_of

SIGNIFICANCE = ((0.01, "‡"), (0.05, "†"))  # strictest first
SIGNIFICANCE_LEGEND = (
    "bold: best per metric; † significantly below the best (Holm-adjusted p < 0.05), "
    "‡ (p < 0.01); brackets: 95% bootstrap interval"
)


def model_names(results: RunResults) -> dict[str, str] | None:
    """Each strategy's model label, for a "Model" column: None when the strategies share one model,
    so single-model reports keep their shape."""
    names = {name: model_label(s.model) if s.model is not None else "—" for name, s in results.strategies.items()}
    return names if len(set(names.values())) > 1 else None


def model_label(model: ModelRecord) -> str:
    """`small: smollm2-135m-instruct (transformers)`: the [[models]] name, what it is, its backend
    (a folder shows its last part only; the run's default model shows no name)."""
    ident = model.id or ""
    ident = ident.rstrip("/").rsplit("/", 1)[-1] if ident.startswith(("/", ".", "~")) else ident
    name = model.name or ""
    if not ident:  # an older or hand-made results.json: the name is all there is
        head = name or "—"
    else:
        head = f"{name}: {ident}" if name and name not in ("default", ident) else ident
    return f"{head} ({model.backend or 'transformers'})"


def fmt_value_ci(metric: str, strategy: StrategyResult, clean: bool = False) -> str:
    """`0.812 [0.760, 0.860]`; the clean-subset value with `clean`."""
    metrics = (strategy.clean_metrics or {}) if clean else strategy.metrics
    m = metrics.get(metric)
    value = number(m.value) if m is not None else math.nan
    if math.isnan(value):
        return "—"
    lo, hi = (number(m.ci[0]), number(m.ci[1])) if m is not None else (math.nan, math.nan)
    if math.isnan(lo) or math.isnan(hi):
        return fmt_metric(metric, value)
    return f"{fmt_metric(metric, value)} [{fmt_metric(metric, lo)}, {fmt_metric(metric, hi)}]"


def scale_max(metric: str) -> float:
    """The top of the metric's range (1 where unknown: charts grow to fit the values)."""
    return scale_of(metric) or 1.0


def best_of(values: dict[str, float], metric: str) -> list[str]:
    """The names with the best finite value of `metric` (the highest, or the lowest when lower is
    better); none for a lone value (a lone strategy is not "best" at anything)."""
    finite = {n: v for n, v in values.items() if not math.isnan(v)}
    if len(finite) < 2:
        return []
    top = max(finite.values()) if higher_is_better(metric) else min(finite.values())
    return [n for n, v in finite.items() if v == top]


def best_strategies(results: RunResults, metric: str) -> list[str]:
    return best_of({n: s.value(metric) for n, s in results.strategies.items()}, metric)


def significance_marker(results: RunResults, strategy: str, metric: str) -> str:
    """† / ‡ when `strategy` is significantly below the best on `metric` (Holm-adjusted)."""
    best = best_strategies(results, metric)
    if not best or strategy in best:
        return ""
    c = results.comparison(strategy, best[0], metric)
    if c is None:
        return ""
    return next((mark for level, mark in SIGNIFICANCE if c.p < level), "")


def describe_test(c: Comparison) -> str:
    """The test behind a comparison's p value, with the other test's p when both were run."""
    text = paired_test_name(c.test)
    if c.test == "mcnemar_exact" and c.bootstrap_p is not None:
        text += f" (bootstrap p {fmt_p(c.bootstrap_p)})"
    elif c.test != "mcnemar_exact" and c.mcnemar_p is not None:
        text += f" (McNemar p {fmt_p(c.mcnemar_p)})"
    return text


def size_text(suite: SuiteInfo) -> str:
    """'60 test examples', or '6 of 60 test examples scored' when a --limit cut the split."""
    test, scored = suite.sizes.get("test"), suite.sizes.get("scored")
    if scored is not None and test is not None and scored != test:
        return f"{scored} of {test} test examples scored"
    return f"{test if test is not None else '?'} test examples"


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
    # Grading the outputs (judged metrics): an evaluation cost, in no break-even figure.
    ("judge_tokens", "judge tokens", 0),
    ("judge_s", "judge s", 1),
    ("judge_usd", "judge USD", 4),
)
# Shown only when some strategy has a value: a price was given, a backend measured requests.
OPTIONAL_COST_KEYS = frozenset({"usd_per_1k_requests", "training_usd", "usd_per_correct", "latency_p50_s",
                                "latency_p95_s", "monthly_usd", "judge_tokens", "judge_s", "judge_usd"})
BREAK_EVEN_HEAD = ["pays more up front", "than", "extra one-off USD", "saves USD / 1k requests", "cheaper in total after"]


def cost_columns(results: RunResults) -> list[tuple[str, str, int]]:
    """The cost columns to show (see OPTIONAL_COST_KEYS)."""
    costs = [s.cost for s in results.strategies.values()]
    return [col for col in COST_COLUMNS
            if col[0] not in OPTIONAL_COST_KEYS or any(c.figure(col[0]) is not None for c in costs)]


def break_even_rows(results: RunResults) -> list[list[str]]:
    """The break-even table: which strategy costs more up front, what it saves per 1,000 requests,
    and after how many requests (and months, at the stated volume) it is the cheaper one."""
    rows = []
    for p in results.economics.break_even:
        # (Nearly) equal one-off costs: the cheaper per request is cheaper at any volume, as the
        # cost table already says; a hundredth of a cent of set-up is no break-even.
        if p.one_off_diff_usd < 1e-4:
            continue
        n, months = p.break_even_requests, p.break_even_months
        when = "never" if n is None else f"{fmt_num(n, 0)} requests" + (
            f" ({fmt_num(months, 1)} months)" if months is not None else "")
        rows.append([p.higher_one_off, p.lower_one_off, fmt_num(p.one_off_diff_usd, 4),
                     fmt_num(p.per_1k_saving_usd, 4), when])
    return rows


def slice_tables(results: RunResults) -> dict[str, dict[str, dict[str, tuple[int, float | None]]]]:
    """{slice key: {slice value: {strategy: (n, primary metric value)}}}, in first-seen order."""
    primary = results.primary_metric
    out: dict[str, dict[str, dict[str, tuple[int, float | None]]]] = {}
    for name, s in results.strategies.items():
        for key, values in s.slices.items():
            for value, cell in values.items():
                out.setdefault(key, {}).setdefault(value, {})[name] = (cell.n, cell.metrics.get(primary))
    return out


def training_line(name: str, training: Training) -> str:
    parts = []
    if training.loss_curve:
        step, loss = training.loss_curve[-1]
        parts.append(f"final loss {fmt_num(loss, 3)} (step {fmt_num(step, 0)})")
    if training.val_loss:
        parts.append(f"validation loss {fmt_num(training.val_loss[-1][1], 3)}")
    if training.tokens_per_s is not None:
        parts.append(f"{fmt_num(training.tokens_per_s, 0)} tokens/s")
    if training.padding_share is not None:
        parts.append(f"padding {fmt_share(training.padding_share)}")
    if training.train_tokens is not None:
        parts.append(f"{fmt_num(training.train_tokens, 0)} training tokens")
    if training.epochs is not None:
        parts.append(f"{fmt_num(training.epochs, 0)} epoch(s)")
    return f"{name}: " + (", ".join(parts) or "no training figures recorded")


def retrieval_line(name: str, retrieval: Retrieval) -> str:
    k, recall, index = retrieval.k, retrieval.recall_at_k, retrieval.index
    text = f"recall@{k} = {fmt_num(recall, 3)}" if recall is not None else f"k = {k}, no gold documents to score recall"
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
