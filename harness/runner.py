"""The one loop: suite -> strategies prepare -> their models decode -> prediction records -> scores
-> results.json.

Results go to disk first (predictions flushed batch by batch); the CLI then renders the reports
from the files alone (harness.report.publish), so nothing computed is lost if a later step fails.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from harness import __version__
from harness.core.cache import cache_root, sha256_file
from harness.core.config import ModelSpec
from harness.core.errors import HarnessError, SuiteError
from harness.core.predcache import PredictionCache, prompt_key
from harness.core.runrecord import PREDICTIONS_FILE, PredictionRecord, PredictionWriter, write_results
from harness.core.suites import load_suite
from harness.core.text import did_you_mean
from harness.core.types import Example, Generation, Prediction, Suite
from harness.engine import modelset
from harness.engine.backends.base import Backend
from harness.engine.context import Prepared, StrategyContext, make_progress
from harness.engine.encoder import Encoder
from harness.engine.leakage import DEFAULT_THRESHOLD, LeakageReport, check_run_leakage, run_encoder
from harness.engine.models import (
    DEFAULT_EMBEDDER,
    DEFAULT_MODEL,
    check_model_ref,
    device_info,
    load_generator,
    pick_device,
)

if TYPE_CHECKING:
    from harness.scoring.records import Record


@dataclass
class RunOptions:
    suite: str
    strategies: str = "prompt"
    model: str = DEFAULT_MODEL
    embedder: str = DEFAULT_EMBEDDER
    out: Path = Path("reports")
    run_label: str | None = None  # e.g. "demo": part of the run folder's name
    limit: int | None = None
    seed: int = 0
    slice_by: tuple[str, ...] = ()
    batch_size: int | None = None  # None: default_batch_size(device)
    usd_per_hour: float | None = None
    monthly_requests: float | None = None  # expected traffic: monthly cost and break-even months
    device: str | None = None
    trust_remote_code: bool = False
    leakage_check: bool = True  # test vs train/validation/corpus before any model work (harness.engine.leakage)
    leakage_threshold: float = DEFAULT_THRESHOLD  # cosine of an embedding near-duplicate
    fail_on_leakage: bool = False  # any leak: exit 2 before any model work, no run folder
    strategy_params: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)  # from --config
    sources: dict[str, str] = field(default_factory=dict)  # option -> "run.toml:LINE" for values from --config
    models: dict[str, ModelSpec] = field(default_factory=dict)  # [[models]] by name: what `model=NAME` picks

    def flag(self, key: str) -> str:
        """How an error names an option: `run.toml:7: batch_size` when the file set it, else `--batch-size`."""
        where = self.sources.get(key)
        return f"{where}: {key}" if where else "--" + key.replace("_", "-")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"sft-harness": __version__, "python": platform.python_version()}
    for pkg in ("torch", "transformers", "peft", "sentence-transformers", "faiss-cpu", "sacrebleu", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def default_batch_size(device: str) -> int:
    """Decoding batch size when the user gives none.

    On a CPU a decoding step is bound by reading the weights, so 64 rows cost little more than 16
    (support-faq on 2 cores: 62 questions in 42 s at 64 against 73 s at 16). On a GPU the key/value
    cache of a large model is the limit, so stay at 16 there. Either way the engine also caps a
    batch at max_batch_tokens prompt tokens.
    """
    return 64 if device == "cpu" else 16


def run_id_base(suite_name: str, label: str | None = None) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    # A file name, whatever the suite calls itself: safe characters, and short (names cap at 255 bytes).
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", suite_name).strip(".-")[:80].strip(".-") or "suite"
    return f"{stamp}-{label}-{name}" if label else f"{stamp}-{name}"


def new_run_dir(out: Path, base: str) -> tuple[str, Path]:
    """Create a run folder that no other run shares: `mkdir` either creates it or fails, so a
    failure means "taken" and the next name is tried (two runs started in the same second get
    `...-suite` and `...-suite-2`)."""
    out.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        run_id = base if n == 1 else f"{base}-{n}"
        try:
            (out / run_id).mkdir()
        except FileExistsError:
            continue
        return run_id, out / run_id
    raise AssertionError("unreachable")


def check_out_dir(out: Path, flag: str = "--out") -> Path:
    """The folder for run folders: created if missing, refused (one line) if it cannot hold them."""
    if out.exists() and not out.is_dir():
        raise HarnessError(f"{flag} {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HarnessError(f"{flag} {out}: cannot create the folder ({e.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise HarnessError(f"{flag} {out}: the folder is not writable")
    return out


def remove_if_empty(run_dir: Path) -> None:
    """A run that failed before decoding anything leaves no folder behind (one with predictions stays)."""
    pred = run_dir / PREDICTIONS_FILE
    if pred.is_file() and pred.stat().st_size == 0:
        pred.unlink()
    with contextlib.suppress(OSError):
        run_dir.rmdir()  # only succeeds when nothing else is in it


def link_latest(out: Path, name: str, run_dir: Path) -> Path:
    """Point `out/name` at a finished run folder, atomically (a symlink renamed over the old one),
    so concurrent demos each keep their own complete folder and the link names the last to finish."""
    link = out / name
    tmp = out / f".{name}.{os.getpid()}.link"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(run_dir.name, target_is_directory=True)
    if link.is_dir() and not link.is_symlink():  # a folder from an older version: keep it aside
        link.rename(out / f"{name}-{datetime.fromtimestamp(link.stat().st_mtime):%Y%m%d-%H%M%S}-old")
    os.replace(tmp, link)
    return link


def decode_strategy(
    strategy: Any,
    suite: Suite,
    examples: Sequence[Example],
    engine: Backend,
    cache: PredictionCache,
    record: Record,
    console: Console,
    adapter: Path | None = None,
) -> list[PredictionRecord]:
    """Decode one strategy's prompts, reusing cached generations; record each batch as it is done."""
    from harness.scoring.extract import extract_answer

    prompts = strategy.prompts(examples)
    keys = [prompt_key(p.messages) for p in prompts]
    generations: list[Generation | None] = [cache.get(k) for k in keys]
    todo = [i for i, g in enumerate(generations) if g is None]
    records: list[PredictionRecord | None] = [None] * len(examples)

    def to_prediction(i: int, gen: Generation) -> Prediction:
        answer = None if gen.error else extract_answer(gen.text, suite.task, suite.labels, suite.fields)
        return Prediction(strategy.name, examples[i].id, gen.text, answer, gen.latency_s,
                          gen.prompt_tokens, gen.output_tokens, prompts[i].retrieved, error=gen.error)

    def flush(indices: list[int]) -> None:
        preds = [to_prediction(i, g) for i in indices if (g := generations[i]) is not None]
        for i, rec in zip(indices, record(preds, [examples[i] for i in indices]), strict=True):
            records[i] = rec

    cached = [i for i, g in enumerate(generations) if g is not None]
    if cached:
        flush(cached)
    if todo:
        with make_progress(console) as progress:
            task = progress.add_task(f"decode {escape(strategy.name)}", total=len(examples), completed=len(cached), info="")
            tokens, seconds = 0, 0.0

            def on_batch(indices: list[int], gens: list[Generation]) -> None:
                nonlocal tokens, seconds
                real = [todo[i] for i in indices]
                for i, g in zip(real, gens, strict=True):
                    generations[i] = g
                cache.add_many([(keys[i], g) for i, g in zip(real, gens, strict=True)])  # not the failed ones
                flush(real)
                tokens += sum(g.output_tokens for g in gens)
                seconds += sum(g.latency_s for g in gens)
                progress.update(task, advance=len(gens), info=f"{tokens / max(seconds, 1e-9):.1f} tok/s")

            before = engine.truncated
            with engine.adapter(adapter):
                engine.generate([prompts[i].messages for i in todo], suite.generation, on_batch=on_batch)
        if engine.truncated > before:
            console.print(f"[yellow]warning:[/] {engine.truncated - before} prompt(s) of {escape(strategy.name)} were "
                          "longer than the model's context: cut from the start of the input to fit")
        if failed := sum(1 for i in todo if (g := generations[i]) is not None and g.error):
            console.print(f"[yellow]warning:[/] {failed} request(s) of {escape(strategy.name)} failed: recorded as "
                          "errors and not cached; run again to retry them")
    return [r for r in records if r is not None]


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


