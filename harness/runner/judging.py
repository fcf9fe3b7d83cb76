"""The judge pass: after the scoring pass, each judged metric's model grades the outputs.

A grade is decoded like any strategy's answer (harness.runner.decode): the judge's prompt
(harness.engine.judge_prompts) is the chat, its grades are the labels, and the answer mode is
label likelihood, constrained decoding or free text (then read by harness.scoring.judge_grades),
always greedy. Grades go through the prediction cache, keyed by the judge's model, template hash,
grades and decoding, so a rerun asks the judge nothing, and the same output of two strategies is
graded once. Reference and rubric grades become each record's row of the judged metric; pairwise
grades are asked in both orders and kept for the judge's own report. Every grade, with the
judge's reply, goes to judgements.jsonl in the run folder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.core.cache import cache_root, write_text_atomic
from harness.core.human import HumanGrades
from harness.core.judges import JUDGEMENTS_FILE, Judgement
from harness.core.predcache import PredictionCache
from harness.core.results import JudgeResult, Recommendation, StrategyResult
from harness.core.runrecord import Output, PredictionRecord
from harness.core.types import Chat, Example, GenerationConfig, Prompt, Suite
from harness.engine.backends.base import Backend
from harness.engine.judge_prompts import JudgeTemplate, template_for
from harness.runner.decode import decode_strategy
from harness.runner.judge_plan import PlannedJudge
from harness.scoring.judge_grades import grade_value, parse_grade
from harness.scoring.judge_summary import JudgeInputs, judge_costs, judge_result


@dataclass(frozen=True)
class JudgeRun:
    """What one judge did in this run: its grades and how many it asked the model for."""

    planned: PlannedJudge
    template: JudgeTemplate
    judgements: list[Judgement]
    calls: int


@dataclass
class _Prompts:
    """The judge's chats as a strategy's prompts, so decoding, caching and progress are the same."""

    name: str
    chats: list[Chat]
    kind: str = "judge"

    @property
    def params(self) -> dict[str, Any]:
        return {}

    def prompts(self, examples: Sequence[Example]) -> list[Prompt]:
        return [Prompt(self.chats[int(e.id)]) for e in examples]


@dataclass(frozen=True)
class _Ask:
    strategy: str
    record: PredictionRecord
    chat: Chat
    opponent: str | None = None
    shown_first: bool | None = None
    other: PredictionRecord | None = None  # pairwise: the opponent's record

    @property
    def invalid(self) -> bool:
        """An invalid answer on either side: not sent to the judge."""
        return self.record.error is not None or (self.other is not None and self.other.error is not None)


def _grade_suite(suite: Suite, judge: PlannedJudge) -> Suite:
    """What decoding a grade sees: a classification over the mode's grades, greedy, short."""
    return replace(suite, task="classification", labels=judge.spec.grades.labels, fields=(), metrics=("accuracy",),
                   judges=(), generation=GenerationConfig(max_new_tokens=judge.spec.max_new_tokens))


def _asks(judge: PlannedJudge, template: JudgeTemplate, suite: Suite,
          records: dict[str, list[PredictionRecord]]) -> list[_Ask]:
    if judge.spec.mode != "pairwise":
        return [_Ask(name, r, template.chat(suite.instruction, r.example(), r.output))
                for name in records for r in records[name]]
    asks = []
    for a, b in judge.pairs:
        by_id = {r.example_id: r for r in records[b]}
        for ra in records[a]:
            rb = by_id.get(ra.example_id)
            if rb is None:
                continue
            example = ra.example()
            asks.append(_Ask(a, ra, template.chat(suite.instruction, example, ra.output, rb.output), b, True, rb))
            asks.append(_Ask(a, ra, template.chat(suite.instruction, example, rb.output, ra.output), b, False, rb))
    return asks


def _judgement(judge: PlannedJudge, ask: _Ask, out: Output | None) -> Judgement:
    mode, name = judge.spec.mode, judge.spec.name
    base = Judgement(name, ask.strategy, ask.record.example_id, "", None, 0.0, opponent=ask.opponent,
                     shown_first=ask.shown_first)
    if out is None:  # an invalid answer: nothing to grade, the lowest grade (pairwise: the valid one wins)
        if mode == "pairwise":
            mine, other = ask.record.error is not None, ask.other is not None and ask.other.error is not None
            value = 0.5 if mine and other else (0.0 if mine else 1.0)
        else:
            value = grade_value(None, mode)
        return replace(base, value=value, invalid=True)
    grade = None if out.error else parse_grade(out.output, mode)
    if mode == "pairwise":
        value = _pair_value(grade, bool(ask.shown_first))
    else:
        value = grade_value(grade, mode)
    return replace(base, reply=out.output, grade=grade, value=value, error=out.error, prompt_tokens=out.prompt_tokens,
                   output_tokens=out.output_tokens, latency_s=out.latency_s)


def _pair_value(grade: str | None, shown_first: bool) -> float:
    """Pairwise, for the strategy being scored: a win 1, a tie (or no verdict) 0.5, a loss 0."""
    if grade is None or grade == "tie":
        return 0.5
    return 1.0 if (grade == "A") == shown_first else 0.0


