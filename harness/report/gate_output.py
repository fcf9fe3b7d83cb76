"""The gate's verdict for people and for CI: a table on the console, JUnit XML, JSON."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.core.cache import write_json_atomic, write_text_atomic
from harness.report.gate_model import IMPROVED, OK, REGRESSION, GateReport
from harness.scoring.fmt import fmt_metric, fmt_p, fmt_signed

VERDICT_STYLE = {OK: "green", REGRESSION: "bold red", IMPROVED: "bold cyan"}


def render_gate(report: GateReport, console: Console) -> None:
    head = Text("gate ", style="bold")
    head.append(f"baseline {report.baseline_dir} ({report.baseline_run_id}) vs candidate "
                f"{report.candidate_dir} ({report.candidate_run_id}) · suite {report.suite} · "
                f"max drop {report.drop_text()} · alpha {report.alpha:g}"
                + (" (Holm across checks)" if report.correction == "holm" else ""))
    console.print(head)
    for p in report.pairings:
        pair = p.baseline_strategy if p.baseline_strategy == p.candidate_strategy else f"{p.baseline_strategy} → {p.candidate_strategy}"
        line = f"  {pair}: {p.n_shared} shared examples"
        if p.only_baseline or p.only_candidate:
            line += f", dropped {p.only_baseline} baseline-only and {p.only_candidate} candidate-only"
        if p.changed_targets:
            line += f", {p.changed_targets} with a changed target"
        console.print(Text(line, style="dim"))
    # Fits an 80-column CI log: one-space gaps, numbers never wrap, names fold when they must.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0, 0, 0))
    for col in ("strategy", "metric", "baseline", "candidate", "diff [95% CI]", "p", "verdict"):
        named = col in ("strategy", "metric")
        table.add_column(col, justify="left" if named or col == "verdict" else "right", no_wrap=not named, min_width=8 if named else None,
                         overflow="fold")
    for c in report.checks:
        m = c.metric
        table.add_row(
            Text(c.pair), Text(m), fmt_metric(m, c.baseline), fmt_metric(m, c.candidate),
            f"{fmt_signed(m, c.diff)} [{fmt_metric(m, c.ci[0])}, {fmt_metric(m, c.ci[1])}]", fmt_p(c.p),
            Text(c.verdict, style=VERDICT_STYLE[c.verdict]),
        )
    console.print(table)
    holm_note = ", Holm-adjusted across the checks" if report.correction == "holm" else ""
    console.print(Text(f"p: exact McNemar test for accuracy, paired bootstrap otherwise{holm_note}; "
                       "diff = candidate - baseline", style="dim"))
    for note in report.notes:
        console.print(Text(f"note: {note}", style="yellow"))
    for f in report.forgetting:  # --max-forgetting: the candidate's own control suites
        console.print(Text(f"forgetting {'FAILED' if f.failed else 'ok'}: {f.describe()}",
                           style="bold red" if f.failed else "green"))
    n = len(report.checks)
    if report.regressions:
        console.print(Text(f"REGRESSION: {len(report.regressions)} of {n} checks failed", style="bold red"))
        for c in report.regressions:
            console.print(Text(f"  {c.describe(report.alpha)}", style="red"))
    elif report.forgetting_failures:
        console.print(Text(f"FORGETTING: {len(report.forgetting_failures)} of {len(report.forgetting)} control "
                           "checks failed", style="bold red"))
    else:
        console.print(Text(f"OK: no regression in {n} checks ({len(report.improvements)} improved)", style="bold green"))


def write_junit(report: GateReport, path: Path) -> None:
    """One testcase per (strategy pair, metric), a <failure> for each regression; with
    --max-forgetting, one per (strategy, control suite, metric), a <failure> for each failed one."""
    n = len(report.checks) + len(report.forgetting)
    failures = len(report.regressions) + len(report.forgetting_failures)
    root = ET.Element("testsuites", name="sft-harness gate", tests=str(n), failures=str(failures), errors="0")
    suite = ET.SubElement(root, "testsuite", name=f"gate {report.suite}", tests=str(n), failures=str(failures),
                          errors="0", skipped="0", time="0")
    props = ET.SubElement(suite, "properties")
    for key, value in (("baseline", report.baseline_dir), ("candidate", report.candidate_dir),
                       ("baseline_run_id", report.baseline_run_id), ("candidate_run_id", report.candidate_run_id),
                       ("max_drop", report.drop_text()), ("alpha", report.alpha),
                       ("correction", report.correction)):
        ET.SubElement(props, "property", name=key, value=str(value))
    for c in report.checks:
        case = ET.SubElement(suite, "testcase", classname=f"sft-harness.gate.{report.suite}.{c.pair}",
                             name=c.metric, time="0")
        detail = c.describe(report.alpha)
        if c.verdict == REGRESSION:
            failure = ET.SubElement(case, "failure", type="regression",
                                    message=f"{c.metric} dropped by {fmt_metric(c.metric, -c.diff)} (p {fmt_p(c.p)})")
            failure.text = detail
        out = ET.SubElement(case, "system-out")
        out.text = f"{c.verdict}: {detail}"
    for f in report.forgetting:
        case = ET.SubElement(suite, "testcase", classname=f"sft-harness.gate.{report.suite}.forgetting.{f.strategy}",
                             name=f"{f.control}.{f.metric}", time="0")
        if f.failed:
            ET.SubElement(case, "failure", type="forgetting", message=f.describe()).text = f.describe()
        ET.SubElement(case, "system-out").text = ("forgetting: " if f.failed else "ok: ") + f.describe()
    ET.indent(root)
    write_text_atomic(Path(path), '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")


def write_json(report: GateReport, path: Path) -> None:
    write_json_atomic(Path(path), report.to_json())
