"""The "Judges" section of report.md and report.html: per judged metric, who graded and how, the
judge's means beside the prediction-powered ones (corrected by people's grades), the paired
differences, agreement with people (kappa, confusion, which way it errs), and its biases (flip
rate under swapped order, length, self-preference). From results.json's `judges` alone."""

from __future__ import annotations

from collections.abc import Sequence

from harness.core.results import JudgedPair, JudgeResult, RunResults
from harness.report.formats.html_parts import e, section, table, td
from harness.report.formats.md import md, md_table
from harness.scoring.fmt import fmt_num, fmt_p, fmt_share

NOTE = ("Grades are scored on [0, 1] (reference: correct 1, partial 0.5, wrong 0; rubric: (score - 1) / 4; pairwise: "
        "a win 1, a tie 0.5). An unparsable grade counts as the lowest. With people's grades, the corrected estimate "
        "and its 95% interval are prediction-powered (PPI++): the judge's mean on every output plus the mean "
        "human-minus-judge gap on the graded ones; the plain interval beside it ignores the judge's error.")


def _ci(value: float | None, ci: Sequence[float | None] | None) -> str:
    if value is None:
        return "—"
    lo, hi = ci or (None, None)
    return f"{value:.3f} [{fmt_num(lo, 3)}, {fmt_num(hi, 3)}]"


def _facts(j: JudgeResult) -> list[str]:
    out = [f"model {j.model.get('name') or j.model.get('id')} ({j.model.get('backend', '?')}), grades read by "
           f"{j.answer}; prompt {j.template_version} (sha256 {j.template_sha256})",
           f"{j.graded} grades, {j.calls} asked of the model in this run (the rest from the cache); "
           f"{j.unparsable} unparsable, {j.errors} failed requests"]
    if j.length_bias is not None:
        out.append(f"length bias: grade against output length within an example, r = {j.length_bias:+.2f}")
    a = j.agreement
    if a is not None:
        kappa = "undefined (one grade only)" if a.kappa is None else f"{a.kappa:.2f}"
        weighted = "" if a.weighted_kappa is None else f", weighted (quadratic) {a.weighted_kappa:.2f}"
        errs = ""
        if a.too_high is not None and a.too_low is not None:
            lean = "lenient" if (a.mean_diff or 0) > 0 else "harsh" if (a.mean_diff or 0) < 0 else "even"
            errs = f"; it grades above people on {a.too_high}, below on {a.too_low} ({lean})"
        out.append(f"against people ({j.human_file}): {a.n} outputs, agreement {fmt_share(a.rate)}, "
                   f"Cohen's kappa {kappa}{weighted}{errs}")
    return out + j.notes


def _strategy_rows(j: JudgeResult) -> list[list[str]]:
    return [[name, _ci(s.judge_mean, s.judge_ci), _ci(s.ppi, s.ppi_ci), str(s.n_human),
             fmt_num(s.human_mean, 3), str(s.unparsable)] for name, s in j.strategies.items()]


STRATEGY_HEAD = ["Strategy", "judge mean [95% CI]", "corrected (PPI) [95% CI]", "human-graded", "people's mean",
                 "unparsable"]
PAIR_HEAD = ["a − b", "n", "judge difference [95% CI]", "p", "corrected (PPI) [95% CI]", "p (PPI)"]
PAIRWISE_HEAD = ["a vs b", "n", "a's win rate [95% CI]", "wins / ties / losses", "p (vs 0.5)", "flip rate",
                 "longer answer wins", "corrected win rate (PPI)"]


def _pair_row(p: JudgedPair) -> list[str]:
    return [f"{p.a} − {p.b}", str(p.n), _ci(p.judge_diff, p.judge_ci), fmt_p(p.judge_p), _ci(p.ppi_diff, p.ppi_ci),
            fmt_p(p.ppi_p) if p.ppi_p is not None else "—"]


def _pairwise_row(p: JudgedPair) -> list[str]:
    ppi = None if p.ppi_diff is None else p.ppi_diff + 0.5
    ppi_ci = None if p.ppi_ci is None else tuple(None if x is None else x + 0.5 for x in p.ppi_ci)
    return [f"{p.a} vs {p.b}", str(p.n), _ci(p.win_rate, p.win_ci), f"{p.wins} / {p.ties} / {p.losses}",
            fmt_p(p.judge_p), fmt_share(p.flip_rate), fmt_share(p.longer_wins), _ci(ppi, ppi_ci)]


def _confusion(j: JudgeResult) -> tuple[list[str], list[list[str]]] | None:
    a = j.agreement
    if a is None:
        return None
    return ["people \\ judge", *a.labels], [[label, *map(str, row)] for label, row in zip(a.labels, a.confusion, strict=True)]


def judges_markdown(results: RunResults) -> list[str]:
    if not results.judges:
        return []
    out = ["## Judges", "", f"_{NOTE}_", ""]
    for j in results.judges.values():
        out += [f"### {md(j.name)} ({md(j.mode)})", "", *[f"- {md(f)}" for f in _facts(j)], ""]
        if j.strategies:
            out += [*md_table(STRATEGY_HEAD, _strategy_rows(j)), ""]
        if j.pairs:
            pairwise = j.mode == "pairwise"
            rows = [(_pairwise_row if pairwise else _pair_row)(p) for p in j.pairs]
            out += [*md_table(PAIRWISE_HEAD if pairwise else PAIR_HEAD, rows), ""]
        if (conf := _confusion(j)) is not None:
            out += [*md_table(*conf), ""]
    return out


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    return table(head, [[td(e(c), "name" if i == 0 else "num") for i, c in enumerate(r)] for r in rows], "numeric")


def judges_html(results: RunResults) -> str:
    if not results.judges:
        return ""
    inner = ""
    for j in results.judges.values():
        inner += f"<h3>{e(j.name)} ({e(j.mode)})</h3><ul class=\"facts-list\">"
        inner += "".join(f"<li>{e(f)}</li>" for f in _facts(j)) + "</ul>"
        if j.strategies:
            inner += _html_table(STRATEGY_HEAD, _strategy_rows(j))
        if j.pairs:
            pairwise = j.mode == "pairwise"
            inner += _html_table(PAIRWISE_HEAD if pairwise else PAIR_HEAD,
                                 [(_pairwise_row if pairwise else _pair_row)(p) for p in j.pairs])
        if (conf := _confusion(j)) is not None:
            inner += _html_table(*conf)
    return section("judges", "Judges", inner, e(NOTE))
