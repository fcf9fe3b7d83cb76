"""A judge's report card: its grades per strategy and pair, against people where they graded too.

With human grades matched to outputs, each strategy's judged mean gets a prediction-powered
estimate and interval (harness.scoring.ppi: the judge's mean corrected by the human-minus-judge
gap on the graded outputs, the interval from both parts), each pair a prediction-powered paired
difference, and the judge an agreement record (rate, Cohen's kappa, quadratic-weighted kappa, the
confusion matrix, which way it errs). Without them the judge's plain normal interval stands alone
and the result says the judge is not validated. Pairwise judges report a win rate per pair, the
flip rate (verdicts that change when the answers swap places: position bias) and how often the
longer answer wins; the others the within-example correlation of grade with output length.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from harness.core.human import HumanGrade, HumanGrades
from harness.core.judges import GRADES, Judgement, JudgeSpec
from harness.core.results import JudgeAgreement, JudgedPair, JudgedStrategy, JudgeResult
from harness.core.runrecord import PredictionRecord
from harness.scoring.agreement import judge_agreement
from harness.scoring.ppi import mean_interval, ppi_mean, ppi_paired_diff, two_sided_p

PAIR_LABELS = ("loss", "tie", "win")  # a pairwise verdict for the first strategy of the pair, worst first


@dataclass(frozen=True)
class JudgeInputs:
    """What the runner hands over: the judge, how it was asked, and its grades."""

    spec: JudgeSpec
    answer: str
    model: dict[str, Any]
    template_version: str
    template_sha256: str
    template: str
    calls: int
    judgements: Sequence[Judgement]
    self_preference: Sequence[str] = ()


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _interval(ci: tuple[float, float], low: float = 0.0, high: float = 1.0) -> tuple[float | None, float | None]:
    """An interval of a mean grade, cut to where grades can lie ([0, 1]; a difference: [-1, 1])."""
    lo, hi = _finite(ci[0]), _finite(ci[1])
    return (None if lo is None else min(max(lo, low), high), None if hi is None else min(max(hi, low), high))


def _label_of(value: float, mode: str) -> str:
    """The grade a value scores (an unparsable grade scored the lowest, so it is that one)."""
    grades = GRADES[mode]
    return grades.labels[int(np.argmin([abs(v - value) for v in grades.values]))]


# -- matching people's grades to outputs ---------------------------------------------------------
def _human_values(spec: JudgeSpec, human: HumanGrades | None,
                  records: Mapping[str, Sequence[PredictionRecord]]) -> tuple[dict[tuple[str, str], str], list[str]]:
    """(strategy, example id) -> people's grade, for this judge; and notes on rows that matched nothing."""
    if human is None:
        return {}, []
    mine = [g for g in human.grades if g.mode == spec.mode and g.judge in (None, spec.name)]
    out: dict[tuple[str, str], str] = {}
    unmatched = 0
    for g in mine:
        keys = _keys_of(g, records)
        if not keys:
            unmatched += 1
        for k in keys:
            out[k] = g.grade
    notes = [f"{unmatched} of {len(mine)} human grades match no output of this run"] if unmatched else []
    return out, notes


def _keys_of(g: HumanGrade, records: Mapping[str, Sequence[PredictionRecord]]) -> list[tuple[str, str]]:
    if g.pair is not None:
        return []  # pairwise grades are matched per pair (_pair_human)
    if g.strategy is not None:
        found = any(r.example_id == g.example_id for r in records.get(g.strategy, ()))
        return [(g.strategy, g.example_id)] if found else []
    text = (g.output or "").strip()
    return [(name, r.example_id) for name, rs in records.items() for r in rs
            if r.example_id == g.example_id and r.output.strip() == text]


def _agreement(judge: list[str], people: list[str], labels: Sequence[str]) -> JudgeAgreement | None:
    if not judge:
        return None
    a = judge_agreement(judge, people, list(labels), ordinal=True)
    return JudgeAgreement(a.n, list(labels), a.rate, _finite(a.kappa),
                          None if a.weighted_kappa is None else _finite(a.weighted_kappa),
                          [list(row) for row in a.confusion], a.mean_diff, a.too_high, a.too_low)


# -- reference and rubric ------------------------------------------------------------------------
def _by_strategy(judgements: Sequence[Judgement], records: Mapping[str, Sequence[PredictionRecord]]
                 ) -> dict[str, dict[str, Judgement]]:
    out: dict[str, dict[str, Judgement]] = defaultdict(dict)
    for j in judgements:
        if j.strategy in records:
            out[j.strategy][j.example_id] = j
    return out


