"""The regression gate: is a candidate run worse than a baseline run? (`sft-harness gate`)

Per (strategy pair, metric) the per-example statistics are recomputed from the two
predictions.jsonl files (answers and targets are stored there) on the examples both runs
scored, and compared paired: exact McNemar for accuracy, the paired bootstrap otherwise.

A regression is a drop larger than `max_drop` (absolute, in the metric's own scale: 0-1 for
accuracy / f1 / rouge_l / exact_match, 0-100 for bleu / chrf; a rise, for a lower-is-better
metric) that is also significant (p < alpha). Both conditions, so noise on a small test split does not fail CI, and a
significant but negligible drop can be tolerated on purpose. `max_drop` can differ per metric
(BLEU moves in points, accuracy in fractions). With `correction="holm"` the p-values are
Holm-adjusted across all checks of the gate, so gating many strategies and metrics does not
raise the chance of a false alarm.
"""

from __future__ import annotations

import difflib
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.core.cache import write_json_atomic, write_text_atomic
from harness.core.errors import HarnessError
from harness.report.views import TEST_NAMES, Run, answer_of, fmt_metric, fmt_p, load_run, to_example
from harness.scoring.registry import check_metric, get_metric, higher_is_better
from harness.scoring.stats import holm, mcnemar_exact, paired_bootstrap, resamples_for_holm

GATE_SCHEMA = "sft-harness/gate/v1"
OK, REGRESSION, IMPROVED = "ok", "REGRESSION", "improved"
CORRECTIONS = ("none", "holm")
_EPS = 1e-9  # 0.8 - 0.7 is 0.10000000000000009: a drop of exactly max_drop is tolerated

RunRef = tuple[Path, str | None]


@dataclass(frozen=True)
class Check:
    """One (strategy pair, metric) verdict."""

    baseline_strategy: str
    candidate_strategy: str
    metric: str
    n: int
    baseline: float
    candidate: float
    diff: float  # candidate - baseline
    ci: tuple[float, float]
    p_value: float  # the test's own p-value
    test: str  # "mcnemar_exact" | "paired_bootstrap"
    verdict: str  # ok | REGRESSION | improved
    max_drop: float  # the tolerated drop for this metric
    p_holm: float | None = None  # Holm-adjusted across the gate's checks, with correction="holm"

    @property
    def p(self) -> float:
        """The p-value the verdict used."""
        return self.p_value if self.p_holm is None else self.p_holm

    @property
    def pair(self) -> str:
        if self.baseline_strategy == self.candidate_strategy:
            return self.baseline_strategy
        return f"{self.baseline_strategy} → {self.candidate_strategy}"

    def describe(self, alpha: float) -> str:
        m = self.metric
        p = f"p {fmt_p(self.p_value)}" + (f", {fmt_p(self.p_holm)} after Holm" if self.p_holm is not None else "")
        return (
            f"{self.pair} {m}: {fmt_metric(m, self.baseline)} → {fmt_metric(m, self.candidate)} "
            f"(diff {_signed(m, self.diff)}, 95% CI [{_signed(m, self.ci[0])}, {_signed(m, self.ci[1])}], "
            f"{p} by {TEST_NAMES.get(self.test, self.test)}, n {self.n}; "
            f"fails when the drop exceeds {self.max_drop:g} with p < {alpha:g})"
        )


@dataclass(frozen=True)
class Pairing:
    """Which examples one strategy pair was compared on."""

    baseline_strategy: str
    candidate_strategy: str
    n_shared: int
    only_baseline: int  # examples the baseline scored and the candidate did not: dropped
    only_candidate: int
    changed_targets: int  # shared examples whose target differs between the runs


