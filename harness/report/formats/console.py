"""The comparison table printed at the end of `sft-harness run`: value [CI], best in bold, the advice."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.core.results import RunResults
from harness.report.formats.markdown import recommendation_text
from harness.report.views import SIGNIFICANCE_LEGEND, best_strategies, fmt_value_ci, significance_marker
from harness.scoring.fmt import fmt_num


def print_summary(results: RunResults, console: Console) -> None:
    metrics = results.metric_names()
    table = Table(title=Text(f"{results.suite.name} ({results.suite.task})"), title_justify="left")
    table.add_column("strategy", style="cyan", no_wrap=True)
    for m in metrics:
        table.add_column(Text(m), justify="right", no_wrap=True)
    table.add_column("n", justify="right")
    table.add_column("examples/s", justify="right")
    best = {m: best_strategies(results, m) for m in metrics}
    for name, s in results.strategies.items():
        cells: list[Text] = [Text(name)]
        for m in metrics:
            cell = Text(fmt_value_ci(m, s), style="bold green" if name in best[m] else "")
            if mark := significance_marker(results, name, m):
                cell.append(mark, style="red")
            cells.append(cell)
        cells += [Text(str(s.n)), Text(fmt_num(s.cost.examples_per_s, 2))]
        table.add_row(*cells)
    console.print(table)
    console.print(Text(SIGNIFICANCE_LEGEND.replace("bold", "bold green"), style="dim"))
    line = Text("Recommendation: ", style="bold")
    line.append(recommendation_text(results))
    console.print(line)
