"""The run's one pre-flight: everything that can be refused, checked before any model loads.

`plan_run` is used by `run`, `curve` and the control suites alike: the suite (with file:line
errors), the trust its metrics need, the metrics loaded, the strategies built once (a strategy
file is executed once per run), each strategy's model, the options, the control suites, the
output folder, the device, every model reference and the embedder, and the leakage check.
A refused plan loads no model and leaves no folder behind.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.core.config import ModelSpec
from harness.core.errors import HarnessError, SuiteError
from harness.core.suites import load_suite
from harness.core.types import AnswerMode, Example, Suite
from harness.engine import modelset
from harness.engine.encoder import Encoder
from harness.engine.leakage import LeakageReport, check_run_leakage, run_encoder
from harness.engine.models import DEFAULT_EMBEDDER, check_model_ref, pick_device
from harness.runner.folders import check_out_dir
from harness.runner.judge_plan import JudgePlan, plan_judges, with_judges
from harness.runner.options import RunOptions, check_options, default_batch_size


@dataclass
class RunPlan:
    """What a run will do, all checked (see the module docstring)."""

    opts: RunOptions
    suite: Suite
    examples: list[Example]  # the scored test examples (--limit applied)
    strategies: list[Any]
    picked: dict[str, ModelSpec]  # strategy name -> its model
    device: str
    out: Path
    controls: list[Suite] = field(default_factory=list)
    encoder: Encoder | None = None  # the run's one embedder, loaded only if a vector is not cached
    leakage: LeakageReport | None = None
    answers: dict[str, AnswerMode] = field(default_factory=dict)  # strategy name -> how its answers come out
    judging: JudgePlan = field(default_factory=JudgePlan)  # the judged metrics it grades (harness.runner.judging)

    @property
    def batch_size(self) -> int:
        return self.opts.batch_size or default_batch_size(self.device)

    def build_models(self) -> modelset.ModelSet:
        return modelset.build_models(self.picked, device=self.device, trust_remote_code=self.opts.trust_remote_code,
                                     batch_size=self.batch_size, seed=self.opts.seed)


def load_checked_suite(ref: str, opts: RunOptions, blame: str | None = None) -> Suite:
    """A suite with its metrics loaded and their trust checked; errors name suite.toml or, for a
    suite that is not there, `blame` (the option or run.toml line that named it)."""
    from harness.scoring.registry import check_metric, load_suite_metrics, require_trust

    try:
        suite = load_suite(ref, known_metrics=check_metric)  # SuiteError with file:line before any model work
    except SuiteError:
        raise
    except HarnessError as e:
        raise HarnessError(f"{blame}: {e}" if blame else str(e)) from None
    where = f"{suite.path / 'suite.toml'}" if suite.path else suite.name
    for name in suite.metrics:
        try:
            require_trust(name, opts.trust_remote_code)
        except HarnessError as e:
            raise HarnessError(f"{where}: {e}") from None
    load_suite_metrics(suite)  # evaluate: modules and plugins load now, not after the predictions
    return suite


def _names_option(message: str, key: str) -> bool:
    """Whether a strategy error is about `key` ("no option 'kk'", "option k='two'", "k must ...")."""
    if key == "kind":
        return message.startswith("unknown strategy")
    return re.search(rf"(?<![\w]){re.escape(key)}(?:'|=| must)", message) is not None


def build_strategies(opts: RunOptions) -> list[Any]:
    """The run's strategies, each built once: from [[strategies]] tables (an error names the line
    of the key it is about) or from the spec string (an error names where the spec came from)."""
    import strategies as registry

    if not opts.strategy_params:
        try:
            return registry.from_spec(opts.strategies)
        except HarnessError as e:
            where = opts.sources.get("strategies")
            raise HarnessError(f"{where}: {e}" if where else str(e)) from None
    built, seen = [], set()
    for i, (kind, name, params) in enumerate(opts.strategy_params):
        try:
            s = registry.build(kind, dict(params), name)
        except HarnessError as e:
            key = next((k for k in ("kind", *params) if _names_option(str(e), k)), None)
            where = opts.sources.get(f"strategies[{i}].{key}") if key else None
            where = where or opts.sources.get(f"strategies[{i}]")
            raise HarnessError(f"{where}: {e}" if where else str(e)) from None
        if s.name in seen:
            where = opts.sources.get(f"strategies[{i}]")
            raise HarnessError(f"{where + ': ' if where else ''}strategy '{s.name}' is given twice: give one a name")
        seen.add(s.name)
        built.append(s)
    return built


def check_strategies(opts: RunOptions, strategies: list[Any], suite: Suite) -> None:
    for s in strategies:
        try:
            s.check(suite)
        except HarnessError as e:  # a strategy from --config: blame its table (or its spec line)
            where = opts.sources.get(f"strategy {s.name}") or opts.sources.get("strategies")
            raise HarnessError(f"{where}: {e}" if where else str(e)) from None


def answer_modes(opts: RunOptions, strategies: list[Any], suite: Suite,
                 picked: dict[str, ModelSpec]) -> dict[str, AnswerMode]:
    """Each strategy's answer mode, refused before any model loads where the suite or the model
    cannot give it: choice needs a label set and continuation scores, constrained a label set or
    an extraction suite and a backend that constrains decoding."""
    out = {}
    for s in strategies:
        mode = s.answer_mode(opts.answer)
        where = opts.sources.get(f"strategy {s.name}") or opts.sources.get("answer") or ""
        why = _answer_problem(mode, suite, picked[s.name])
        if why:
            raise HarnessError(f"{where + ': ' if where else ''}strategy '{s.name}': {why}")
        out[s.name] = mode
    return out


def _answer_problem(mode: AnswerMode, suite: Suite, spec: ModelSpec) -> str | None:
    from harness.engine.backends import backend_class
    from harness.engine.backends.base import CONSTRAIN, SCORE

    backend = backend_class(spec.backend)
    if mode.mode == "choice":
        if suite.task != "classification" or not suite.labels:
            return (f"answer=choice scores each label, and suite '{suite.name}' is a {suite.task} suite without a "
                    "label set" + ("; use answer=constrained for its JSON fields" if suite.task == "extraction" else ""))
        if not backend.can(SCORE, spec):
            return (f"answer=choice needs the log-probabilities of given answers, which the {spec.backend} backend of "
                    f"model '{spec.name}' does not give; use answer=constrained (or free)")
    if mode.mode == "constrained":
        if suite.task not in ("classification", "extraction") or (suite.task == "classification" and not suite.labels):
            return (f"answer=constrained limits decoding to a label set or the suite's JSON fields, and suite "
                    f"'{suite.name}' is a {suite.task} suite; use answer=free")
        if not backend.can(CONSTRAIN, spec):
            return f"the {spec.backend} backend of model '{spec.name}' cannot constrain decoding; use answer=free"
    return None


def load_controls(opts: RunOptions, suite: Suite) -> list[Suite]:
    """The --control suites, each checked like the run's own suite, before any model work."""
    controls: list[Suite] = []
    flag = opts.flag("control")
    for name in opts.control:
        control = load_checked_suite(name, opts, f"{flag} {name}")
        if control.sha256 == suite.sha256:
            raise HarnessError(f"{flag} {name}: this is the suite under test; a control suite must be another "
                               "one (what the adapter was not trained for)")
        if not control.test:
            raise HarnessError(f"{flag} {name}: the suite has no test examples to score")
        if any(c.sha256 == control.sha256 for c in controls):
            raise HarnessError(f"{flag} {name}: given twice")
        controls.append(control)
    return controls


