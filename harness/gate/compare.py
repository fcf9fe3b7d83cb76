"""The regression gate: is a candidate run worse than a baseline run? (`sft-harness gate`)

Per (strategy pair, metric) the two runs are compared paired, on the examples both scored, by
the same function that compares strategies within a run (`harness.scoring.paired`): exact
McNemar for accuracy, the paired bootstrap otherwise. The per-example statistics are the ones
each run stored with its predictions (harness.core.runrecord): the gate never extracts or scores
an answer again. A metric whose rows are not numbers (`Metric.stored_rows` is False: an `evaluate:`
module) has no rows to store: its module is run (from the suite folder recorded in results.json,
or the Hub cache, only with --trust-remote-code) on the stored answers and targets, as every
bootstrap resample of it is. Besides the verdicts the gate lists what flipped (harness.gate.flips).

A regression is a drop larger than `max_drop` (absolute, in the metric's own scale, see its
`Metric.scale`: fractions for accuracy, points for BLEU; a rise, for a lower-is-better metric)
that is also significant (p < alpha). Both conditions, so noise on a small test split does not
fail CI, and a significant but negligible drop can be tolerated on purpose. `max_drop` can differ
per metric. With `correction="holm"` the p-values are Holm-adjusted across all checks of the
gate, so gating many strategies and metrics does not raise the chance of a false alarm.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from harness.core.errors import HarnessError
from harness.core.runrecord import PREDICTIONS_FILE, PredictionRecord, RunRecord, load_run
from harness.gate.flips import default_pass_score, flips
from harness.gate.forgetting import ForgettingCheck, forgetting_checks
from harness.gate.model import OK, Check, GateReport, Pairing, judge
from harness.scoring.judge_grades import judged_metric
from harness.scoring.paired import paired_comparison
from harness.scoring.registry import Aggregator, check_metric, display_metric, get_metric, require_trust
from harness.scoring.rows import stored_rows
from harness.scoring.stats import holm, resamples_for_holm

CORRECTIONS = ("none", "holm")

RunRef = tuple[Path, str | None]

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


def _pairs(base: RunRecord, cand: RunRecord, base_s: str | None, cand_s: str | None) -> list[tuple[str, str]]:
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


def _check_suites(base: RunRecord, cand: RunRecord, allow_suite_change: bool) -> bool:
    """True when the suites differ (and that was allowed); raises when it was not."""
    b, c = base.suite, cand.suite
    if b.task != c.task:
        raise HarnessError(f"cannot compare a {b.task} run ({b.name}) with a {c.task} run ({c.name}): "
                           "their metrics mean different things")
    if b.sha256 == c.sha256:
        return False
    if not allow_suite_change:
        raise HarnessError(
            f"the runs are of different suites: baseline {b.name} (sha256 {b.sha256[:12]}) vs "
            f"candidate {c.name} (sha256 {c.sha256[:12]}); their scores are not comparable. "
            "Pass --allow-suite-change to compare them anyway on the examples they share"
        )
    if base.labels != cand.labels:  # stored classification rows index each run's own label list
        raise HarnessError(
            f"the runs' suites list different labels (baseline: {', '.join(base.labels) or 'none'}; candidate: "
            f"{', '.join(cand.labels) or 'none'}), so the per-example statistics they stored cannot be paired"
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
    trust_remote_code: bool = False,
    max_forgetting: Mapping[str, float] | None = None,
    pass_score: float | None = None,
    min_kappa: float | None = None,
) -> GateReport:
    """Compare a candidate run with a baseline run; see the module docstring for the rule (and
    `_forgetting` for `max_forgetting`)."""
    # long: the rule step by step (options, runs, pairs, checks, Holm, verdicts), each a line or a call
    by_metric = dict(max_drop_by_metric or {})
    _check_options(max_drop, by_metric, alpha, correction)
    (base_dir, base_s), (cand_dir, cand_s) = _as_ref(baseline), _as_ref(candidate)
    base, cand = load_run(base_dir), load_run(cand_dir)
    suite_changed = _check_suites(base, cand, allow_suite_change)
    judged = frozenset(base.suite.judged) | frozenset(cand.suite.judged)
    _known_metrics(by_metric, judged=judged)
    names = _metric_list(base, metrics, judged)
    notes = ["the suites differ (sha256); compared on the examples both runs scored, each against its own targets"] \
        if suite_changed else []
    notes += _judged_checks(base, cand, [m for m in names if m in judged], min_kappa)
    pairs = _pairs(base, cand, base_s, cand_s)
    if correction == "holm":  # the bootstrap's p-value floor must survive the correction
        n_resamples = resamples_for_holm(len(pairs) * len(names), alpha, at_least=n_resamples)
    for m in names:  # an evaluate: metric is recomputed by its module's code: only when allowed
        require_trust(m, trust_remote_code)
    bindings = {m: judged_metric(m).bind(base.task, base.labels) if m in judged else _binding(base, m) for m in names}
    pairings, checks, flipped = [], [], []
    passing = default_pass_score(base.task) if pass_score is None else pass_score
    for b_name, c_name in pairs:
        pairing, b_records, c_records = _shared(base, cand, b_name, c_name)
        pairings.append(pairing)
        flipped.append(flips(b_name, c_name, b_records, c_records, passing))
        if pairing.only_baseline or pairing.only_candidate:
            notes.append(f"{b_name} → {c_name}: compared on {pairing.n_shared} shared examples; dropped "
                         f"{pairing.only_baseline} scored only by the baseline and {pairing.only_candidate} only by "
                         "the candidate")
        for m in names:
            res = paired_comparison(_rows(cand, c_records, m, bindings[m]), _rows(base, b_records, m, bindings[m]),
                                    bindings[m], seed=seed, n_resamples=n_resamples)
            checks.append(Check(b_name, c_name, m, len(b_records), res.value_b, res.value_a, res.diff, res.ci,
                                res.p_value, res.test, OK, by_metric.get(m, max_drop)))
    if correction == "holm" and checks:
        checks = [replace(c, p_holm=p) for c, p in zip(checks, holm([c.p_value for c in checks]), strict=True)]
    checks = [replace(c, verdict=judge(c, alpha)) for c in checks]  # once every p-value is known
    if unused := sorted(set(by_metric) - set(names)):
        notes.append(f"--max-drop given for {', '.join(unused)}, which this gate does not check")
    return GateReport(
        baseline_dir=base.dir, candidate_dir=cand.dir,
        baseline_run_id=base.results.run_id or base.dir.name, candidate_run_id=cand.results.run_id or cand.dir.name,
        suite=base.suite.name, suite_changed=suite_changed, metrics=tuple(names),
        max_drop=float(max_drop), alpha=float(alpha), pairings=tuple(pairings), checks=tuple(checks),
        notes=tuple(notes), max_drop_by_metric=by_metric, correction=correction,
        forgetting=_forgetting(cand, pairs, max_forgetting or {}, alpha), max_forgetting=dict(max_forgetting or {}),
        flips=tuple(flipped),
    )


def _forgetting(cand: RunRecord, pairs: Sequence[tuple[str, str]], max_forgetting: Mapping[str, float],
                alpha: float) -> tuple[ForgettingCheck, ...]:
    """`max_forgetting` (METRIC -> X): a check per control suite of each compared candidate strategy
    in the candidate's forgetting section (run --control); failed on a drop beyond X with p < alpha."""
    if not max_forgetting:
        return ()
    _known_metrics(max_forgetting)
    strategies = list(dict.fromkeys(c for _, c in pairs))
    return tuple(forgetting_checks(cand.results, strategies, max_forgetting, alpha, where=f"candidate run {cand.dir}"))


