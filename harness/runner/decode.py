"""One strategy's turn: prepare() timed, prompts decoded through the prediction cache, records flushed per batch."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from harness.core.cache import sha256_file
from harness.core.errors import HarnessError
from harness.core.predcache import PredictionCache, prompt_key
from harness.core.runrecord import PredictionRecord
from harness.core.types import Example, Generation, Prediction, Suite
from harness.engine import modelset
from harness.engine.backends.base import Backend
from harness.engine.context import Prepared, StrategyContext, make_progress

if TYPE_CHECKING:
    from harness.scoring.records import Record


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


def training_seeds(strategy: Any, run_seed: int) -> tuple[int, ...]:
    """The seeds a strategy trains one adapter each with (`sft:seeds=3`); the run's seed for the rest."""
    seeds = getattr(strategy, "training_seeds", None)
    return tuple(seeds(run_seed)) if seeds is not None else (run_seed,)


def seed_variant(strategy: Any, seed: int) -> Any:
    """The strategy for one more training seed: a copy named NAME@seedS, so that its adapter folder and
    its records in predictions.jsonl are its own (harness.scoring.seeds groups them back)."""
    variant = copy.copy(strategy)
    variant.name = f"{strategy.name}@seed{seed}"
    return variant


def seed_run(seed: int, section: Mapping[str, Any]) -> dict[str, Any]:
    """One seed's entry in a multi-seed strategy's `seed_runs`: where its records and adapter are."""
    training = section.get("training") or {}
    return {"seed": seed, "name": section["name"], "prepare_s": section["prepare_s"],
            "adapter_path": training.get("adapter_path"), "val_loss": training.get("val_loss")}


def prepare_strategy(strategy: Any, suite: Suite, ctx: StrategyContext) -> tuple[Prepared, float]:
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
