"""The one loop: suite -> strategies prepare -> shared engine decodes -> predictions -> scores -> reports.

Results go to disk first (predictions flushed batch by batch); reports are rendered from the
files alone, so nothing computed is lost if a later step fails.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from . import __version__
from .cache import cache_root, write_json_atomic
from .context import RunContext, make_progress
from .errors import HarnessError
from .generate import Engine
from .models import DEFAULT_EMBEDDER, DEFAULT_MODEL, load_generator
from .predcache import PredictionCache, prompt_key
from .suites import load_suite
from .types import Example, Generation, Prediction, Suite

RESULTS_SCHEMA = "sft-harness/results/v1"


@dataclass
class RunOptions:
    suite: str
    strategies: str = "prompt"
    model: str = DEFAULT_MODEL
    embedder: str = DEFAULT_EMBEDDER
    out: Path = Path("reports")
    run_id: str | None = None
    limit: int | None = None
    seed: int = 0
    slice_by: tuple[str, ...] = ()
    batch_size: int | None = None  # None: default_batch_size(device)
    usd_per_hour: float | None = None
    device: str | None = None
    trust_remote_code: bool = False
    strategy_params: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)  # from --config


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"sft-harness": __version__, "python": platform.python_version()}
    for pkg in ("torch", "transformers", "peft", "sentence-transformers", "faiss-cpu", "sacrebleu", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _device_info(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"type": device, "threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        info["name"] = torch.cuda.get_device_name(0)
    else:
        info["name"] = platform.processor() or platform.machine()
    return info


def default_batch_size(device: str) -> int:
    """Decoding batch size when the user gives none.

    On a CPU a decoding step is bound by reading the weights, so 64 rows cost little more than 16
    (support-faq on 2 cores: 62 questions in 42 s at 64 against 73 s at 16). On a GPU the key/value
    cache of a large model is the limit, so stay at 16 there. Either way the engine also caps a
    batch at max_batch_tokens prompt tokens.
    """
    return 64 if device == "cpu" else 16


def new_run_dir(out: Path, suite_name: str, run_id: str | None) -> tuple[str, Path]:
    if run_id is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', suite_name)}"
        candidate, n = run_id, 1
        while (out / candidate).exists():
            n += 1
            candidate = f"{run_id}-{n}"
        run_id = candidate
    run_dir = out / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_id, run_dir


def _prediction_line(pred: Prediction, example: Example) -> str:
    d = pred.to_json()
    target = example.target
    d.update(input=example.input, target=list(target) if isinstance(target, tuple) else target, meta=example.meta)
    return json.dumps(d, ensure_ascii=False) + "\n"


def decode_strategy(
    strategy: Any,
    suite: Suite,
    examples: Sequence[Example],
    engine: Engine,
    cache: PredictionCache,
    predictions_file: Any,
    console: Console,
) -> list[Prediction]:
    """Decode one strategy's prompts, reusing cached generations; flush each batch to disk."""
    from .metrics import extract_answer

    prompts = strategy.prompts(examples)
    keys = [prompt_key(p.messages) for p in prompts]
    generations: list[Generation | None] = [cache.get(k) for k in keys]
    todo = [i for i, g in enumerate(generations) if g is None]

    def to_prediction(i: int, gen: Generation) -> Prediction:
        answer = extract_answer(gen.text, suite.task, suite.labels, suite.fields)
        return Prediction(strategy.name, examples[i].id, gen.text, answer, gen.latency_s,
                          gen.prompt_tokens, gen.output_tokens, prompts[i].retrieved)

    def flush(indices: list[int]) -> None:
        lines = "".join(_prediction_line(to_prediction(i, generations[i]), examples[i]) for i in indices)  # type: ignore[arg-type]
        predictions_file.write(lines)
        predictions_file.flush()
        os.fsync(predictions_file.fileno())

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
                cache.add_many([(keys[i], g) for i, g in zip(real, gens, strict=True)])
                flush(real)
                tokens += sum(g.output_tokens for g in gens)
                seconds += sum(g.latency_s for g in gens)
                progress.update(task, advance=len(gens), info=f"{tokens / max(seconds, 1e-9):.1f} tok/s")

            with engine.adapter(strategy.adapter):
                engine.generate([prompts[i].messages for i in todo], suite.generation, on_batch=on_batch)
    return [to_prediction(i, g) for i, g in enumerate(generations) if g is not None]


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
    """Run a comparison and write the run folder. Returns the folder."""
    from . import history, report

    console = console or Console(stderr=True)
    suite = load_suite(opts.suite)  # raises SuiteError with file:line before any model work
    strategies = _build_strategies(opts)
    for s in strategies:
        s.check(suite)
    if opts.limit is not None and opts.limit <= 0:
        raise HarnessError("--limit must be a positive number of test examples")
    examples = list(suite.test[: opts.limit] if opts.limit else suite.test)

    run_id, run_dir = new_run_dir(Path(opts.out), suite.name, opts.run_id)
    console.print(f"[bold]run[/] {run_id}: suite [cyan]{escape(suite.name)}[/] ({suite.task}, {len(examples)} test examples), "
                  f"strategies {escape(', '.join(s.name for s in strategies))} -> {escape(str(run_dir))}")
    with console.status(f"loading model {escape(opts.model)}"):
        loaded = load_generator(opts.model, device=opts.device, trust_remote_code=opts.trust_remote_code)
    batch_size = opts.batch_size or default_batch_size(loaded.device)
    engine = Engine(loaded, batch_size=batch_size)
    ctx = RunContext(seed=opts.seed, cache_dir=cache_root(), run_dir=run_dir, generator=loaded,
                     embedder_name=opts.embedder, console=console, trust_remote_code=opts.trust_remote_code)
    import torch

    torch.manual_seed(opts.seed)

    per_strategy: dict[str, dict[str, Any]] = {}
    predictions: dict[str, list[Prediction]] = {}
    with open(run_dir / "predictions.jsonl", "w", encoding="utf-8") as pred_file:
        for s in strategies:
            start = time.perf_counter()
            s.prepare(suite, ctx)
            prepare_s = time.perf_counter() - start
            details = s.details()
            training = details.get("training")
            if training and training.get("cached"):
                prepare_s += float(training.get("seconds") or 0.0)  # what the cached adapter cost to train
            cache = PredictionCache(cache_root(), {"strategy": s.fingerprint(), "model": loaded.sha256 or loaded.path,
                                                   "decoding": suite.generation.fingerprint()})
            preds = decode_strategy(s, suite, examples, engine, cache, pred_file, console)
            predictions[s.name] = preds
            # Every section a strategy reports (retrieval, training, adapter, ...) lands in results.json;
            # retrieval and training are always present so readers can test them against null.
            per_strategy[s.name] = {"name": s.name, "kind": s.kind, "params": s.params, "prepare_s": prepare_s,
                                    "retrieval": None, "training": None, **details}

    results = score_run(suite, examples, predictions, per_strategy, opts)
    results.update(
        schema=RESULTS_SCHEMA,
        run_id=run_id,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        model={**loaded.info(), "embedder": opts.embedder},
        decoding={**suite.generation.fingerprint(), "batch_size": batch_size},
        seed=opts.seed,
        limit=opts.limit,
        versions=_versions(),
        device=_device_info(loaded.device),
        argv=sys.argv[1:],
    )
    write_json_atomic(run_dir / "results.json", results)
    history.append_run(Path(opts.out), results)
    report.render_all(run_dir, history=history.load_history(Path(opts.out), suite.name))
    # Logs (not a terminal) do not wrap: give the table room instead of rich's 80-column guess.
    report.print_summary(results, Console() if sys.stdout.isatty() else Console(width=140))
    console.print(f"[green]wrote[/] {escape(str(run_dir))}/report.html, report.md, summary.csv, results.json, predictions.jsonl")
    return run_dir