def _strategy(name: str, rs: Sequence[PredictionRecord], graded: dict[str, Judgement],
              human: dict[tuple[str, str], str], mode: str, alpha: float) -> JudgedStrategy:
    f = np.array([graded[r.example_id].value for r in rs if r.example_id in graded], dtype=np.float64)
    ids = [r.example_id for r in rs if r.example_id in graded]
    js = [graded[i] for i in ids]
    unparsable = sum(1 for j in js if j.grade is None and not j.invalid and j.error is None)
    errors = sum(1 for j in js if j.error is not None)
    if not len(f):
        return JudgedStrategy(0, None, (None, None))
    mean, ci, _ = mean_interval(f, alpha)
    labelled = [k for k, i in enumerate(ids) if (name, i) in human]
    y = np.array([GRADES[mode].value(human[(name, ids[k])]) for k in labelled], dtype=np.float64)
    extra: dict[str, Any] = {"n_human": len(labelled)}
    if labelled:
        extra["human_mean"] = float(y.mean())
    if len(labelled) >= 2:
        est = ppi_mean(f, f[labelled], y, alpha=alpha)
        extra.update(ppi=est.estimate, ppi_ci=_interval(est.ci), ppi_lambda=est.lam)
    return JudgedStrategy(len(f), mean, _interval(ci), unparsable, errors,
                          judge_tokens=sum(j.prompt_tokens + j.output_tokens for j in js),
                          judge_s=sum(j.latency_s for j in js), **extra)


def _paired(a: str, b: str, graded: dict[str, dict[str, Judgement]], human: dict[tuple[str, str], str],
            mode: str, alpha: float) -> JudgedPair | None:
    ids = [i for i in graded.get(a, {}) if i in graded.get(b, {})]
    if len(ids) < 2:
        return None
    fa = np.array([graded[a][i].value for i in ids])
    fb = np.array([graded[b][i].value for i in ids])
    diff, ci, se = mean_interval(fa - fb, alpha)
    p = two_sided_p(diff / se) if se > 0 else float(diff == 0.0)
    extra: dict[str, Any] = {}
    la = [k for k, i in enumerate(ids) if (a, i) in human]
    lb = [k for k, i in enumerate(ids) if (b, i) in human]
    if len(la) >= 2 and len(lb) >= 2:
        value = GRADES[mode].value
        d = ppi_paired_diff(fa, fb, np.array(la), np.array([value(human[(a, ids[k])]) for k in la]),
                            np.array(lb), np.array([value(human[(b, ids[k])]) for k in lb]), alpha=alpha)
        extra.update(ppi_diff=d.estimate, ppi_ci=_interval(d.ci, -1.0), ppi_p=d.p_value)
    return JudgedPair(a, b, len(ids), diff, _interval(ci, -1.0), p, **extra)


def _length_bias(graded: dict[str, dict[str, Judgement]], records: Mapping[str, Sequence[PredictionRecord]]) -> float | None:
    """Pearson's r of grade and output length (words), both centred within each example: does a
    longer answer to the same question get a better grade?"""
    lengths = {(name, r.example_id): len(r.output.split()) for name, rs in records.items() for r in rs}
    per_example: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for name, js in graded.items():
        for i, j in js.items():
            per_example[i].append((float(lengths.get((name, i), 0)), j.value))
    dx, dy = [], []
    for pairs in per_example.values():
        if len(pairs) < 2:
            continue
        x, y = np.array(pairs).T
        dx.extend(x - x.mean())
        dy.extend(y - y.mean())
    if not dx:
        return None
    x, y = np.array(dx), np.array(dy)
    denom = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / denom if denom > 0 else None


# -- pairwise ------------------------------------------------------------------------------------
def _pair_human(g: HumanGrade, a: str, b: str) -> float | None:
    """People's pairwise grade as a's score (1 win, 0.5 tie, 0 loss), or None when it is about another pair."""
    if g.pair == (a, b):
        return {"A": 1.0, "tie": 0.5, "B": 0.0}[g.grade]
    if g.pair == (b, a):
        return {"A": 0.0, "tie": 0.5, "B": 1.0}[g.grade]
    return None