@dataclass(frozen=True)
class GateReport:
    baseline_dir: Path
    candidate_dir: Path
    baseline_run_id: str
    candidate_run_id: str
    suite: str
    suite_changed: bool
    metrics: tuple[str, ...]
    max_drop: float  # the default tolerated drop
    alpha: float
    pairings: tuple[Pairing, ...]
    checks: tuple[Check, ...]
    notes: tuple[str, ...] = field(default=())
    max_drop_by_metric: Mapping[str, float] = field(default_factory=dict)  # overrides of the default
    correction: str = "none"

    def drop_text(self) -> str:
        parts = [f"{self.max_drop:g}"] + [f"{m}={v:g}" for m, v in self.max_drop_by_metric.items()]
        return ", ".join(parts)

    @property
    def regressions(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == REGRESSION]

    @property
    def improvements(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == IMPROVED]

    @property
    def passed(self) -> bool:
        return not self.regressions

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": GATE_SCHEMA,
            "passed": self.passed,
            "baseline": {"run_dir": str(self.baseline_dir), "run_id": self.baseline_run_id},
            "candidate": {"run_dir": str(self.candidate_dir), "run_id": self.candidate_run_id},
            "suite": self.suite,
            "suite_changed": self.suite_changed,
            "metrics": list(self.metrics),
            "max_drop": self.max_drop,
            "max_drop_by_metric": dict(self.max_drop_by_metric),
            "alpha": self.alpha,
            "correction": self.correction,
            "pairings": [vars(p) for p in self.pairings],
            "checks": [
                {**{k: _json_num(v) for k, v in vars(c).items() if k != "ci"}, "ci": [_json_num(x) for x in c.ci],
                 "pair": c.pair}
                for c in self.checks
            ],
            "regressions": len(self.regressions),
            "improvements": len(self.improvements),
            "notes": list(self.notes),
        }


