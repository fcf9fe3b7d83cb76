"""report.md: the comparison, the sections, cost, retrieval and training, slices and the pairwise tests,
from a run folder's records alone (no suite, no model)."""

from __future__ import annotations

from harness.core.results import RunResults
from harness.report.formats.md import md, md_table
from harness.report.sections.answers import answer_names, answers_markdown
from harness.report.sections.forgetting import forgetting_markdown
from harness.report.sections.judges import judges_markdown
from harness.report.sections.leakage import leakage_markdown
from harness.report.sections.seeds import seeds_markdown
from harness.report.views import (
    BREAK_EVEN_HEAD,
    SIGNIFICANCE_LEGEND,
    best_of,
    best_strategies,
    break_even_rows,
    cost_columns,
    describe_test,
    fmt_value_ci,
    model_names,
    retrieval_line,
    significance_marker,
    size_text,
    slice_tables,
    training_line,
)
from harness.scoring.fmt import fmt_metric, fmt_num, fmt_p, fmt_share, fmt_signed


def render_markdown(results: RunResults) -> str:
    suite, model = results.suite, results.model
    out = [f"# Evaluation report: {md(suite.name)}", ""]
    out += [f"> **Recommendation:** {md(recommendation_text(results))}", ""]
    out += [f"Suite **{md(suite.name)}** ({md(suite.task)}, {md(size_text(suite))}, sha256 `{md(suite.sha256[:12])}`) · "
            f"model **{md(model.name or '?')}** · seed {md(results.seed)} · run `{md(results.run_id)}` · "
            f"{md(results.created)}", ""]
    out += ["## Comparison", "", *_comparison_table(results), "", f"_{SIGNIFICANCE_LEGEND}._", ""]
    out += answers_markdown(results)  # answer modes, unusable answers, format vs knowledge
    out += judges_markdown(results)  # judged metrics: judge vs people, corrected intervals, biases
    out += seeds_markdown(results)  # multi-seed strategies: per-seed values, spread
    out += leakage_markdown(results)
    out += forgetting_markdown(results)
    cols = cost_columns(results)
    out += ["## Cost", ""]
    rows = [[name] + [fmt_num(s.cost.figure(k), d) for k, _, d in cols] for name, s in results.strategies.items()]
    out += [*md_table(["Strategy", *[t for _, t, _ in cols]], rows), ""]
    if breaks := break_even_rows(results):
        out += ["### Break-even", "", *md_table(BREAK_EVEN_HEAD, breaks), ""]
    retrieval = [retrieval_line(n, s.retrieval) for n, s in results.strategies.items() if s.retrieval]
    if retrieval:
        out += ["## Retrieval", "", *[f"- {md(x)}" for x in retrieval], ""]
    training = [training_line(n, s.training) for n, s in results.strategies.items() if s.training]
    if training:
        out += ["## Training", "", *[f"- {md(x)}" for x in training], ""]
    out += _slices(results)
    out += _comparisons(results)
    return "\n".join(out).rstrip() + "\n"


def recommendation_text(results: RunResults) -> str:
    rec = results.recommendation
    text = rec.text or "No recommendation was recorded for this run."
    return f"{text} Note: {rec.judge_note}." if rec.judge_note else text


def _comparison_table(results: RunResults) -> list[str]:
    metrics = results.metric_names()
    best = {m: best_strategies(results, m) for m in metrics}
    models, answers = model_names(results), answer_names(results)
    rows = []
    for name, s in results.strategies.items():
        row = [name] + ([models[name]] if models else []) + ([answers[name]] if answers else [])
        for m in metrics:
            cell = fmt_value_ci(m, s)
            row.append((f"**{cell}**" if name in best[m] else cell) + significance_marker(results, name, m))
        rows.append([*row, str(s.n), fmt_share(s.invalid_rate), str(s.errors)])
    head = ["Strategy", *(["Model"] if models else []), *(["Answer"] if answers else []), *metrics, "n", "invalid",
            "errors"]
    return md_table(head, rows)


def _slices(results: RunResults) -> list[str]:
    tables = slice_tables(results)
    if not tables:
        return []
    primary, names = results.primary_metric, list(results.strategies)
    out = [f"## Slices ({md(primary)})", ""]
    for key, values in tables.items():
        rows = []
        for value, cells in values.items():
            scores = {n: cells[n][1] for n in names if n in cells}
            top = set(best_of({n: float("nan") if v is None else v for n, v in scores.items()}, primary))
            n = next(iter(cells.values()))[0]
            rows.append([value, str(n), *[_bold(fmt_metric(primary, scores.get(x)), x in top) for x in names]])
        out += [f"### by {md(key)}", "", *md_table([key, "n", *names], rows), ""]
    return out


def _bold(text: str, bold: bool) -> str:
    return f"**{text}**" if bold else text


def _comparisons(results: RunResults) -> list[str]:
    if not results.comparisons:
        return []
    rows = [[c.a, c.b, c.metric, str(c.n),
             f"{fmt_signed(c.metric, c.diff)} [{fmt_signed(c.metric, c.ci[0])}, {fmt_signed(c.metric, c.ci[1])}]",
             fmt_p(c.p_value), fmt_p(c.p_holm), describe_test(c), "**yes**" if c.significant else "no"]
            for c in results.comparisons]
    head = ["A", "B", "metric", "n", "A − B [95% CI]", "p", "p (Holm)", "test", "significant"]
    table = md_table(head, rows, ["l", "l", "l", "r", "r", "r", "r", "l", "l"])
    return ["## Pairwise comparisons", "", *table, ""]
