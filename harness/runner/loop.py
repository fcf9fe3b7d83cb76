"""The one loop: suite -> strategies prepare -> their models decode -> prediction records -> scores
-> results.json.

Results go to disk first (predictions flushed batch by batch); the CLI then renders the reports
from the files alone (harness.report.publish), so nothing computed is lost if a later step fails.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness import __version__
from harness.core.cache import cache_root
from harness.core.config import ModelSpec
from harness.core.errors import HarnessError, SuiteError
from harness.core.predcache import PredictionCache
from harness.core.runrecord import PredictionRecord, PredictionWriter, write_results
from harness.core.suites import load_suite
from harness.core.types import Example, Suite
from harness.engine import modelset
from harness.engine.context import StrategyContext
from harness.engine.encoder import Encoder
from harness.engine.leakage import LeakageReport, check_run_leakage, run_encoder
from harness.engine.models import DEFAULT_EMBEDDER, check_model_ref, device_info, load_generator, pick_device
from harness.runner.control import Adapted, load_controls, run_controls
from harness.runner.decode import (
    decode_strategy,
    prediction_identity,
    prepare_strategy,
    seed_run,
    seed_variant,
    training_seeds,
)
from harness.runner.folders import check_out_dir, new_run_dir, remove_if_empty, run_id_base
from harness.runner.options import RunOptions, check_options, default_batch_size


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"sft-harness": __version__, "python": platform.python_version()}
    for pkg in ("torch", "transformers", "peft", "sentence-transformers", "faiss-cpu", "sacrebleu", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _build_strategies(opts: RunOptions) -> list[Any]:
    import strategies as registry

    if opts.strategy_params:
        built, seen = [], set()
        for kind, name, params in opts.strategy_params:
            s = registry.build(kind, dict(params), name)
            if s.name in seen:
                raise HarnessError(f"strategy '{s.name}' is given twice: give one a name")
            seen.add(s.name)
            built.append(s)
        return built
    return registry.from_spec(opts.strategies)


def run(opts: RunOptions, console: Console | None = None) -> Path:
    """Run a comparison and write the run folder. Returns the folder.

    Everything that can be refused is checked first (suite, strategies, options, output folder,
    device, model references), so a refused run loads no model and leaves no folder behind.
    """
    console = console or Console(stderr=True)
    from harness.scoring.registry import check_metric, load_suite_metrics, require_trust

    try:
        suite = load_suite(opts.suite, known_metrics=check_metric)  # SuiteError with file:line before any model work
    except SuiteError:
        raise
    except HarnessError as e:  # the suite named is not there: blame the config line that named it
        raise HarnessError(f"{opts.sources['suite']}: {e}" if "suite" in opts.sources else str(e)) from None
    for name in suite.metrics:
        try:
            require_trust(name, opts.trust_remote_code)
        except HarnessError as e:
            raise HarnessError(f"{suite.path / 'suite.toml' if suite.path else suite.name}: {e}") from None
    load_suite_metrics(suite)  # evaluate: modules and plugins load now, not after the predictions
    strategies = _build_strategies(opts)
    picked = modelset.strategy_models(opts.model, opts.models, opts.sources, strategies)  # unknown model names, API models for fine-tuning
    for s in strategies:
        try:
            s.check(suite)
        except HarnessError as e:  # a strategy from --config: blame its table (or its spec line)
            where = opts.sources.get(f"strategy {s.name}") or opts.sources.get("strategies")
            raise HarnessError(f"{where}: {e}" if where else str(e)) from None
    examples = list(suite.test[: opts.limit] if opts.limit else suite.test)
    check_options(opts, suite, examples)
    controls = load_controls(opts, suite)  # --control: unknown suites refused before any model work
    out = check_out_dir(Path(opts.out), opts.flag("out"))
    device = pick_device(opts.device, opts.flag("device"))
    for s in strategies:
        s.check_device(device)  # e.g. QLoRA needs CUDA: refused before any model loads
    modelset.check_model_refs(picked, opts.flag("model"), opts.sources, device)
    if needs_embedder := opts.embedder != DEFAULT_EMBEDDER or any(s.needs_embedder() for s in strategies):
        check_model_ref(opts.embedder, opts.flag("embedder"))  # else only the leakage check may use it
    # One embedder for the leakage check and every strategy: its weights load once, if at all.
    encoder = run_encoder(opts.embedder, trust_remote_code=opts.trust_remote_code, optional=not needs_embedder)
    leakage: LeakageReport | None = None
    if opts.leakage_check:  # before the generator: --fail-on-leakage refuses with no model loaded, no folder
        leakage = check_run_leakage(suite, examples, encoder=encoder, threshold=opts.leakage_threshold,
                                    fail=opts.fail_on_leakage)
        console.print(f"leakage: {escape(leakage.summary())}", highlight=False)

    models = modelset.build_models(picked, load_generator, device=device, trust_remote_code=opts.trust_remote_code)
    run_id, run_dir = new_run_dir(out, run_id_base(suite.name, opts.run_label))
    console.print(f"[bold]run[/] {run_id}: suite [cyan]{escape(suite.name)}[/] ({suite.task}, {len(examples)} test examples), "
                  f"strategies {escape(', '.join(s.name for s in strategies))} -> {escape(str(run_dir))}")
    try:
        _execute(opts, suite, examples, strategies, picked, models, run_id, run_dir, console, leakage, device, encoder,
                 controls=controls)
    except BaseException:
        remove_if_empty(run_dir)
        raise
    return run_dir


@dataclass
class Turn:
    """One strategy's turn: its records, its results.json section, its context, and the work done
    (seconds preparing and decoding; generations decoded now rather than taken from the cache)."""

    predictions: list[PredictionRecord]
    section: dict[str, Any]
    ctx: StrategyContext
    prepare_s: float
    decode_s: float
    decoded: int
    adapter: Path | None = None  # what it decoded with: the forgetting check (--control) scores it again


def strategy_turn(opts: RunOptions, s: Any, spec: ModelSpec, model: Any, engine: Any, suite: Suite,
                  examples: list[Example], record: Any, console: Console, *, seed: int, run_dir: Path,
                  encoder: Encoder | None) -> Turn:
    """Prepare one strategy and decode it through the prediction cache (also a learning curve's cell)."""
    ctx = StrategyContext(seed=seed, cache_dir=cache_root(), run_dir=run_dir, **modelset.context_model(model),
                          embedder_name=opts.embedder, encoder=encoder, console=console,
                          trust_remote_code=opts.trust_remote_code)
    prepared, prepare_s = prepare_strategy(s, suite, ctx)
    cache = PredictionCache(cache_root(), prediction_identity(s, prepared, model, suite))
    before, start = len(cache.entries), time.perf_counter()
    predictions = decode_strategy(s, suite, examples, engine, cache, record, console, prepared.adapter)
    decode_s = time.perf_counter() - start
    details = s.details()  # again: decoding may add figures (retrieval recall over the scored examples)
    # Every section a strategy reports lands in results.json; retrieval and training are always
    # present, so readers can test them against null.
    section = {"name": s.name, "kind": s.kind, "params": s.params, "prepare_s": prepare_s,
               "retrieval": None, "training": None, **details, "model": modelset.model_record(spec, model)}
    return Turn(predictions, section, ctx, prepare_s, decode_s, len(cache.entries) - before, prepared.adapter)


def seeded_turns(opts: RunOptions, s: Any, spec: ModelSpec, model: Any, engine: Any, suite: Suite,
                 examples: list[Example], record: Any, console: Console, *, run_dir: Path,
                 encoder: Encoder | None) -> tuple[Turn, dict[int, list[PredictionRecord]]]:
    """strategy_turn once per training seed of `s` (`sft:seeds=3`; the others decode as NAME@seedS):
    the first seed's turn, and every seed's records when there is more than one seed (else {})."""
    seeds = training_seeds(s, opts.seed)
    turns = {t: strategy_turn(opts, seed_variant(s, t) if i else s, spec, model, engine, suite, examples, record,
                              console, seed=t, run_dir=run_dir, encoder=encoder) for i, t in enumerate(seeds)}
    first = turns[seeds[0]]
    if len(turns) == 1:
        return first, {}
    first.section["seed_runs"] = [seed_run(t, turn.section) for t, turn in turns.items()]
    return first, {t: turn.predictions for t, turn in turns.items()}


def _execute(
    opts: RunOptions,
    suite: Suite,
    examples: list[Example],
    strategies: list[Any],
    picked: dict[str, ModelSpec],
    models: dict[str, Any],
    run_id: str,
    run_dir: Path,
    console: Console,
    leakage: LeakageReport | None = None,
    device: str = "cpu",
    encoder: Encoder | None = None,
    controls: Sequence[Suite] = (),
) -> None:
    """Prepare and decode every strategy into run_dir (each with its model: `picked`, `models`,
    local weights freed once no later strategy needs them), then score and write results.json."""
    # long: one loop over the strategies, then the control suites (--control) and the scores, each step a call.
    from harness.scoring.records import recorder
    from harness.scoring.results import score_results

    batch_size = opts.batch_size or default_batch_size(device)
    engines = modelset.engines(models, batch_size)
    import torch

    torch.manual_seed(opts.seed)

    per_strategy: dict[str, dict[str, Any]] = {}
    predictions: dict[str, list[PredictionRecord]] = {}
    seed_records: dict[str, dict[int, list[PredictionRecord]]] = {}  # multi-seed strategies: seed -> records
    ctx: StrategyContext | None = None
    record = recorder(suite, PredictionWriter(run_dir))
    adapted: list[Adapted] = []  # strategies that decode with an adapter: scored again on the controls
    for n, s in enumerate(strategies):
        spec = picked[s.name]
        key = modelset.model_key(spec)
        model = models[key]
        turn, seed_records[s.name] = seeded_turns(opts, s, spec, model, engines[key], suite, examples, record, console,
                                                  run_dir=run_dir, encoder=encoder)
        predictions[s.name], per_strategy[s.name], ctx = turn.predictions, turn.section, turn.ctx
        adapted += [Adapted(s.name, turn.adapter, key)] if turn.adapter is not None else []
        if not controls:  # else the control suites decode with these weights after the last strategy
            modelset.free_if_done(key, model, engines[key], [picked[later.name] for later in strategies[n + 1:]])
    forgetting = run_controls(opts, controls, adapted, models, engines, run_dir, console) if controls else None

    results = score_results(suite, examples, predictions, per_strategy, seed=opts.seed, slice_by=opts.slice_by,
                            usd_per_hour=opts.usd_per_hour, monthly_requests=opts.monthly_requests,
                            leaked_ids=leakage.leaked_ids if leakage else (), token_prices=modelset.token_prices(picked),
                            seed_records={k: v for k, v in seed_records.items() if v})
    results["leakage"] = leakage.to_json() if leakage else {"checked": False}
    results.update({"forgetting": forgetting} if forgetting is not None else {})  # only with --control
    results.update(
        run_id=run_id,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        model={**modelset.default_model_record(models, opts.model), "embedder": opts.embedder},
        decoding={**suite.generation.fingerprint(), "batch_size": batch_size},
        seed=opts.seed,
        limit=opts.limit,
        versions=_versions(),
        device=device_info(device),
        argv=sys.argv[1:],
        # Whether this run needed the weights at all: a fully cached rerun loads neither.
        work={"generator_loaded": modelset.weights_loaded(models),
              "embedder_loaded": bool(encoder and encoder.loaded) or bool(ctx and ctx.encoder_loaded)},
    )
    write_results(run_dir, results)