def score_run(
    suite: Suite,
    examples: list[Example],
    predictions: dict[str, list[Prediction]],
    per_strategy: dict[str, dict[str, Any]],
    opts: RunOptions,
) -> dict[str, Any]:
    from . import metrics, scoring

    strategies_out: dict[str, Any] = {}
    for name, preds in predictions.items():
        info = per_strategy[name]
        scored = scoring.score_strategy(suite, examples, preds, seed=opts.seed, slice_by=opts.slice_by)
        by_id = {p.example_id: p for p in preds}
        answers = [by_id[e.id].answer if e.id in by_id else None for e in examples]
        # Partial credit where answers can be partly right: exact matches of free text are rare.
        n_correct = float(metrics.example_scores(suite.task, answers, examples).sum())
        training = info["training"] or {}
        cost = scoring.cost_summary(
            preds,
            prepare_s=info["prepare_s"],
            predict_s=sum(p.latency_s for p in preds),
            training_tokens=int(training.get("train_tokens") or 0),
            usd_per_hour=opts.usd_per_hour,
            n_correct=n_correct,
        )
        sections = {k: v for k, v in info.items() if k != "prepare_s"}  # retrieval, training, adapter, ...
        strategies_out[name] = {**sections, **scored, "cost": cost}
    comparisons = scoring.compare_strategies(suite, examples, predictions, seed=opts.seed)
    recommendation = scoring.recommend(strategies_out, comparisons, suite.primary_metric)
    return {
        "suite": {"name": suite.name, "task": suite.task, "sha256": suite.sha256, "path": str(suite.path),
                  "sizes": {**suite.sizes(), "scored": len(examples)}, "labels": list(suite.labels),
                  "fields": list(suite.fields), "metrics": list(suite.metrics),
                  "primary_metric": suite.primary_metric, "instruction": suite.instruction},
        "strategies": strategies_out,
        "comparisons": comparisons,
        "recommendation": recommendation,
    }
