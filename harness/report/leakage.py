"""The leakage section of report.md and report.html, from results.json's `leakage` block and each
strategy's `clean_metrics` (harness.engine.leakage, harness.scoring.clean): what leaked into what,
with ids, and every metric again on the clean subset, shown only when some example leaked.
"""

from __future__ import annotations

from typing import Any

from harness.report.html_parts import e, section, table, td
from harness.report.views import best_strategies, fmt_value_ci, metric_names, primary_metric

MAX_PAIRS = 50  # pairs listed in a report; results.json keeps them all


def _pairs(block: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(block.get("pairs") or []), *(block.get("test_duplicates") or [])]


def _pair_cells(p: dict[str, Any]) -> list[str]:
    score = p.get("score")
    return [str(p.get("kind", "")), str(p.get("split", "")), str(p.get("test_id", "")), str(p.get("other_id", "")),
            "—" if score is None else f"{float(score):.3f}"]


def _clean_rows(results: dict[str, Any]) -> list[list[str]]:
    """Per strategy: each metric on all scored examples, then on the clean subset, and n_clean."""
    rows = []
    for name, s in (results.get("strategies") or {}).items():
        if "clean_metrics" not in s:
            continue
        row = [str(name)]
        for m in metric_names(results):
            row += [fmt_value_ci(m, s), fmt_value_ci(m, {"metrics": s.get("clean_metrics") or {}})]
        rows.append([*row, str(s.get("n", "—")), str(s.get("n_clean", "—"))])
    return rows


def clean_verdict(results: dict[str, Any]) -> str:
    """Whether the best strategy on the primary metric is the same on the clean subset ("" if unknown)."""
    m = primary_metric(results)
    strategies = results.get("strategies") or {}
    if not all("clean_metrics" in s for s in strategies.values()) or len(strategies) < 2:
        return ""
    overall = best_strategies(results, m)
    clean = best_strategies({"strategies": {n: {"metrics": s["clean_metrics"]} for n, s in strategies.items()}}, m)
    if not overall or not clean:
        return ""
    if set(overall) == set(clean):
        return f"On the clean subset the best on {m} is the same: {', '.join(clean)}."
    return (f"On the clean subset the best on {m} changes: {', '.join(clean)} (on all examples: "
            f"{', '.join(overall)}); the verdict depends on leaked examples.")


def _clean_head(results: dict[str, Any]) -> list[str]:
    return ["Strategy", *[h for m in metric_names(results) for h in (f"{m} (all)", f"{m} (clean subset)")],
            "n", "n clean"]


def _md(value: Any) -> str:
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(map(_md, head)) + " |", "| " + " | ".join("---" for _ in head) + " |",
            *["| " + " | ".join(map(_md, r)) + " |" for r in rows]]


def leakage_markdown(results: dict[str, Any]) -> list[str]:
    """The "Leakage" section of report.md (nothing when the run has no leakage block)."""
    block = results.get("leakage")
    if not isinstance(block, dict):
        return []
    if not block.get("checked"):
        return ["## Leakage", "", "_Not checked (`--no-leakage-check`)._", ""]
    out = ["## Leakage", "", _md(block.get("summary", "")), ""]
    pairs = _pairs(block)
    if pairs:
        out += _md_table(["kind", "split", "test id", "other id", "cosine"], [_pair_cells(p) for p in pairs[:MAX_PAIRS]])
        out += ["", f"_{len(pairs) - MAX_PAIRS} more in results.json._", ""] if len(pairs) > MAX_PAIRS else [""]
    rows = _clean_rows(results)
    if rows:
        out += ["### Clean subset", "", "Every metric again on the test examples that leak into nothing a strategy "
                "can see (duplicates inside test are kept).", "", *_md_table(_clean_head(results), rows), ""]
        out += [f"**{_md(verdict)}**", ""] if (verdict := clean_verdict(results)) else []
    return out


def leakage_html(results: dict[str, Any]) -> str:
    """The "Leakage" section of report.html ("" when the run has no leakage block)."""
    block = results.get("leakage")
    if not isinstance(block, dict):
        return ""
    if not block.get("checked"):
        return section("leakage", "Leakage", "<p>Not checked (--no-leakage-check).</p>")
    inner = f"<p>{e(block.get('summary', ''))}</p>"
    pairs = _pairs(block)
    if pairs:
        rows = [[td(e(c)) for c in _pair_cells(p)] for p in pairs[:MAX_PAIRS]]
        inner += table(["kind", "split", "test id", "other id", "cosine"], rows, "leakage")
        if len(pairs) > MAX_PAIRS:
            inner += f"<p class=\"note\">{len(pairs) - MAX_PAIRS} more in results.json.</p>"
    clean = _clean_rows(results)
    if clean:
        rows = [[td(e(r[0]), "name"), *[td(e(c), "num") for c in r[1:]]] for r in clean]
        inner += "<h3>Clean subset</h3>" + table(_clean_head(results), rows, "clean numeric")
        inner += f"<p><strong>{e(verdict)}</strong></p>" if (verdict := clean_verdict(results)) else ""
    thresholds = block.get("thresholds") or {}
    note = (f"Exact, reordered-sentence and {e(thresholds.get('ngram', 13))}-gram overlap; embedding "
            f"near-duplicates at cosine ≥ {e(thresholds.get('near_cosine'))}." if thresholds.get("near_cosine")
            else "Exact, reordered-sentence and 13-gram overlap; near-duplicates not checked.")
    return section("leakage", "Leakage", inner, note)