def prediction_identity(strategy: Any, prepared: Prepared, loaded: Any, suite: Suite) -> dict[str, Any]:
    """What a strategy's cached generations depend on besides each prompt: its kind and options,
    what prepare() built, the weights of the adapter it decodes with, the model, the decoding."""
    adapter = None
    if prepared.adapter is not None:
        weights = sorted(Path(prepared.adapter).glob("*.safetensors"))
        adapter = [sha256_file(w) for w in weights] or str(prepared.adapter)
    neutral: frozenset[str] = getattr(strategy, "neutral_options", frozenset())
    params = {k: v for k, v in strategy.params.items() if k not in neutral}
    return {"strategy": {"kind": strategy.kind, "params": params, "artifacts": prepared.artifacts,
                         "adapter": adapter},
            "model": modelset.model_identity(loaded), "decoding": suite.generation.fingerprint()}


def check_options(opts: RunOptions, suite: Suite, examples: Sequence[Example]) -> None:
    """Every run option checked before any model loads or any folder is made."""
    if opts.limit is not None and opts.limit <= 0:
        raise HarnessError(f"{opts.flag('limit')} must be a positive number of test examples")
    if opts.batch_size is not None and opts.batch_size < 1:
        raise HarnessError(f"{opts.flag('batch_size')} must be at least 1, got {opts.batch_size}")
    if opts.monthly_requests is not None and not (math.isfinite(opts.monthly_requests) and opts.monthly_requests >= 0):
        raise HarnessError(f"{opts.flag('monthly_requests')} must be 0 or more, got {opts.monthly_requests}")
    if opts.usd_per_hour is not None and not (math.isfinite(opts.usd_per_hour) and opts.usd_per_hour >= 0):
        raise HarnessError(f"{opts.flag('gpu_hour_usd')} must be a price of 0 or more, got {opts.usd_per_hour}")
    if not (math.isfinite(opts.leakage_threshold) and 0 < opts.leakage_threshold <= 1):
        raise HarnessError(f"{opts.flag('leakage_threshold')} must be a cosine above 0 and at most 1, "
                           f"got {opts.leakage_threshold}")
    if not 0 <= opts.seed < 2**32:  # numpy and torch seeds
        raise HarnessError(f"{opts.flag('seed')} must be a whole number from 0 to {2**32 - 1}, got {opts.seed}")
    for field_name in opts.slice_by:
        if not any(field_name in ex.meta for ex in examples):
            known = sorted({k for ex in examples for k in ex.meta})
            raise HarnessError(
                f"{opts.flag('slice_by')} {field_name}: no scored example of suite '{suite.name}' has meta field "
                f"'{field_name}'{did_you_mean(field_name, known)}; fields: {', '.join(known) or 'none'}"
            )


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
    out = check_out_dir(Path(opts.out), opts.flag("out"))
    device = pick_device(opts.device, opts.flag("device"))
    for s in strategies:
        s.check_device(device)  # e.g. QLoRA needs CUDA: refused before any model loads
    modelset.check_model_refs(picked, opts.flag("model"), opts.sources)
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
        _execute(opts, suite, examples, strategies, picked, models, run_id, run_dir, console, leakage, device, encoder)
    except BaseException:
        remove_if_empty(run_dir)
        raise
    return run_dir