def _pairwise(spec: JudgeSpec, a: str, b: str, js: Sequence[Judgement], records: Mapping[str, Sequence[PredictionRecord]],
              human: HumanGrades | None, alpha: float) -> tuple[JudgedPair | None, list[str], list[str]]:
    """One pair: its verdicts, and the judge's and people's labels of the outputs both graded."""
    orders: dict[str, dict[bool, Judgement]] = defaultdict(dict)
    for j in js:
        if j.strategy == a and j.opponent == b and j.shown_first is not None:
            orders[j.example_id][j.shown_first] = j
    ids = [i for i, o in orders.items() if len(o) == 2]
    if not ids:
        return None, [], []
    first, second = (np.array([orders[i][k].value for i in ids]) for k in (True, False))
    decided = np.where(first == second, first, 0.5)  # a verdict that flips with the order is a tie
    graded = [i for i in ids if not orders[i][True].invalid]
    flips = sum(1 for k, i in enumerate(ids) if i in graded and first[k] != second[k])
    mean, ci, se = mean_interval(decided, alpha)
    p = two_sided_p((mean - 0.5) / se) if se > 0 else float(mean == 0.5)
    la, lb = ({r.example_id: len(r.output.split()) for r in records[n]} for n in (a, b))
    decisive = [(k, i) for k, i in enumerate(ids) if decided[k] != 0.5 and la[i] != lb[i]]
    longer = sum(1 for k, i in decisive if (decided[k] == 1.0) == (la[i] > lb[i]))
    extra: dict[str, Any] = {}
    people = {g.example_id: v for g in (human.grades if human else ()) if g.mode == "pairwise"
              and g.judge in (None, spec.name) and (v := _pair_human(g, a, b)) is not None}
    labelled = [k for k, i in enumerate(ids) if i in people]
    if len(labelled) >= 2:
        y = np.array([people[ids[k]] for k in labelled])
        est = ppi_mean(decided, decided[labelled], y, alpha=alpha)
        extra.update(ppi_diff=est.estimate - 0.5, ppi_ci=_interval((est.ci[0] - 0.5, est.ci[1] - 0.5), -0.5, 0.5))
    pair = JudgedPair(a, b, len(ids), mean - 0.5, _interval((ci[0] - 0.5, ci[1] - 0.5), -0.5, 0.5), p, win_rate=mean,
                      win_ci=_interval(ci), wins=int(np.sum(decided == 1.0)), losses=int(np.sum(decided == 0.0)),
                      ties=int(np.sum(decided == 0.5)), flip_rate=flips / len(graded) if graded else None,
                      longer_wins=longer / len(decisive) if decisive else None, **extra)
    judge_labels = [PAIR_LABELS[int(decided[k] * 2)] for k in labelled]
    human_labels = [PAIR_LABELS[int(people[ids[k]] * 2)] for k in labelled]
    return pair, judge_labels, human_labels


# -- the report card -----------------------------------------------------------------------------
def judge_result(inputs: JudgeInputs, records: Mapping[str, Sequence[PredictionRecord]],
                 human: HumanGrades | None, alpha: float = 0.05) -> JudgeResult:
    """`records`: the graded strategies' records (first training seed), by strategy."""
    spec, js = inputs.spec, inputs.judgements
    notes: list[str] = []
    strategies: dict[str, JudgedStrategy] = {}
    pairs: list[JudgedPair] = []
    agreement, length_bias = None, None
    if spec.mode == "pairwise":
        judge_labels, human_labels = [], []
        for a, b in dict.fromkeys((j.strategy, j.opponent) for j in js if j.opponent):
            pair, jl, hl = _pairwise(spec, a, b, js, records, human, alpha)
            if pair is not None:
                pairs.append(pair)
                judge_labels += jl
                human_labels += hl
        agreement = _agreement(judge_labels, human_labels, PAIR_LABELS)
    else:
        people, notes = _human_values(spec, human, records)
        graded = _by_strategy(js, records)
        for name, rs in records.items():
            strategies[name] = _strategy(name, rs, graded.get(name, {}), people, spec.mode, alpha)
        for a, b in combinations(records, 2):
            if (pair := _paired(a, b, graded, people, spec.mode, alpha)) is not None:
                pairs.append(pair)
        keys = [k for k in people if k[1] in graded.get(k[0], {})]
        agreement = _agreement([_label_of(graded[s][i].value, spec.mode) for s, i in keys],
                               [people[k] for k in keys], GRADES[spec.mode].labels)
        length_bias = _length_bias(graded, records)
    if agreement is None:
        notes.append("no human grades of this run's outputs: the judge is not validated (README, 'Judged metrics')")
    if inputs.self_preference:
        notes.append(f"the judge's model is the model of {', '.join(inputs.self_preference)}: it may prefer its "
                     "own answers (self-preference)")
    mine = [j for j in js if j.strategy in records]
    return JudgeResult(
        name=spec.name, mode=spec.mode, model=inputs.model, answer=inputs.answer,
        template_version=inputs.template_version, template_sha256=inputs.template_sha256, template=inputs.template,
        rubric=spec.rubric, calls=inputs.calls, graded=len(mine),
        unparsable=sum(1 for j in mine if j.grade is None and not j.invalid and j.error is None),
        errors=sum(1 for j in mine if j.error is not None), strategies=strategies, pairs=pairs,
        human_file=str(human.path) if human else None, agreement=agreement, length_bias=length_bias,
        self_preference=list(inputs.self_preference), notes=notes)


def judge_costs(judgements: Sequence[Judgement]) -> dict[str, tuple[float, float, float]]:
    """Per strategy, the judge's prompt tokens, output tokens and seconds its outputs took to
    grade (a pairwise grade is shared by its two strategies)."""
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for j in judgements:
        sides = [j.strategy, j.opponent] if j.opponent else [j.strategy]
        for s in sides:
            out[s][0] += j.prompt_tokens / len(sides)
            out[s][1] += j.output_tokens / len(sides)
            out[s][2] += j.latency_s / len(sides)
    return {s: (p, o, sec) for s, (p, o, sec) in out.items()}
