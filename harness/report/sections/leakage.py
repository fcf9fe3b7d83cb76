"""The leakage section of report.md and report.html, from results.json's `leakage` block and each
strategy's `clean_metrics` (harness.engine.leakage, harness.scoring.clean): what leaked into what,
with ids, and every metric again on the clean subset, shown only when some example leaked.
"""

from __future__ import annotations

from harness.core.results import LeakPair, RunResults
from harness.report.formats.html_parts import e, section, table, td
from harness.report.formats.md import md, md_table
from harness.report.views import best_of, best_strategies, fmt_value_ci

MAX_PAIRS = 50  # pairs listed in a report; results.json keeps them all
PAIR_HEAD = ["kind", "split", "test id", "other id", "cosine"]


def _pair_cells(p: LeakPair) -> list[str]:
    return [p.kind, p.split, p.test_id, p.other_id, "—" if p.score is None else f"{p.score:.3f}"]


def _clean_rows(results: RunResults) -> list[list[str]]:
    """Per strategy: each metric on all scored examples, then on the clean subset, and n_clean."""
    rows = []
    for name, s in results.strategies.items():
        if s.clean_metrics is None:
            continue
        row = [name]
        for m in results.metric_names():
            row += [fmt_value_ci(m, s), fmt_value_ci(m, s, clean=True)]
        rows.append([*row, str(s.n), str(s.n_clean if s.n_clean is not None else "—")])
    return rows


def clean_verdict(results: RunResults) -> str:
    """Whether the best strategy on the primary metric is the same on the clean subset ("" if unknown)."""
    m = results.primary_metric
    strategies = results.strategies
    if len(strategies) < 2 or any(s.clean_metrics is None for s in strategies.values()):
        return ""
    overall = best_strategies(results, m)
    clean = best_of({n: s.value(m, clean=True) for n, s in strategies.items()}, m)
    if not overall or not clean:
        return ""
    if set(overall) == set(clean):
        return f"On the clean subset the best on {m} is the same: {', '.join(clean)}."
    return (f"On the clean subset the best on {m} changes: {', '.join(clean)} (on all examples: "
            f"{', '.join(overall)}); the verdict depends on leaked examples.")


def _clean_head(results: RunResults) -> list[str]:
    return ["Strategy", *[h for m in results.metric_names() for h in (f"{m} (all)", f"{m} (clean subset)")],
            "n", "n clean"]


def leakage_markdown(results: RunResults) -> list[str]:
    """The "Leakage" section of report.md."""
    block = results.leakage
    if not block.checked:
        return ["## Leakage", "", "_Not checked (`--no-leakage-check`)._", ""]
    out = ["## Leakage", "", md(block.summary), ""]
    pairs = [*block.pairs, *block.test_duplicates]
    if pairs:
        out += md_table(PAIR_HEAD, [_pair_cells(p) for p in pairs[:MAX_PAIRS]], ["l"] * 5)
        out += ["", f"_{len(pairs) - MAX_PAIRS} more in results.json._", ""] if len(pairs) > MAX_PAIRS else [""]
    rows = _clean_rows(results)
    if rows:
        head = _clean_head(results)
        out += ["### Clean subset", "", "Every metric again on the test examples that leak into nothing a strategy "
                "can see (duplicates inside test are kept).", "", *md_table(head, rows, ["l"] * len(head)), ""]
        out += [f"**{md(verdict)}**", ""] if (verdict := clean_verdict(results)) else []
    return out


def leakage_html(results: RunResults) -> str:
    """The "Leakage" section of report.html."""
    block = results.leakage
    if not block.checked:
        return section("leakage", "Leakage", "<p>Not checked (--no-leakage-check).</p>")
    inner = f"<p>{e(block.summary)}</p>"
    pairs = [*block.pairs, *block.test_duplicates]
    if pairs:
        inner += table(PAIR_HEAD, [[td(e(c)) for c in _pair_cells(p)] for p in pairs[:MAX_PAIRS]], "leakage")
        if len(pairs) > MAX_PAIRS:
            inner += f"<p class=\"note\">{len(pairs) - MAX_PAIRS} more in results.json.</p>"
    clean = _clean_rows(results)
    if clean:
        rows = [[td(e(r[0]), "name"), *[td(e(c), "num") for c in r[1:]]] for r in clean]
        inner += "<h3>Clean subset</h3>" + table(_clean_head(results), rows, "clean numeric")
        inner += f"<p><strong>{e(verdict)}</strong></p>" if (verdict := clean_verdict(results)) else ""
    near = block.thresholds.get("near_cosine")
    note = (f"Exact, reordered-sentence and {e(block.thresholds.get('ngram', 13))}-gram overlap; embedding "
            f"near-duplicates at cosine ≥ {e(near)}." if near
            else "Exact, reordered-sentence and 13-gram overlap; near-duplicates not checked.")
    return section("leakage", "Leakage", inner, note)