def _check_options(max_drop: float, by_metric: Mapping[str, float], alpha: float, correction: str) -> None:
    for m, v in [("", max_drop), *by_metric.items()]:
        if v < 0:
            raise HarnessError(f"--max-drop {m + '=' if m else ''}{v:g}: a tolerated drop must be >= 0")
    if not 0 < alpha < 1:
        raise HarnessError(f"--alpha must lie in (0, 1), got {alpha}")
    if correction not in CORRECTIONS:
        raise HarnessError(f"--correction must be one of {', '.join(CORRECTIONS)}, got '{correction}'")


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
    return default, by_metric  # the metric names are checked against the runs (a judged one is theirs)


def parse_max_forgetting(values: Sequence[str]) -> dict[str, float]:
    """`--max-forgetting METRIC=X` values: the tolerated drop of METRIC on a control suite."""
    out: dict[str, float] = {}
    for raw in values:
        metric, _, number = raw.rpartition("=")
        try:
            value = float(number)
        except ValueError:
            value = math.nan
        if not metric.strip() or not (math.isfinite(value) and value >= 0):
            raise HarnessError(f"--max-forgetting '{raw}': expected METRIC=X with X a drop of 0 or more "
                               "(e.g. accuracy=0.05)")
        out[metric.strip()] = value
    _known_metrics(out)
    return out