def _json_num(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def _signed(metric: str, v: float) -> str:
    text = fmt_metric(metric, v)
    return text if text.startswith("-") or text == "—" else "+" + text


# --------------------------------------------------------------------------- references


def parse_run_ref(text: str) -> RunRef:
    """`RUN_DIR` or `RUN_DIR:STRATEGY`. A path that exists as given wins over a split at ':'."""
    text = str(text)
    if not text:
        raise HarnessError("empty run reference: give RUN_DIR or RUN_DIR:STRATEGY")
    if Path(text).exists() or ":" not in text:
        return Path(text), None
    # Strategy names may hold ':' themselves (`sft:epochs=3`): split at the first ':' whose left
    # side is an existing folder, else at the first ':' (the error then names the missing folder).
    splits = [i for i, ch in enumerate(text) if ch == ":"]
    at = next((i for i in splits if Path(text[:i]).is_dir()), splits[0])
    path, strategy = text[:at], text[at + 1 :]
    if not path or not strategy:
        raise HarnessError(f"bad run reference {text!r}: give RUN_DIR or RUN_DIR:STRATEGY")
    return Path(path), strategy


def _as_ref(ref: str | Path | RunRef) -> RunRef:
    if isinstance(ref, tuple):
        return Path(ref[0]), ref[1]
    if isinstance(ref, Path):
        return ref, None
    return parse_run_ref(ref)


def _pairs(base: Run, cand: Run, base_s: str | None, cand_s: str | None) -> list[tuple[str, str]]:
    """Strategy pairs to compare. Both named: that pair. One named: the same name on the other
    side. None named: every strategy present in both runs, by name."""
    if base_s is None and cand_s is None:
        common = [s for s in base.strategies if s in cand.strategies]
        if not common:
            raise HarnessError(
                f"the runs share no strategy name (baseline {base.dir}: {', '.join(base.strategies) or 'none'}; "
                f"candidate {cand.dir}: {', '.join(cand.strategies) or 'none'}); "
                "name the two to compare as RUN_DIR:STRATEGY"
            )
        return [(s, s) for s in common]
    base_s = base_s or cand_s
    cand_s = cand_s or base_s
    assert base_s is not None and cand_s is not None
    for run, name, side in ((base, base_s, "baseline"), (cand, cand_s, "candidate")):
        if name not in run.strategies:
            close = difflib.get_close_matches(name, run.strategies, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise HarnessError(
                f"{side} run {run.dir} has no strategy '{name}'{hint}; it has: {', '.join(run.strategies) or 'none'}"
            )
    return [(base_s, cand_s)]


def _check_suites(base: Run, cand: Run, allow_suite_change: bool) -> bool:
    """True when the suites differ (and that was allowed); raises when it was not."""
    b, c = base.suite, cand.suite
    if b.get("task") != c.get("task"):
        raise HarnessError(
            f"cannot compare a {b.get('task')} run ({b.get('name')}) with a {c.get('task')} run ({c.get('name')}): "
            "their metrics mean different things"
        )
    if b.get("sha256") == c.get("sha256"):
        return False
    if not allow_suite_change:
        raise HarnessError(
            f"the runs are of different suites: baseline {b.get('name')} (sha256 {str(b.get('sha256'))[:12]}) vs "
            f"candidate {c.get('name')} (sha256 {str(c.get('sha256'))[:12]}); their scores are not comparable. "
            "Pass --allow-suite-change to compare them anyway on the examples they share"
        )
    return True


# --------------------------------------------------------------------------- the gate


def gate(
    baseline: str | Path | RunRef,
    candidate: str | Path | RunRef,
    *,
    metrics: Sequence[str] | None = None,
    max_drop: float = 0.0,
    max_drop_by_metric: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    correction: str = "none",
    allow_suite_change: bool = False,
    seed: int = 0,
    n_resamples: int = 1000,
) -> GateReport:
    """Compare a candidate run with a baseline run; see the module docstring for the rule."""
    by_metric = dict(max_drop_by_metric or {})
    for m, v in [("", max_drop), *by_metric.items()]:
        if v < 0:
            raise HarnessError(f"--max-drop {m + '=' if m else ''}{v:g}: a tolerated drop must be >= 0")
    _known_metrics(by_metric)
    if not 0 < alpha < 1:
        raise HarnessError(f"--alpha must lie in (0, 1), got {alpha}")
    if correction not in CORRECTIONS:
        raise HarnessError(f"--correction must be one of {', '.join(CORRECTIONS)}, got '{correction}'")
    (base_dir, base_s), (cand_dir, cand_s) = _as_ref(baseline), _as_ref(candidate)
    base, cand = load_run(base_dir), load_run(cand_dir)
    suite_changed = _check_suites(base, cand, allow_suite_change)
    names = _metric_list(base, metrics)
    notes: list[str] = []
    if suite_changed:
        notes.append("the suites differ (sha256); compared on the examples both runs scored, each against its own targets")
    pairs = _pairs(base, cand, base_s, cand_s)
    if correction == "holm":  # the bootstrap's p-value floor must survive the correction
        n_resamples = resamples_for_holm(len(pairs) * len(names), alpha, at_least=n_resamples)
    pairings, checks = [], []
    for b_name, c_name in pairs:
        pairing, b_lines, c_lines = _shared(base, cand, b_name, c_name)
        pairings.append(pairing)
        if pairing.only_baseline or pairing.only_candidate:
            notes.append(
                f"{b_name} → {c_name}: compared on {pairing.n_shared} shared examples; dropped "
                f"{pairing.only_baseline} scored only by the baseline and {pairing.only_candidate} only by the candidate"
            )
        for m in names:
            checks.append(_check(base, b_lines, c_lines, b_name, c_name, m, by_metric.get(m, max_drop), seed, n_resamples))
    if correction == "holm" and checks:
        checks = [replace(c, p_holm=p) for c, p in zip(checks, holm([c.p_value for c in checks]), strict=True)]
    checks = [replace(c, verdict=_verdict(c, alpha)) for c in checks]
    unused = sorted(set(by_metric) - set(names))
    if unused:
        notes.append(f"--max-drop given for {', '.join(unused)}, which this gate does not check")
    return GateReport(
        baseline_dir=base.dir, candidate_dir=cand.dir,
        baseline_run_id=str(base.results.get("run_id", base.dir.name)),
        candidate_run_id=str(cand.results.get("run_id", cand.dir.name)),
        suite=str(base.suite.get("name")), suite_changed=suite_changed, metrics=tuple(names),
        max_drop=float(max_drop), alpha=float(alpha), pairings=tuple(pairings), checks=tuple(checks),
        notes=tuple(notes), max_drop_by_metric=by_metric, correction=correction,
    )


def parse_max_drops(values: Sequence[str]) -> tuple[float, dict[str, float]]:
    """`--max-drop` values: "X" sets the default, "METRIC=X" one metric's (in its own scale)."""
    default, by_metric = 0.0, {}
    for raw in values:
        metric, _, number = raw.rpartition("=")
        try:
            value = float(number)
        except ValueError:
            raise HarnessError(f"--max-drop '{raw}': expected a number or METRIC=NUMBER (e.g. 0.02 or bleu=1.5)") from None
        if not (math.isfinite(value) and value >= 0):
            raise HarnessError(f"--max-drop '{raw}': the tolerated drop must be a number of 0 or more")
        if metric:
            by_metric[metric.strip()] = value
        else:
            default = value
    _known_metrics(by_metric)
    return default, by_metric


def _known_metrics(names: Sequence[str] | Mapping[str, float], task: str = "") -> None:
    for m in names:
        problem = check_metric(m, task)
        if problem:
            raise HarnessError(problem)


def _verdict(c: Check, alpha: float) -> str:
    gain = c.diff if higher_is_better(c.metric) else -c.diff  # lower-is-better: a rise is the drop
    if gain < -c.max_drop - _EPS and c.p < alpha:
        return REGRESSION
    if gain > _EPS and c.p < alpha:
        return IMPROVED
    return OK


def _metric_list(base: Run, metrics: Sequence[str] | None) -> list[str]:
    names = list(dict.fromkeys(metrics)) if metrics else [str(m) for m in base.suite.get("metrics") or []]
    if not names:
        names = base.metrics
    _known_metrics(names, base.task)
    for m in names:
        if m == "f1" and base.task == "classification" and not base.labels:
            raise HarnessError(f"{base.dir}/results.json: macro-F1 needs the suite's labels, and none are recorded")
    return names


def _shared(base: Run, cand: Run, b_name: str, c_name: str) -> tuple[Pairing, list[dict[str, Any]], list[dict[str, Any]]]:
    b_by_id = {str(ln["example_id"]): ln for ln in base.predictions_for(b_name)}
    c_by_id = {str(ln["example_id"]): ln for ln in cand.predictions_for(c_name)}
    shared = [i for i in b_by_id if i in c_by_id]
    if not shared:
        raise HarnessError(
            f"{b_name} in {base.dir} and {c_name} in {cand.dir} have no scored example in common "
            f"({len(b_by_id)} and {len(c_by_id)} predictions)"
        )
    changed = sum(1 for i in shared if b_by_id[i].get("target") != c_by_id[i].get("target"))
    pairing = Pairing(b_name, c_name, len(shared), len(b_by_id) - len(shared), len(c_by_id) - len(shared), changed)
    return pairing, [b_by_id[i] for i in shared], [c_by_id[i] for i in shared]


def _check(
    base: Run,
    b_lines: list[dict[str, Any]],
    c_lines: list[dict[str, Any]],
    b_name: str,
    c_name: str,
    metric: str,
    max_drop: float,
    seed: int,
    n_resamples: int,
) -> Check:
    """The paired comparison; the verdict is set once every check's p-value is known."""
    task, labels = base.task, base.labels
    # Each side against its own stored targets: identical unless --allow-suite-change let a
    # changed suite through, and then "the candidate's score" means against its own suite.
    b_ex, c_ex = [to_example(ln) for ln in b_lines], [to_example(ln) for ln in c_lines]
    b_ans, c_ans = [answer_of(ln) for ln in b_lines], [answer_of(ln) for ln in c_lines]
    suite_dir = base.suite.get("path")  # where an evaluate:./folder metric lives
    metric_obj = get_metric(metric, Path(suite_dir) if suite_dir else None)
    agg = metric_obj.bind(task, labels)
    b_stats, c_stats = agg.stats(b_ans, b_ex), agg.stats(c_ans, c_ex)
    res = paired_bootstrap(c_stats, b_stats, agg, n_resamples=metric_obj.resamples(n_resamples), seed=seed)
    p, test = res.p_value, "paired_bootstrap"
    if metric_obj.paired_test == "mcnemar_exact":  # rows are 0/1 correctness
        p, test = mcnemar_exact(c_stats[:, 0] > 0.5, b_stats[:, 0] > 0.5), "mcnemar_exact"
    return Check(b_name, c_name, metric, len(b_lines), float(agg(b_stats)), float(agg(c_stats)), res.diff,
                 res.ci, p, test, OK, max_drop)


# --------------------------------------------------------------------------- output


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
            f"{_signed(m, c.diff)} [{fmt_metric(m, c.ci[0])}, {fmt_metric(m, c.ci[1])}]", fmt_p(c.p),
            Text(c.verdict, style=VERDICT_STYLE[c.verdict]),
        )
    console.print(table)
    holm_note = ", Holm-adjusted across the checks" if report.correction == "holm" else ""
    console.print(Text(f"p: exact McNemar test for accuracy, paired bootstrap otherwise{holm_note}; "
                       "diff = candidate - baseline", style="dim"))
    for note in report.notes:
        console.print(Text(f"note: {note}", style="yellow"))
    n = len(report.checks)
    if report.regressions:
        console.print(Text(f"REGRESSION: {len(report.regressions)} of {n} checks failed", style="bold red"))
        for c in report.regressions:
            console.print(Text(f"  {c.describe(report.alpha)}", style="red"))
    else:
        console.print(Text(f"OK: no regression in {n} checks ({len(report.improvements)} improved)", style="bold green"))


def write_junit(report: GateReport, path: Path) -> None:
    """One testcase per (strategy pair, metric), a <failure> for each regression."""
    n, failures = len(report.checks), len(report.regressions)
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
    ET.indent(root)
    write_text_atomic(Path(path), '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")


def write_json(report: GateReport, path: Path) -> None:
    write_json_atomic(Path(path), report.to_json())
