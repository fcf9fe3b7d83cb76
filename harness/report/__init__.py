"""The report layer: everything here reads finished run folders; nothing decodes or trains."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape


def publish(run_dir: Path, console: Console) -> None:
    """After a run: append it to the history, render report.md/.html/summary.csv, print the table."""
    from harness.core.runrecord import load_run
    from harness.report import history
    from harness.report.markdown import print_summary, render_all

    run = load_run(run_dir)
    history.append_run(run_dir.parent, run.results, run_dir)
    render_all(run_dir, history=history.load_history(run_dir.parent, str(run.results["suite"]["name"])))
    # Logs (not a terminal) do not wrap: give the table room instead of rich's 80-column guess.
    print_summary(run.results, Console() if sys.stdout.isatty() else Console(width=140))
    console.print(f"[green]wrote[/] {escape(str(run_dir))}/report.html, report.md, summary.csv, results.json, "
                  "predictions.jsonl")
