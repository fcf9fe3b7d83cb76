"""The gate's verdict as files for CI: JUnit XML, JSON, and an HTML page of what flipped."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.core.cache import write_json_atomic, write_text_atomic
from harness.gate.model import REGRESSION, GateReport
from harness.gate.output import flips_line
from harness.report.formats.html_parts import CSS, e, section, table, td
from harness.scoring.fmt import fmt_metric, fmt_p


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


def flips_html_path(junit: Path) -> Path:
    """Where the flipped-examples page goes beside a JUnit file: gate.xml -> gate.flips.html."""
    return junit.with_name(junit.stem + ".flips.html")


def _answer(a: Any) -> str:
    return "invalid" if a is None else json.dumps(a, ensure_ascii=False) if isinstance(a, dict) else str(a)


def write_flips_html(report: GateReport, path: Path) -> None:
    """One self-contained page: per compared pair, the examples that broke and the ones fixed, with
    the input, the target and both runs' outputs (every string escaped)."""
    parts = []
    for f in report.flips:
        for kind, items in (("broke", f.broke), ("fixed", f.fixed)):
            rows = [[td(e(x.example_id), "name"), td(f'<div class="text">{e(x.input)}</div>'),
                     td(f'<div class="text">{e(x.target)}</div>'),
                     td(f'<div class="text">{e(x.baseline_output)}</div><div class="answer">answer: '
                        f'{e(_answer(x.baseline_answer))} · score {x.baseline_score:.2f}</div>'),
                     td(f'<div class="text">{e(x.candidate_output)}</div><div class="answer">answer: '
                        f'{e(_answer(x.candidate_answer))} · score {x.candidate_score:.2f}</div>')] for x in items]
            inner = table(["example", "input", "target", "baseline", "candidate"], rows, "examples") if rows \
                else "<p>none</p>"
            parts.append(f"<h3>{e(kind)} ({len(items)})</h3>{inner}")
        parts_html = "".join(parts[-2:])
        parts[-2:] = [section(f"pair-{len(parts)}", e(f.pair), parts_html, e(flips_line(f)))]
    verdict = "passed" if report.passed else "FAILED"
    head = (f"<header><h1>Gate {e(verdict)}: what flipped <span class=\"suite\">{e(report.suite)}</span></h1>"
            f"<p>baseline {e(report.baseline_run_id)} vs candidate {e(report.candidate_run_id)}</p></header>")
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>sft-harness gate · {e(report.suite)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{head}\n"
            f"<main>\n{''.join(parts) or '<p>No strategy pair was compared.</p>'}\n</main>\n</body>\n</html>\n")
    write_text_atomic(Path(path), page)

