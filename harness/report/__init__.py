"""The report layer: everything here reads finished run folders; nothing decodes, trains or scores.

- formats/: the files a run folder gets (report.md, report.html, summary.csv) and the terminal summary;
- sections/: features with a section of their own (seeds, leakage, forgetting, cost trade-off,
  history, learning curves), each rendered for every format;
- views: what formats and sections share. The regression gate is its own package (harness.gate).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.core.cache import write_text_atomic
from harness.core.runrecord import load_run

__all__ = ["publish", "render_all"]


def render_all(run_dir: Path, history: list[dict[str, Any]] | None = None) -> list[Path]:
    """Write report.md, report.html and summary.csv into the run folder from its files alone; return their paths."""
    from harness.report.formats.csv import render_csv
    from harness.report.formats.html import render_html
    from harness.report.formats.markdown import render_markdown

    run = load_run(Path(run_dir))
    outputs = {"report.md": render_markdown(run.results), "report.html": render_html(run, history),
               "summary.csv": render_csv(run.results)}
    paths = []
    for name, text in outputs.items():
        write_text_atomic(run.dir / name, text)
        paths.append(run.dir / name)
    return paths


def publish(run_dir: Path, console: Console) -> None:
    """After a run: append it to the history, render report.md/.html/summary.csv, print the table."""
    from harness.report.formats.console import print_summary
    from harness.report.sections import history

    run = load_run(run_dir)
    history.append_run(run_dir.parent, run.results, run_dir)
    render_all(run_dir, history=history.load_history(run_dir.parent, run.results.suite.name))
    # Logs (not a terminal) do not wrap: give the table room instead of rich's 80-column guess.
    print_summary(run.results, Console() if sys.stdout.isatty() else Console(width=140))
    console.print(f"[green]wrote[/] {escape(str(run_dir))}/report.html, report.md, summary.csv, results.json, "
                  "predictions.jsonl")