def plan_run(opts: RunOptions, console: Console | None = None, *, leakage: bool = True, judges: bool = True,
             also: Callable[[Suite, list[Any]], None] | None = None) -> RunPlan:
    """Every refusal of a run before any model work (see the module docstring). `leakage` False
    leaves the leakage check out, `judges` False the judged metrics, and `also` adds a command's
    own checks of the suite and the strategies (a learning curve's sizes), made before any folder
    is created."""
    strategies = build_strategies(opts)  # first: a bad option is named at its line whatever the suite
    suite = load_checked_suite(opts.suite, opts, opts.sources.get("suite"))
    picked = modelset.strategy_models(opts.model, opts.models, opts.sources, strategies)
    check_strategies(opts, strategies, suite)
    answers = answer_modes(opts, strategies, suite, picked)
    judging = plan_judges(opts, suite, strategies, picked) if judges else JudgePlan()
    picked.update({j.key: j.model for j in judging.judges})  # built, checked and freed like the strategies' models
    suite = with_judges(suite, judging)
    if also is not None:
        also(suite, strategies)
    examples = list(suite.test[: opts.limit] if opts.limit else suite.test)
    check_options(opts, suite, examples)
    controls = load_controls(opts, suite)
    device = pick_device(opts.device, opts.flag("device"))
    for s in strategies:
        s.check_device(device)  # e.g. QLoRA needs CUDA: refused before any model loads
    modelset.check_models(picked, opts.flag("model"), opts.sources, device)
    needs_embedder = opts.embedder != DEFAULT_EMBEDDER or any(s.needs_embedder() for s in strategies)
    if needs_embedder:
        check_model_ref(opts.embedder, opts.flag("embedder"))  # else only the leakage check may use it
    out = check_out_dir(Path(opts.out), opts.flag("out"))  # the first thing made on disk
    # One embedder for the leakage check and every strategy: its weights load once, if at all.
    encoder = run_encoder(opts.embedder, trust_remote_code=opts.trust_remote_code, optional=not needs_embedder)
    plan = RunPlan(opts, suite, examples, strategies, picked, device, out, controls, encoder, answers=answers,
                   judging=judging)
    if console is not None:
        for note in judging.notes:
            console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if leakage and opts.leakage_check:  # before any model: --fail-on-leakage refuses with no folder
        plan.leakage = check_run_leakage(suite, examples, encoder=encoder, threshold=opts.leakage_threshold,
                                         fail=opts.fail_on_leakage)
        if console is not None:
            console.print(f"leakage: {escape(plan.leakage.summary())}", highlight=False)
    return plan