def run_judge(judge: PlannedJudge, backend: Backend, suite: Suite, records: dict[str, list[PredictionRecord]],
              console: Console) -> JudgeRun:
    """Grade `records` (strategy -> its records) with one judge, through the prediction cache."""
    template = template_for(judge.spec)
    asks = _asks(judge, template, suite, records)
    sent = [i for i, ask in enumerate(asks) if not ask.invalid]
    grading = _grade_suite(suite, judge)
    identity = {"judge": {"mode": judge.spec.mode, "template": template.sha256, "labels": list(grading.labels)},
                "model": backend.identity(), "decoding": grading.generation.fingerprint(),
                "answer": judge.answer.fingerprint() or {"mode": "free"}}
    cache = PredictionCache(cache_root(), identity)
    before = len(cache.entries)
    prompts = _Prompts(f"judge {judge.spec.name}", [asks[i].chat for i in sent])
    examples = [Example(str(n), "", "") for n in range(len(sent))]
    outputs = decode_strategy(prompts, grading, examples, backend, cache, None, console, None, judge.answer) if sent else []
    by_ask: dict[int, Output] = {sent[int(o.example_id)]: o for o in outputs}
    judgements = [_judgement(judge, ask, by_ask.get(i)) for i, ask in enumerate(asks)]
    return JudgeRun(judge, template, judgements, len(cache.entries) - before)


def with_judged_rows(records: Sequence[PredictionRecord], runs: Sequence[JudgeRun]) -> list[PredictionRecord]:
    """The records with each reference/rubric judge's grade as their row of its metric."""
    values: dict[tuple[str, str, str], float] = {}
    for run in runs:
        if run.planned.spec.mode == "pairwise":
            continue
        for j in run.judgements:
            values[(run.planned.spec.name, j.strategy, j.example_id)] = j.value
    names = [run.planned.spec.name for run in runs if run.planned.spec.mode != "pairwise"]
    out = []
    for r in records:
        rows = {n: (values[(n, r.strategy, r.example_id)],) for n in names if (n, r.strategy, r.example_id) in values}
        out.append(replace(r, scores={**r.scores, **rows}) if rows else r)
    return out


def write_judgements(run_dir: Path, runs: Sequence[JudgeRun]) -> None:
    lines = [json.dumps(j.to_json(), ensure_ascii=False) + "\n" for run in runs for j in run.judgements]
    write_text_atomic(run_dir / JUDGEMENTS_FILE, "".join(lines))


def judge_results(runs: Sequence[JudgeRun], first: Mapping[str, Sequence[PredictionRecord]],
                  human: HumanGrades | None, model_records: Mapping[str, dict[str, Any]]) -> dict[str, JudgeResult]:
    """results.json's `judges`: each judge's report card on the strategies' first-seed records."""
    out = {}
    for run in runs:
        j = run.planned
        names = set(j.strategies) | {a for pair in j.pairs for a in pair}
        inputs = JudgeInputs(j.spec, j.answer.label(), model_records[j.key], run.template.version,
                             run.template.sha256, run.template.text, run.calls, run.judgements, j.self_preference)
        out[j.spec.name] = judge_result(inputs, {n: rs for n, rs in first.items() if n in names}, human)
    return out


def with_judge_costs(strategies: Mapping[str, StrategyResult], runs: Sequence[JudgeRun],
                     prices: Mapping[str, tuple[float, float] | None], usd_per_hour: float | None
                     ) -> dict[str, StrategyResult]:
    """Each strategy's cost with what grading its outputs took (every judge, every training seed):
    tokens, seconds, and dollars at the judge's token prices (API) or the device-hour rate."""
    totals: dict[str, list[float]] = {}
    for run in runs:
        price = prices.get(run.planned.key)
        for name, (prompt, output, seconds) in judge_costs(run.judgements).items():
            t = totals.setdefault(name.split("@seed")[0], [0.0, 0.0, 0.0])
            usd = ((prompt * price[0] + output * price[1]) / 1e6 if price is not None else
                   usd_per_hour * seconds / 3600.0 if usd_per_hour is not None else math.nan)
            t[0], t[1], t[2] = t[0] + prompt + output, t[1] + seconds, t[2] + usd
    out = dict(strategies)
    for name, (tokens, seconds, usd) in totals.items():
        if name in out:
            cost = replace(out[name].cost, judge_tokens=int(tokens), judge_s=seconds,
                           judge_usd=None if math.isnan(usd) else usd)
            out[name] = replace(out[name], cost=cost)
    return out


def judged_recommendation(rec: Recommendation, judges: Mapping[str, JudgeResult]) -> Recommendation:
    """A recommendation decided on a judged metric says whether the judge was validated by people."""
    judge = judges.get(rec.metric)
    if judge is None:
        return rec
    if judge.agreement is None:
        note = (f"'{rec.metric}' is graded by a judge model that no human grades validate: treat the verdict as "
                "the judge's opinion (README, 'Judged metrics')")
    else:
        a = judge.agreement
        kappa = a.weighted_kappa if a.weighted_kappa is not None else a.kappa
        shown = "undefined" if kappa is None else f"{kappa:.2f}"
        note = (f"'{rec.metric}' is graded by a judge model whose weighted kappa against {a.n} human grades is "
                f"{shown}; the corrected (PPI) intervals are in the Judges section")
    return replace(rec, judge_note=note)
