"""The gate's verdict on the console: the checks as a table, the flipped examples, the outcome."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.gate.flips import Flip, Flips
from harness.gate.model import IMPROVED, OK, REGRESSION, GateReport
from harness.scoring.fmt import fmt_metric, fmt_p, fmt_signed

SHOWN_FLIPS = 10  # per pair and direction on the console; --json and the HTML page list them all

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
    for flipped in report.flips:
        _print_flips(flipped, console)
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


def flips_line(f: Flips) -> str:
    passing = "right" if f.pass_score >= 1.0 else f"score ≥ {f.pass_score:g}"
    return (f"{f.pair}: {len(f.broke)} example(s) broke (passed in the baseline, fail in the candidate), "
            f"{len(f.fixed)} fixed; {f.both_pass} pass and {f.both_fail} fail in both (pass: {passing})")


def _short(text: object, limit: int = 60) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _flip_line(kind: str, flip: Flip) -> str:
    return (f"    {kind} {flip.example_id}: {_short(flip.input)!r} · target {_short(flip.target, 40)!r} · "
            f"{_short(flip.baseline_answer, 30)!r} ({flip.baseline_score:.2f}) → "
            f"{_short(flip.candidate_answer, 30)!r} ({flip.candidate_score:.2f})")


def _print_flips(f: Flips, console: Console) -> None:
    console.print(Text(flips_line(f), style="bold red" if f.broke else "dim"), soft_wrap=True)
    for kind, items, style in (("broke", f.broke, "red"), ("fixed", f.fixed, "green")):
        for flip in items[:SHOWN_FLIPS]:
            console.print(Text(_flip_line(kind, flip), style=style), soft_wrap=True)
        if len(items) > SHOWN_FLIPS:
            console.print(Text(f"    … {len(items) - SHOWN_FLIPS} more {kind} (all of them in --json and --html)",
                               style="dim"))

