"""Commands that read run folders only (no model): report, gate, history."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.markup import escape

from harness.cli.console import out
from harness.core.errors import HarnessError


@contextlib.contextmanager
def _reading(run_dirs: list[Path]) -> Iterator[None]:
    """A results.json that passed the shape checks but holds a value of the wrong type deeper
    down (hand-edited, another tool's) is the file's fault: one line naming it, not a traceback."""
    try:
        yield
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        where = " or ".join(str(d / "results.json") for d in run_dirs)
        raise HarnessError(f"{where}: a value has the wrong type or shape ({type(e).__name__}: {str(e)[:200]}); "
                           "re-run to regenerate it") from None


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
    from harness.report import history
    from harness.report import markdown as report

    run_dir = Path(args.run_dir)
    with _reading([run_dir]):
        suite_name = report.load_run(run_dir).results["suite"]["name"]
        paths = report.render_all(run_dir, history=history.load_history(run_dir.parent, suite_name))
    for p in paths:
        out.print(f"wrote {escape(str(p))}", highlight=False)
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    from harness.report import gate

    base_dir, base_strategy = gate.parse_run_ref(args.baseline)
    cand_dir, cand_strategy = gate.parse_run_ref(args.candidate)
    max_drop, max_drop_by_metric = gate.parse_max_drops(args.max_drop or [])
    max_forgetting = gate.parse_max_forgetting(args.max_forgetting or [])
    outputs = [(Path(p), opt, write) for p, opt, write in ((args.junit, "--junit", gate.write_junit),
                                                            (args.json, "--json", gate.write_json)) if p]
    for path, option, _ in outputs:  # a gate that cannot write its verdict must not print one first
        _check_writable(path, option)
    with _reading([Path(base_dir), Path(cand_dir)]):
        result = gate.gate(
            (base_dir, base_strategy),
            (cand_dir, cand_strategy),
            metrics=args.metric or None,
            max_drop=max_drop,
            max_drop_by_metric=max_drop_by_metric,
            alpha=args.alpha,
            correction=args.correction,
            allow_suite_change=args.allow_suite_change,
            trust_remote_code=args.trust_remote_code,
            max_forgetting=max_forgetting,
        )
    for path, option, write in outputs:
        try:
            write(result, path)
        except OSError as e:  # exit 2, never 1: CI must not read a failed write as a regression
            raise HarnessError(f"{option} {path}: cannot write ({e.strerror})") from None
    gate.render_gate(result, out)
    return 0 if result.passed else 1  # a regression, or an adapter that forgets too much (--max-forgetting)


def cmd_history(args: argparse.Namespace) -> int:
    from harness.report import history

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

    h = sub.add_parser("history", help="metric trends across runs (reports/index.jsonl)")
    h.add_argument("suite", nargs="?")
    h.add_argument("--reports", default="reports")
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
    g.add_argument("--json", help="write the verdicts as JSON here")
    g.add_argument("--allow-suite-change", action="store_true")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow evaluate: metrics to run their module's code (off by default)")
    g.set_defaults(func=cmd_gate)
