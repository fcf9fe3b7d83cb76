"""One strategy's turn: prepare() timed, prompts decoded through the prediction cache, outputs flushed per batch."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.core.cache import sha256_file
from harness.core.errors import HarnessError
from harness.core.predcache import PredictionCache, prompt_key
from harness.core.runrecord import Output, PredictionWriter
from harness.core.types import AnswerMode, Constraint, Example, Generation, GenerationConfig, Suite
from harness.engine.backends.base import Backend
from harness.engine.context import Prepared, StrategyContext, make_progress
from harness.runner import choice


def decode_strategy(
    strategy: Any,
    suite: Suite,
    examples: Sequence[Example],
    backend: Backend,
    cache: PredictionCache,
    writer: PredictionWriter | None,
    console: Console,
    adapter: Path | None = None,
    answer: AnswerMode | None = None,
) -> list[Output]:
    """Decode one strategy's prompts in its answer mode (free text, label choice by likelihood,
    or constrained decoding), reusing cached generations; each batch's outputs are written
    (outputs.jsonl) as soon as it is done. Scoring is a later pass (harness.runner.scoring_pass)."""
    return _Decoding(strategy, suite, list(examples), backend, cache, writer, console, adapter,
                     answer or AnswerMode()).run()


@dataclass
class _Decoding:
    strategy: Any
    suite: Suite
    examples: list[Example]
    backend: Backend
    cache: PredictionCache
    writer: PredictionWriter | None  # None: outputs are not written (they are in the prediction cache)
    console: Console
    adapter: Path | None
    answer: AnswerMode

    def run(self) -> list[Output]:
        self.prompts = self.strategy.prompts(self.examples)
        self.keys = [prompt_key(p.messages) for p in self.prompts]
        self.generations: list[Generation | None] = [self.cache.get(k) for k in self.keys]
        self.outputs: list[Output | None] = [None] * len(self.examples)
        self.prior = choice.content_free(self) if self.answer.mode == "choice" and self.answer.calibrate else None
        cached = [i for i, g in enumerate(self.generations) if g is not None]
        if cached:
            self.flush(cached)
        todo = [i for i, g in enumerate(self.generations) if g is None]
        if todo:
            self.decode(todo, done=len(cached))
        return [o for o in self.outputs if o is not None]

    def flush(self, indices: list[int]) -> None:
        name, done = self.strategy.name, []
        for i in indices:
            if (g := self.generations[i]) is not None:
                text, scores = choice.decided(g, self.suite.labels, self.prior) if g.choice_scores else (g.text, None)
                out = Output(name, self.examples[i].id, text, g.latency_s, g.prompt_tokens, g.output_tokens,
                             self.prompts[i].retrieved, g.error, scores)
                self.outputs[i] = out
                done.append(out)
        if self.writer is not None:
            self.writer.write(done)

    def decode(self, todo: list[int], *, done: int) -> None:
        """The prompts not in the cache, through the backend with a progress bar; each batch cached
        (not the failed requests) and flushed as it comes."""
        name = escape(self.strategy.name)
        with make_progress(self.console) as progress:
            task = progress.add_task(f"decode {name}", total=len(self.prompts), completed=done, info="")
            tokens, seconds = 0, 0.0

            def on_batch(indices: list[int], gens: list[Generation]) -> None:
                nonlocal tokens, seconds
                real = [todo[i] for i in indices]
                for i, g in zip(real, gens, strict=True):
                    self.generations[i] = g
                self.cache.add_many([(self.keys[i], g) for i, g in zip(real, gens, strict=True)])  # not the failed
                self.flush(real)
                tokens += sum(g.output_tokens for g in gens)
                seconds += sum(g.latency_s for g in gens)
                progress.update(task, advance=len(gens), info=f"{tokens / max(seconds, 1e-9):.1f} tok/s")

            before = self.backend.truncated
            with self.backend.adapter(self.adapter):
                if self.answer.mode == "choice":
                    choice.score_labels(self, todo, on_batch)
                else:
                    self.backend.generate([self.prompts[i].messages for i in todo], self.generation_config(),
                                          on_batch=on_batch)
        if self.backend.truncated > before:
            self.console.print(f"[yellow]warning:[/] {self.backend.truncated - before} prompt(s) of {name} were "
                               "longer than the model's context: cut from the start of the input to fit")
        if failed := sum(1 for i in todo if (g := self.generations[i]) is not None and g.error):
            self.console.print(f"[yellow]warning:[/] {failed} request(s) of {name} failed: recorded as "
                               "errors and not cached; run again to retry them")

    def generation_config(self) -> GenerationConfig:
        return decoding_config(self.suite, self.answer)


def decoding_config(suite: Suite, answer: AnswerMode) -> GenerationConfig:
    """The suite's decoding; with answer=constrained limited to its labels or its JSON fields, with
    room for a whole JSON object."""
    if answer.mode != "constrained":
        return suite.generation
    constraint = constraint_for(suite)
    return replace(suite.generation, constraint=constraint,
                   max_new_tokens=constraint.max_new_tokens(suite.generation.max_new_tokens))


def constraint_for(suite: Suite) -> Constraint:
    """answer=constrained: the suite's label set (classification) or a JSON object of its fields."""
    if suite.task == "classification":
        return Constraint(labels=tuple(suite.labels), kind="choice")
    return Constraint(fields=tuple(suite.fields), kind="json")


def prediction_identity(strategy: Any, prepared: Prepared, backend: Backend, suite: Suite,
                        answer: AnswerMode | None = None) -> dict[str, Any]:
    """What a strategy's cached generations depend on besides each prompt: its kind and options,
    what prepare() built, the weights of the adapter it decodes with, the model, the decoding."""
    adapter = None
    if prepared.adapter is not None:
        weights = sorted(Path(prepared.adapter).glob("*.safetensors"))
        adapter = [sha256_file(w) for w in weights] or str(prepared.adapter)
    neutral: frozenset[str] = getattr(strategy, "neutral_options", frozenset())
    params = {k: v for k, v in strategy.params.items() if k not in neutral}
    identity = {"strategy": {"kind": strategy.kind, "params": params, "artifacts": prepared.artifacts,
                             "adapter": adapter},
                "model": backend.identity(), "decoding": suite.generation.fingerprint()}
    mode = answer.fingerprint() if answer is not None else None
    if mode is not None:  # free decoding keeps the keys it always had
        identity["answer"] = {**mode, **({"labels": list(suite.labels)} if answer and answer.mode == "choice" else {})}
        if answer and answer.mode == "constrained":
            identity["decoding"] = decoding_config(suite, answer).fingerprint()
    return identity


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