def _prepare(strategy: Any, suite: Suite, ctx: StrategyContext) -> tuple[Prepared, float]:
    """What the strategy's prepare() built, and what it cost in seconds."""
    start = time.perf_counter()
    prepared = strategy.prepare(suite, ctx)
    if not isinstance(prepared, Prepared):
        raise HarnessError(f"strategy '{strategy.name}': prepare() must return a Prepared "
                           f"(harness.context.Prepared), not {type(prepared).__name__}")
    prepare_s = time.perf_counter() - start
    training = strategy.details().get("training")
    if training and training.get("cached"):
        prepare_s += float(training.get("seconds") or 0.0)  # what the cached adapter cost to train
    return prepared, prepare_s


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
) -> None:
    """Prepare and decode every strategy into run_dir (each with its model: `picked`, `models`,
    local weights freed once no later strategy needs them), then score and write results.json."""
    from harness.scoring.records import recorder
    from harness.scoring.results import score_results

    batch_size = opts.batch_size or default_batch_size(device)
    engines = modelset.engines(models, batch_size)
    import torch

    torch.manual_seed(opts.seed)

    per_strategy: dict[str, dict[str, Any]] = {}
    predictions: dict[str, list[PredictionRecord]] = {}
    ctx: StrategyContext | None = None
    record = recorder(suite, PredictionWriter(run_dir))
    for n, s in enumerate(strategies):
        spec = picked[s.name]
        key = modelset.model_key(spec)
        model = models[key]
        ctx = StrategyContext(seed=opts.seed, cache_dir=cache_root(), run_dir=run_dir, **modelset.context_model(model),
                              embedder_name=opts.embedder, encoder=encoder, console=console,
                              trust_remote_code=opts.trust_remote_code)
        prepared, prepare_s = _prepare(s, suite, ctx)
        cache = PredictionCache(cache_root(), prediction_identity(s, prepared, model, suite))
        predictions[s.name] = decode_strategy(s, suite, examples, engines[key], cache, record, console, prepared.adapter)
        details = s.details()  # again: decoding may add figures (retrieval recall over the scored examples)
        # long: one loop over the strategies, each step a call. Every section a strategy reports lands in
        # results.json; retrieval and training are always present, so readers can test them against null.
        per_strategy[s.name] = {"name": s.name, "kind": s.kind, "params": s.params, "prepare_s": prepare_s,
                                "retrieval": None, "training": None, **details, "model": modelset.model_record(spec, model)}
        modelset.free_if_done(key, model, engines[key], [picked[later.name] for later in strategies[n + 1:]])

    results = score_results(suite, examples, predictions, per_strategy, seed=opts.seed, slice_by=opts.slice_by,
                            usd_per_hour=opts.usd_per_hour, monthly_requests=opts.monthly_requests,
                            leaked_ids=leakage.leaked_ids if leakage else (), token_prices=modelset.token_prices(picked))
    results["leakage"] = leakage.to_json() if leakage else {"checked": False}
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