def _judged_checks(base: RunRecord, cand: RunRecord, judged: Sequence[str], min_kappa: float | None) -> list[str]:
    """A judged metric is gated on only as far as its judge agrees with people: with --min-kappa, a
    judge below it (or with no human grades) in either run refuses the gate; without, a note."""
    notes = []
    for m in judged:
        for run in (base, cand):
            card = run.results.judges.get(m)
            a = card.agreement if card else None
            kappa = None if a is None else (a.weighted_kappa if a.weighted_kappa is not None else a.kappa)
            if min_kappa is not None and (kappa is None or kappa < min_kappa):
                why = ("no human grades validate its judge" if a is None else
                       f"its judge's kappa against {a.n} human grades is "
                       f"{'undefined' if kappa is None else f'{kappa:.2f}'}")
                raise HarnessError(f"{run.dir}: metric '{m}': {why}, below --min-kappa {min_kappa:g}: not gating on it")
            if min_kappa is None and a is None:
                notes.append(f"{m} is graded by a judge that no human grades validate ({run.dir.name})")
    return list(dict.fromkeys(notes))


def _known_metrics(names: Sequence[str] | Mapping[str, float], task: str = "",
                   judged: frozenset[str] = frozenset()) -> None:
    for m in names:
        if m in judged:
            continue
        problem = check_metric(m, task)
        if problem:
            raise HarnessError(problem)


def _metric_list(base: RunRecord, metrics: Sequence[str] | None, judged: frozenset[str] = frozenset()) -> list[str]:
    names = list(dict.fromkeys(metrics)) if metrics else list(base.suite.metrics)
    if not names:
        names = base.results.metric_names()
    _known_metrics(names, base.task, judged)
    for m in names:
        if m == "f1" and base.task == "classification" and not base.labels:
            raise HarnessError(f"{base.dir}/results.json: macro-F1 needs the suite's labels, and none are recorded")
    return names


def _shared(
    base: RunRecord, cand: RunRecord, b_name: str, c_name: str
) -> tuple[Pairing, list[PredictionRecord], list[PredictionRecord]]:
    b_by_id = {r.example_id: r for r in base.predictions_for(b_name)}
    c_by_id = {r.example_id: r for r in cand.predictions_for(c_name)}
    shared = [i for i in b_by_id if i in c_by_id]
    if not shared:
        raise HarnessError(
            f"{b_name} in {base.dir} and {c_name} in {cand.dir} have no scored example in common "
            f"({len(b_by_id)} and {len(c_by_id)} predictions)"
        )
    changed = sum(1 for i in shared if b_by_id[i].target != c_by_id[i].target)
    pairing = Pairing(b_name, c_name, len(shared), len(b_by_id) - len(shared), len(c_by_id) - len(shared), changed)
    return pairing, [b_by_id[i] for i in shared], [c_by_id[i] for i in shared]


def _binding(base: RunRecord, metric: str) -> Aggregator:
    """The metric bound to the baseline's task and labels: how both sides' rows are aggregated."""
    suite_dir = base.suite.path  # where an evaluate:./folder metric lives
    return get_metric(metric, Path(suite_dir) if suite_dir else None).bind(base.task, base.labels)


def _rows(run: RunRecord, records: list[PredictionRecord], metric: str, binding: Aggregator) -> np.ndarray:
    """The per-example rows `run` stored for `metric` (under the name its suite used, an alias
    included), in the order of `records`."""
    if not binding.metric.stored_rows:
        # No rows to store (an evaluate module): recomputed from the stored answers, each side
        # against its own stored targets (they differ only when --allow-suite-change let a
        # changed suite through).
        return binding.stats([r.scored_answer for r in records], [r.example() for r in records])
    stored = {m for r in records for m in r.scores}
    same = display_metric(metric)  # `exact_match` finds the rows a suite stored as `accuracy`
    name = metric if metric in stored else next(
        (m for m in sorted(stored) if same is not None and display_metric(m) is same), metric)
    rows = stored_rows(records, name)
    if rows is None:
        raise HarnessError(
            f"{run.dir / PREDICTIONS_FILE}: {records[0].strategy} has no stored statistics of metric '{metric}' "
            f"(it has: {', '.join(sorted(stored)) or 'none'}); the gate compares what each run scored: pick a metric "
            "of both runs' suites with --metric"
        )
    return rows
