"""Commands that read run folders only (no model): report, gate, history."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rich.markup import escape

from harness.cli.console import out
from harness.core.errors import HarnessError


def _check_writable(path: Path, option: str) -> None:
    """Refuse an output path that cannot be written, before any work is done."""
    if path.is_dir():
        raise HarnessError(f"{option} {path}: is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise HarnessError(f"{option} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise HarnessError(f"{option} {path}: not writable")


def cmd_report(args: argparse.Namespace) -> int:
    from harness.core.runrecord import load_run
    from harness.report import render_all
    from harness.report.sections import history

    run_dir = Path(args.run_dir)
    suite_name = load_run(run_dir).results.suite.name  # a bad results.json: one line naming it
    paths = render_all(run_dir, history=history.load_history(run_dir.parent, suite_name))
    for p in paths:
        out.print(f"wrote {escape(str(p))}", highlight=False)
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    from harness import gate

    base_dir, base_strategy = gate.parse_run_ref(args.baseline)
    cand_dir, cand_strategy = gate.parse_run_ref(args.candidate)
    max_drop, max_drop_by_metric = gate.parse_max_drops(args.max_drop or [])
    max_forgetting = gate.parse_max_forgetting(args.max_forgetting or [])
    if args.pass_score is not None and not 0 <= args.pass_score <= 1:
        raise HarnessError(f"--pass-score must lie in [0, 1] (a per-example score), got {args.pass_score:g}")
    # The flipped examples as a page beside the JUnit file, unless --html names where.
    html = args.html or (str(gate.flips_html_path(Path(args.junit))) if args.junit else None)
    outputs = [(Path(p), opt, write) for p, opt, write in ((args.junit, "--junit", gate.write_junit),
                                                            (args.json, "--json", gate.write_json),
                                                            (html, "--html", gate.write_flips_html)) if p]
    for path, option, _ in outputs:  # a gate that cannot write its verdict must not print one first
        _check_writable(path, option)
    result = gate.gate(  # read through typed records: a bad run folder is one line naming the file
        (base_dir, base_strategy), (cand_dir, cand_strategy), metrics=args.metric or None, max_drop=max_drop,
        max_drop_by_metric=max_drop_by_metric, alpha=args.alpha, correction=args.correction,
        allow_suite_change=args.allow_suite_change, trust_remote_code=args.trust_remote_code,
        max_forgetting=max_forgetting, pass_score=args.pass_score, min_kappa=args.min_kappa)
    for path, option, write in outputs:
        try:
            write(result, path)
        except OSError as e:  # exit 2, never 1: CI must not read a failed write as a regression
            raise HarnessError(f"{option} {path}: cannot write ({e.strerror})") from None
    gate.render_gate(result, out)
    return 0 if result.passed else 1  # a regression, or an adapter that forgets too much (--max-forgetting)


def cmd_history(args: argparse.Namespace) -> int:
    from harness.report.sections import history

    reports = Path(args.reports)
    if not reports.is_dir():
        raise HarnessError(f"--reports {reports}: not a folder of runs (default: reports)")
    history.print_history(reports, args.suite, out)
    return 0


def add_parsers(sub: Any) -> None:
    rep = sub.add_parser("report", help="re-render reports of a run folder (no model)")
    rep.add_argument("run_dir")
    rep.set_defaults(func=cmd_report)

    add_gate_parser(sub)

    h = sub.add_parser("history", help="metric trends across runs (index.jsonl in the folder of run folders)")
    h.add_argument("suite", nargs="?")
    h.add_argument("--reports", default="reports", help="the folder runs were written to (run --out; default reports)")
    h.set_defaults(func=cmd_history)


def add_gate_parser(sub: Any) -> None:
    g = sub.add_parser("gate", help="baseline vs candidate run: exit 1 on a regression")
    g.add_argument("baseline", help="RUN_DIR or RUN_DIR:STRATEGY")
    g.add_argument("candidate", help="RUN_DIR or RUN_DIR:STRATEGY")
    g.add_argument("--metric", action="append", help="metric to gate on (repeatable; default: the suite's)")
    g.add_argument("--max-drop", dest="max_drop", action="append", metavar="[METRIC=]X",
                   help="tolerated absolute drop, in the metric's own scale (default 0); "
                        "repeat as METRIC=X per metric, e.g. --max-drop 0.01 --max-drop bleu=1.5")
    g.add_argument("--max-forgetting", dest="max_forgetting", action="append", metavar="METRIC=X",
                   help="also fail when the candidate's forgetting section (run --control) shows a compared "
                        "strategy dropping METRIC by more than X on a control suite (repeatable)")
    g.add_argument("--alpha", type=float, default=0.05)
    g.add_argument("--correction", choices=("none", "holm"), default="none",
                   help="holm: adjust p-values across all checks, for gates with many strategies and metrics")
    g.add_argument("--junit", help="write JUnit XML here")
    g.add_argument("--json", help="write the verdicts and the flipped examples as JSON here")
    g.add_argument("--html", help="write the flipped examples as an HTML page here (default with --junit: "
                                  "beside it, JUNIT.flips.html)")
    g.add_argument("--pass-score", dest="pass_score", type=float,
                   help="a per-example score from which an example passes, for the flipped examples "
                        "(default: right for labels, 0.5 where answers are graded)")
    g.add_argument("--min-kappa", dest="min_kappa", type=float,
                   help="refuse (exit 2) to gate on a judged metric whose judge's kappa against people's grades "
                        "(weighted for ordinal grades) is below this, or has no human grades")
    g.add_argument("--allow-suite-change", action="store_true")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow evaluate: metrics to run their module's code (off by default)")
    g.set_defaults(func=cmd_gate)
