"""The "Training seeds" section of report.md and report.html, from the `seeds`, `per_seed` and
`seed_sd` of multi-seed strategies (`sft:seeds=3`, harness.scoring.seeds) and the `seed_note` of
comparisons whose claimed difference is smaller than a strategy's seed-to-seed spread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.report.html_parts import e, section, table, td
from harness.report.leakage import _md_table
from harness.report.views import fmt_value_ci, primary_metric
from harness.scoring.fmt import fmt_metric

HEAD = ["Strategy", "seeds", "per seed", "mean [95% CI]", "sd"]
NOTE = ("A multi-seed strategy's value is the mean over its training seeds; its interval and its pairwise "
        "tests resample seeds as well as test examples (hierarchical bootstrap).")


def _rows(results: Mapping[str, Any]) -> list[list[str]]:
    m = primary_metric(dict(results))
    rows = []
    for name, s in (results.get("strategies") or {}).items():
        seeds = s.get("seeds") or []
        if len(seeds) < 2:
            continue
        values = (s.get("per_seed") or {}).get(m) or []
        rows.append([str(name), ", ".join(map(str, seeds)), ", ".join(fmt_metric(m, v) for v in values),
                     fmt_value_ci(m, s), fmt_metric(m, (s.get("seed_sd") or {}).get(m))])
    return rows


def seed_notes(results: Mapping[str, Any]) -> list[str]:
    """"sft vs prompt, accuracy: the training-seed spread of sft (...) is larger than the difference (...)"."""
    return [f"{c.get('a')} vs {c.get('b')}, {c.get('metric')}: {c['seed_note']}"
            for c in results.get("comparisons") or [] if c.get("seed_note")]


def seeds_markdown(results: Mapping[str, Any]) -> list[str]:
    """The section (nothing when no strategy has more than one seed)."""
    rows = _rows(results)
    if not rows:
        return []
    head = [*HEAD[:2], f"{primary_metric(dict(results))} per seed", *HEAD[3:]]
    out = ["## Training seeds", "", *_md_table(head, rows), "", f"_{NOTE}_", ""]
    if notes := seed_notes(results):
        out += [*(f"- Caution: {n}." for n in notes), ""]
    return out


def seeds_html(results: Mapping[str, Any]) -> str:
    rows = _rows(results)
    if not rows:
        return ""
    head = [*HEAD[:2], f"{primary_metric(dict(results))} per seed", *HEAD[3:]]
    inner = table(head, [[td(e(r[0]), "name"), td(e(r[1])), *(td(e(c), "num") for c in r[2:])] for r in rows],
                  "numeric")
    if notes := seed_notes(results):
        inner += '<ul class="facts-list">' + "".join(f"<li>Caution: {e(n)}.</li>" for n in notes) + "</ul>"
    return section("seeds", "Training seeds", inner, e(NOTE))
