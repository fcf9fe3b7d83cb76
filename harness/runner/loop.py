"""The one loop: plan -> strategies prepare -> their models decode -> outputs -> the scoring pass ->
statistics -> results.json.

Results go to disk first (outputs flushed batch by batch, then the scored records); the CLI
renders the reports from the files alone (harness.report.publish), so nothing computed is lost if
a later step fails.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness import __version__
from harness.core import jsonl
from harness.core.cache import cache_root, write_text_atomic
from harness.core.predcache import PredictionCache
from harness.core.results import (
    SCHEMA,
    Decoding,
    Forgetting,
    Leakage,
    ModelRecord,
    RunResults,
    Work,
    from_json,
)
from harness.core.runrecord import (
    OUTPUTS_FILE,
    PREDICTIONS_FILE,
    Output,
    PredictionRecord,
    PredictionWriter,
    write_results,
)
from harness.core.types import AnswerMode, Example, Suite
from harness.engine.backends.base import Backend
from harness.engine.context import StrategyContext
from harness.engine.models import device_info
from harness.engine.modelset import ModelSet
from harness.runner.control import Adapted, run_controls
from harness.runner.decode import (
    decode_strategy,
    prediction_identity,
    prepare_strategy,
    seed_run,
    seed_variant,
    training_seeds,
)
from harness.runner.estimate import say_estimate
from harness.runner.folders import new_run_dir, remove_if_empty, run_id_base
from harness.runner.judging import (
    JudgeRun,
    judge_results,
    judged_recommendation,
    run_judge,
    with_judge_costs,
    with_judged_rows,
    write_judgements,
)
from harness.runner.plan import RunPlan, plan_run
from harness.runner.scoring_pass import score_pass

VERSIONED = ("torch", "transformers", "peft", "sentence-transformers", "faiss-cpu", "sacrebleu", "numpy")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"sft-harness": __version__, "python": platform.python_version()}
    for pkg in VERSIONED:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def run(opts: Any, console: Console | None = None) -> Path:
    """Run a comparison and write the run folder. Returns the folder.

    Everything that can be refused is checked first (harness.runner.plan), so a refused run loads
    no model and leaves no folder behind.
    """
    console = console or Console(stderr=True)
    plan = plan_run(opts, console)
    models = plan.build_models()
    try:
        run_id, run_dir = new_run_dir(plan.out, run_id_base(plan.suite.name, opts.run_label))
        console.print(f"[bold]run[/] {run_id}: suite [cyan]{escape(plan.suite.name)}[/] ({plan.suite.task}, "
                      f"{len(plan.examples)} test examples), strategies "
                      f"{escape(', '.join(s.name for s in plan.strategies))} -> {escape(str(run_dir))}")
        say_estimate(plan, models, console)
        try:
            execute(plan, models, run_id, run_dir, console)
        except BaseException:
            remove_if_empty(run_dir)
            raise
    finally:
        models.close()
    return run_dir


@dataclass
class Turn:
    """One strategy's turn: its outputs, its results.json section, its context, and the work done
    (seconds preparing and decoding; generations decoded now rather than taken from the cache)."""

    outputs: list[Output]
    section: dict[str, Any]
    ctx: StrategyContext
    prepare_s: float
    decode_s: float
    decoded: int
    adapter: Path | None = None  # what it decoded with: the forgetting check (--control) scores it again
    seed: int = 0
    answer: AnswerMode = field(default_factory=AnswerMode)
    records: list[PredictionRecord] = field(default_factory=list)  # after the scoring pass


def strategy_turn(plan: RunPlan, s: Any, backend: Backend, model_record: dict[str, Any], suite: Suite,
                  examples: list[Example], writer: PredictionWriter, console: Console, *, seed: int,
                  run_dir: Path, answer: AnswerMode) -> Turn:
    """Prepare one strategy and decode it through the prediction cache (also a learning curve's cell)."""
    opts = plan.opts
    ctx = StrategyContext(seed=seed, cache_dir=cache_root(), run_dir=run_dir, backend=backend,
                          embedder_name=opts.embedder, encoder=plan.encoder, console=console,
                          trust_remote_code=opts.trust_remote_code)
    prepared, prepare_s = prepare_strategy(s, suite, ctx)
    given = getattr(s, "given_outputs", None)
    if given is not None:  # outputs produced elsewhere (strategies.outputs): scored, never decoded
        outputs = given(examples)
        writer.write(outputs)
        decode_s = sum(o.latency_s for o in outputs)
        before = after = 0
    else:
        cache = PredictionCache(cache_root(), prediction_identity(s, prepared, backend, suite, answer))
        before, start = len(cache.entries), time.perf_counter()
        outputs = decode_strategy(s, suite, examples, backend, cache, writer, console, prepared.adapter, answer)
        decode_s = time.perf_counter() - start
        after = len(cache.entries)
    details = s.details()  # again: decoding may add figures (retrieval recall over the scored examples)
    # Every section a strategy reports lands in results.json; retrieval and training are always
    # present, so readers can test them against null.
    section = {"name": s.name, "kind": s.kind, "params": s.params, "prepare_s": prepare_s,
               "retrieval": None, "training": None, **details, "model": model_record, "answer": answer.label()}
    return Turn(outputs, section, ctx, prepare_s, decode_s, after - before, prepared.adapter, seed, answer)


def seeded_turns(plan: RunPlan, s: Any, models: ModelSet, writer: PredictionWriter, console: Console, *,
                 run_dir: Path) -> list[Turn]:
    """strategy_turn once per training seed of `s` (`sft:seeds=3`; the others decode as NAME@seedS),
    the first seed's turn first."""
    seeds = training_seeds(s, plan.opts.seed)
    turns = [strategy_turn(plan, seed_variant(s, t) if i else s, models.of(s.name), models.record(s.name),
                           plan.suite, plan.examples, writer, console, seed=t, run_dir=run_dir,
                           answer=plan.answers[s.name])
             for i, t in enumerate(seeds)]
    if len(turns) > 1:
        turns[0].section["seed_runs"] = [seed_run(t.seed, t.section) for t in turns]
    return turns


def execute(plan: RunPlan, models: ModelSet, run_id: str, run_dir: Path, console: Console) -> None:
    """Prepare and decode every strategy into run_dir (local weights freed once no later strategy
    needs them), the control suites, then the scoring pass, the statistics and results.json."""
    import torch

    torch.manual_seed(plan.opts.seed)
    outputs = PredictionWriter(run_dir, OUTPUTS_FILE)
    turns: dict[str, list[Turn]] = {}
    judges = [j.key for j in plan.judging.judges]
    for n, s in enumerate(plan.strategies):
        turns[s.name] = seeded_turns(plan, s, models, outputs, console, run_dir=run_dir)
        if not plan.controls:  # else the control suites decode with these weights after the last strategy
            models.free_unless_needed(s.name, [later.name for later in plan.strategies[n + 1:]] + judges)
    adapted = [Adapted(name, t[0].adapter) for name, t in turns.items() if t[0].adapter is not None]
    forgetting = run_controls(plan, adapted, models, run_dir, console) if plan.controls else None
    records = PredictionWriter(run_dir)  # the scoring pass: every model is done decoding
    for turn in (t for ts in turns.values() for t in ts):
        turn.records = score_pass(plan.suite, plan.examples, turn.outputs, records, turn.answer)
    graded = judge_pass(plan, models, turns, run_dir, console) if plan.judging.judges else []
    write_results(run_dir, _results(plan, models, turns, forgetting, run_id, graded))


def judge_pass(plan: RunPlan, models: ModelSet, turns: dict[str, list[Turn]], run_dir: Path,
               console: Console) -> list[JudgeRun]:
    """Every judge grades the outputs (harness.runner.judging); the records get the judged rows and
    are written again, every grade goes to judgements.jsonl."""
    runs = []
    for n, judge in enumerate(plan.judging.judges):
        every = {t.section["name"]: t.records for ts in turns.values() for t in ts}  # every training seed
        graded = ({a: every[a] for pair in judge.pairs for a in pair} if judge.pairs else
                  {name: recs for name, recs in every.items() if name.split("@seed")[0] in judge.strategies})
        runs.append(run_judge(judge, models.of(judge.key), plan.suite, graded, console))
        models.free_unless_needed(judge.key, [j.key for j in plan.judging.judges[n + 1:]])
    for turn in (t for ts in turns.values() for t in ts):
        turn.records = with_judged_rows(turn.records, runs)
    write_text_atomic(run_dir / PREDICTIONS_FILE, "".join(
        jsonl.dumps(r.to_json()) + "\n" for ts in turns.values() for t in ts for r in t.records))
    write_judgements(run_dir, runs)
    return runs


def _results(plan: RunPlan, models: ModelSet, turns: dict[str, list[Turn]], forgetting: Forgetting | None,
             run_id: str, graded: list[JudgeRun] | None = None) -> RunResults:
    from harness.scoring.results import score_results

    opts = plan.opts
    prices = {name: p for name in turns if (p := models.of(name).token_prices()) is not None}
    scored = score_results(
        plan.suite, plan.examples, {name: t[0].records for name, t in turns.items()},
        {name: t[0].section for name, t in turns.items()}, seed=opts.seed, slice_by=opts.slice_by,
        usd_per_hour=opts.usd_per_hour, monthly_requests=opts.monthly_requests,
        leaked_ids=plan.leakage.leaked_ids if plan.leakage else (), token_prices=prices,
        seed_records={name: {t.seed: t.records for t in ts} for name, ts in turns.items() if len(ts) > 1})
    embedder_loaded = bool(plan.encoder and plan.encoder.loaded) or any(t.ctx.encoder_loaded for ts in turns.values()
                                                                         for t in ts)
    generation = plan.suite.generation
    strategies, recommendation, judges = scored.strategies, scored.recommendation, {}
    if graded:
        judges = judge_results(graded, {name: t[0].records for name, t in turns.items()}, plan.judging.human,
                               {j.key: models.record(j.key) for j in plan.judging.judges})
        strategies = with_judge_costs(strategies, graded, {j.key: models.of(j.key).token_prices()
                                                           for j in plan.judging.judges}, opts.usd_per_hour)
        recommendation = judged_recommendation(recommendation, judges)
    return RunResults(
        schema=SCHEMA, run_id=run_id, created=datetime.now(UTC).isoformat(timespec="seconds"),
        suite=scored.suite, strategies=strategies, comparisons=scored.comparisons,
        recommendation=recommendation, economics=scored.economics, judges=judges,
        leakage=from_json(Leakage, plan.leakage.to_json(), "leakage") if plan.leakage else Leakage(checked=False),
        model=from_json(ModelRecord, {**models.default_record(opts.model), "embedder": opts.embedder}, "model"),
        decoding=Decoding(generation.max_new_tokens, list(generation.stop), "greedy", plan.batch_size),
        seed=opts.seed, limit=opts.limit, versions=_versions(), device=device_info(plan.device), argv=sys.argv[1:],
        # Whether this run needed the weights at all: a fully cached rerun loads neither.
        work=Work(models.weights_loaded, embedder_loaded), forgetting=forgetting, format_gaps=scored.format_gaps)
