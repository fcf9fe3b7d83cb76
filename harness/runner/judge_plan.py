"""Which judged metrics a run grades, with which model and how, checked before any model loads.

The judges are the suite's [[judges]] and run.toml's; `--judge-model NAME` gives them all one model
(a [[models]] name, else a model alias, hub id or folder). A judge whose model is the default name
`judge` with no such [[models]] table and no --judge-model is left out with one line saying how to
run it, so a suite can declare judges without making every run load a judge. People's grades
(--human, else the suite's human.jsonl) are read now: a bad line stops the run before any work.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

from harness.core.config import ModelSpec
from harness.core.errors import HarnessError
from harness.core.human import HUMAN_FILE, HumanGrades, read_human
from harness.core.judges import DEFAULT_JUDGE_MODEL, JudgeSpec
from harness.core.text import did_you_mean
from harness.core.types import AnswerMode, Suite
from harness.runner.options import RunOptions

JUDGE_KEY = "judge:"  # a judge's entry among the run's models (strategy names cannot hold ':')


@dataclass(frozen=True)
class PlannedJudge:
    spec: JudgeSpec
    model: ModelSpec
    answer: AnswerMode  # how the grade comes out: choice, constrained or free
    strategies: tuple[str, ...]  # whose outputs it grades
    pairs: tuple[tuple[str, str], ...] = ()  # pairwise: the pairs it compares
    self_preference: tuple[str, ...] = ()  # strategies that decode with the judge's own model

    @property
    def key(self) -> str:
        return JUDGE_KEY + self.spec.name


@dataclass(frozen=True)
class JudgePlan:
    judges: tuple[PlannedJudge, ...] = ()
    human: HumanGrades | None = None
    notes: tuple[str, ...] = ()  # judges left out, and why


def _where(opts: RunOptions, spec: JudgeSpec, suite: Suite, key: str = "") -> str:
    where = opts.sources.get(f"judge {spec.name} {key}".strip()) or opts.sources.get(f"judge {spec.name}")
    if where:
        return where
    return f"{suite.path / 'suite.toml'}" if suite.path else f"suite '{suite.name}'"


def _model(opts: RunOptions, spec: JudgeSpec) -> ModelSpec | None:
    name = opts.judge_model or spec.model
    if name in opts.models:
        return opts.models[name]
    if opts.judge_model is None and spec.model == DEFAULT_JUDGE_MODEL:
        return None  # not asked for: left out
    if opts.judge_model is None:
        return ModelSpec(name=spec.model, id=spec.model)  # a model id in the table itself
    return ModelSpec(name=name, id=name)


def _answer(spec: JudgeSpec, model: ModelSpec, where: str) -> AnswerMode:
    """auto: label likelihood where the backend scores given text, else constrained, else free."""
    from harness.engine.backends import backend_class
    from harness.engine.backends.base import CONSTRAIN, SCORE

    backend = backend_class(model.backend)
    can = {"choice": backend.can(SCORE, model), "constrained": backend.can(CONSTRAIN, model), "free": True}
    if spec.answer == "auto":
        return AnswerMode(next(m for m in ("choice", "constrained", "free") if can[m]))
    if not can[spec.answer]:
        raise HarnessError(f"{where}: judge '{spec.name}': answer={spec.answer} is not what the {model.backend} "
                           f"backend of model '{model.name}' can give; use answer=auto")
    return AnswerMode(spec.answer)


def plan_judges(opts: RunOptions, suite: Suite, strategies: list[Any], picked: dict[str, ModelSpec]) -> JudgePlan:
    from harness.engine.modelset import share_key

    names = [s.name for s in strategies]
    planned, notes = [], []
    specs = [*suite.judges, *opts.judges]
    taken = set(suite.metrics)
    for spec in specs:
        where = _where(opts, spec, suite)
        if spec.name in taken:
            raise HarnessError(f"{where}: judge '{spec.name}' is declared twice or takes a metric's name")
        taken.add(spec.name)
        model = _model(opts, spec)
        if model is None:
            notes.append(f"judged metric '{spec.name}' left out: its model '{DEFAULT_JUDGE_MODEL}' is not given "
                         "(--judge-model NAME, or a [[models]] table named 'judge' in --config)")
            continue
        unknown = [s for s in spec.strategies if s not in names]
        if unknown:
            raise HarnessError(f"{_where(opts, spec, suite, 'strategies')}: judge '{spec.name}': no strategy "
                               f"'{unknown[0]}' in this run{did_you_mean(unknown[0], names)}; strategies: "
                               f"{', '.join(names)}")
        graded = spec.strategies or tuple(names)
        pairs: tuple[tuple[str, str], ...] = ()
        if spec.mode == "pairwise":
            pairs = (tuple(spec.strategies),) if spec.strategies else tuple(combinations(names, 2))  # type: ignore[assignment]
            if not pairs:
                notes.append(f"judged metric '{spec.name}' left out: it compares two strategies' answers, and this "
                             f"run has one ({', '.join(names)})")
                continue
        answer = _answer(spec, model, _where(opts, spec, suite, "answer"))
        mine = share_key(model)
        self_pref = tuple(s for s in graded if share_key(picked[s]) == mine)
        planned.append(PlannedJudge(spec, model, answer, tuple(graded), pairs, self_pref))
    human = None
    if planned:
        path = opts.human or (suite.path / HUMAN_FILE if suite.path and (suite.path / HUMAN_FILE).is_file() else None)
        human = read_human(path) if path else None
    elif opts.human is not None:
        raise HarnessError(f"{opts.flag('human')}: people's grades validate a judge, and this run grades with none "
                           "(the suite's [[judges]] need --judge-model NAME)")
    return JudgePlan(tuple(planned), human, tuple(notes))


def with_judges(suite: Suite, plan: JudgePlan) -> Suite:
    """The suite as the run scores it: its metrics, then the judged ones it grades (pairwise judges
    compare pairs and are reported on their own: they are no per-strategy metric)."""
    from dataclasses import replace

    judged = tuple(j.spec.name for j in plan.judges if j.spec.mode != "pairwise")
    return replace(suite, metrics=(*suite.metrics, *judged), judges=tuple(j.spec for j in plan.judges))
