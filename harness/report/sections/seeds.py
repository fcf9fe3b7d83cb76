"""The "Training seeds" section of report.md and report.html, from the `seeds`, `per_seed` and
`seed_sd` of multi-seed strategies (`sft:seeds=3`, harness.scoring.seeds) and the `seed_note` of
comparisons whose claimed difference is smaller than a strategy's seed-to-seed spread.
"""

from __future__ import annotations

from harness.core.results import RunResults
from harness.report.formats.html_parts import e, section, table, td
from harness.report.formats.md import md_table
from harness.report.views import fmt_value_ci
from harness.scoring.fmt import fmt_metric

HEAD = ["Strategy", "seeds", "per seed", "mean [95% CI]", "sd"]
NOTE = ("A multi-seed strategy's value is the mean over its training seeds; its interval and its pairwise "
        "tests resample seeds as well as test examples (hierarchical bootstrap).")


def _rows(results: RunResults) -> list[list[str]]:
    m = results.primary_metric
    rows = []
    for name, s in results.strategies.items():
        if len(s.seeds or []) < 2:
            continue
        values = (s.per_seed or {}).get(m) or []
        rows.append([name, ", ".join(map(str, s.seeds or [])), ", ".join(fmt_metric(m, v) for v in values),
                     fmt_value_ci(m, s), fmt_metric(m, (s.seed_sd or {}).get(m))])
    return rows


def seed_notes(results: RunResults) -> list[str]:
    """"sft vs prompt, accuracy: the training-seed spread of sft (...) is larger than the difference (...)"."""
    return [f"{c.a} vs {c.b}, {c.metric}: {c.seed_note}" for c in results.comparisons if c.seed_note]


def _head(results: RunResults) -> list[str]:
    return [*HEAD[:2], f"{results.primary_metric} per seed", *HEAD[3:]]


def seeds_markdown(results: RunResults) -> list[str]:
    """The section (nothing when no strategy has more than one seed)."""
    rows = _rows(results)
    if not rows:
        return []
    out = ["## Training seeds", "", *md_table(_head(results), rows, ["l"] * 5), "", f"_{NOTE}_", ""]
    if notes := seed_notes(results):
        out += [*(f"- Caution: {n}." for n in notes), ""]
    return out


def seeds_html(results: RunResults) -> str:
    rows = _rows(results)
    if not rows:
        return ""
    inner = table(_head(results), [[td(e(r[0]), "name"), td(e(r[1])), *(td(e(c), "num") for c in r[2:])]
                                   for r in rows], "numeric")
    if notes := seed_notes(results):
        inner += '<ul class="facts-list">' + "".join(f"<li>Caution: {e(n)}.</li>" for n in notes) + "</ul>"
    return section("seeds", "Training seeds", inner, e(NOTE))
