"""`sft` and `sft+rag`: a LoRA adapter trained on the train split, decoded by the shared engine.

`sft` trains on exactly the zero-shot prompt `build_messages(suite, input)`, so against `prompt`
the only difference is the weights. `sft+rag` is retrieval-augmented fine-tuning: every train
input gets the passages the retriever finds for it, exactly as a test input will, and the
adapter learns on those prompts. Nothing is excluded or injected (no oracle documents, no
removal of a train example's own source document): the model learns to use, or to ignore, the
passages it will really be given at test time, which is the RAFT idea without its tuned mix.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from rich.markup import escape

from harness.core.errors import HarnessError
from harness.core.types import Chat, Example, Prompt, Suite
from harness.engine.context import Prepared, StrategyContext
from harness.engine.prompting import build_messages, target_text
from harness.engine.training import TrainConfig, TrainedAdapter
from harness.engine.training.fsdp import SHARD_CHOICES

from .base import Strategy
from .rag import RETRIEVAL_OPTIONS

# The hyper-parameters a user may set, with the defaults measured on the 135M default model.
TRAIN_OPTIONS: dict[str, Any] = {
    "epochs": TrainConfig.epochs,
    "lr": TrainConfig.lr,
    "rank": TrainConfig.rank,
    "alpha": TrainConfig.alpha,
    "dropout": TrainConfig.dropout,
    "target_modules": TrainConfig.target_modules,
    "batch_size": TrainConfig.batch_size,
    "grad_accum": TrainConfig.grad_accum,
    "max_len": TrainConfig.max_len,
    "warmup": TrainConfig.warmup,
    "weight_decay": TrainConfig.weight_decay,
    "packing": TrainConfig.packing,
    "precision": TrainConfig.precision,
    "checkpoint_every": TrainConfig.checkpoint_every,  # optimizer steps; 0: at epoch ends only
    "gradient_checkpointing": TrainConfig.gradient_checkpointing,
    "quantize": TrainConfig.quantize,
    # Data-parallel training processes (gloo on the CPU, one CUDA GPU each): batch_size is per
    # process, the global batch batch_size x grad_accum x processes (harness.engine.training.launch).
    "processes": TrainConfig.processes,
    # fsdp: the processes shard the weights (FSDP2) instead of each holding them all (DDP); zero1,
    # zero2, zero3: DeepSpeed ZeRO shards the optimizer state, + gradients, + weights. The same adapter.
    # An accelerate FSDP or DeepSpeed config sets it for a launched run (harness.engine.training.fsdp, zero).
    "shard": TrainConfig.shard,
}
# `seeds=3`: one adapter per training seed (the run's seed, +1, +2), scored as the mean over seeds
# (harness.scoring.seeds); `seeds=1+5+9` (TOML: [1, 5, 9]) names the seeds. 1 is a plain run.
SEED_OPTION: dict[str, Any] = {"seeds": 1}


def parse_seeds(strategy: str, raw: Any) -> int | tuple[int, ...]:
    """The `seeds` option: a count (int) or the training seeds themselves (a tuple), checked."""
    try:
        if isinstance(raw, str) and ("+" in raw or "," in raw):
            raw = [int(x) for x in raw.replace("+", ",").split(",") if x.strip()]
        elif isinstance(raw, str):
            raw = int(raw)
    except ValueError:
        raw = None
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
        return raw
    if isinstance(raw, (list, tuple)) and raw and all(isinstance(x, int) and not isinstance(x, bool)
                                                      and 0 <= x < 2**32 for x in raw) and len(set(raw)) == len(raw):
        return tuple(raw)
    raise HarnessError(f"strategy '{strategy}': seeds should be a number of training seeds (seeds=3) or distinct seeds "
                       "from 0 to 2**32-1 (seeds=1+5+9 on the command line, seeds = [1, 5, 9] in TOML)")


def link_or_copy_tree(src: Path, dest: Path) -> None:
    """Replace `dest` with the files of `src`: hard links where possible, else copies."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, copy_function=_link_or_copy)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


def safe_name(name: str) -> str:
    """A strategy name as a folder name: `sft:epochs=3` -> `sft_epochs_3`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "adapter"


class SftStrategy(Strategy):
    kind = "sft"
    options: ClassVar[dict[str, Any]] = {**TRAIN_OPTIONS, **SEED_OPTION}
    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "precision": ("auto", "bf16", "fp32"), "quantize": ("none", "4bit"), "shard": SHARD_CHOICES}
    # seeds: each seed's adapter is keyed by its own TrainConfig.seed; the count itself changes nothing cached.
    # processes: what it changes (the global batch) is in the adapter key, which the artifacts name.
    # shard: where the weights live while training changes no step.
    neutral_options: ClassVar[frozenset[str]] = frozenset({"checkpoint_every", "seeds", "processes", "shard"})
    needs_local_weights: ClassVar[bool] = True

    def __init__(self, name: str | None = None, **params: Any):
        seeds = params.pop("seeds", 1)
        super().__init__(name, **params)
        self.params["seeds"] = parse_seeds(self.name, seeds)
        self.trained: TrainedAdapter | None = None
        self._adapter_rel = ""

    def check_params(self) -> None:
        p = self.params
        problems = [
            f"{key} must be at least {low}"
            for key, low in (
                ("epochs", 1),
                ("rank", 1),
                ("alpha", 1),
                ("batch_size", 1),
                ("grad_accum", 1),
                ("max_len", 16),
                ("checkpoint_every", 0),
                ("processes", 1),
            )
            if int(p[key]) < low
        ]
        if not float(p["lr"]) > 0:
            problems.append("lr must be positive")
        if not 0 <= float(p["dropout"]) < 1:
            problems.append("dropout must be in [0, 1)")
        if not 0 <= float(p["warmup"]) < 1:
            problems.append("warmup is a share of the steps, in [0, 1)")
        if not p["target_modules"]:
            problems.append("target_modules is empty (e.g. q_proj+v_proj, or all-linear)")
        if problems:
            raise HarnessError(f"strategy '{self.name}': " + "; ".join(problems))

    def check_device(self, device: str) -> None:
        from harness.engine.training.launch import check_processes

        try:  # enough GPUs, a device DDP runs on
            check_processes(self.params["processes"], device)
        except HarnessError as e:
            raise HarnessError(f"strategy '{self.name}': {e}") from None
        if self.params["shard"] != "none" and self.params["quantize"] == "4bit":
            raise HarnessError(f"strategy '{self.name}': shard={self.params['shard']} and quantize=4bit together "
                               "are not supported "
                               "(bitsandbytes' 4-bit weights are not sharded here): pick one")
        if str(self.params["shard"]).startswith("zero") and self.params["processes"] != 1:
            from harness.engine.training.zero import require_deepspeed

            try:  # before any work, not in each training process
                require_deepspeed()
            except HarnessError as e:
                raise HarnessError(f"strategy '{self.name}': shard={self.params['shard']}: {e}") from None
        if self.params["quantize"] == "4bit" and not device.startswith("cuda"):
            raise HarnessError(f"strategy '{self.name}': quantize=4bit (QLoRA) needs a CUDA GPU, and this run is on "
                               f"{device}: drop it here, or use gradient_checkpointing=true to save memory")

    def check(self, suite: Suite) -> None:
        if not suite.train:
            raise HarnessError(
                f"strategy '{self.name}': suite '{suite.name}' has no train examples to fine-tune on"
            )

    def training_seeds(self, run_seed: int) -> tuple[int, ...]:
        """The seeds to train one adapter each with: the run's seed and the next ones, or those given."""
        seeds = self.params["seeds"]
        return seeds if isinstance(seeds, tuple) else tuple(run_seed + i for i in range(seeds))

    def train_config(self, seed: int) -> TrainConfig:
        p = self.params
        return TrainConfig(
            epochs=int(p["epochs"]),
            lr=float(p["lr"]),
            rank=int(p["rank"]),
            alpha=int(p["alpha"]),
            dropout=float(p["dropout"]),
            target_modules=tuple(str(m) for m in p["target_modules"]),
            batch_size=int(p["batch_size"]),
            grad_accum=int(p["grad_accum"]),
            max_len=int(p["max_len"]),
            warmup=float(p["warmup"]),
            weight_decay=float(p["weight_decay"]),
            seed=seed,
            packing=bool(p["packing"]),
            precision=str(p["precision"]),
            checkpoint_every=int(p["checkpoint_every"]),
            gradient_checkpointing=bool(p["gradient_checkpointing"]),
            quantize=str(p["quantize"]),
            processes=int(p["processes"]),
            shard=str(p["shard"]),
        )

    # -- what the adapter is trained on and decoded with: overridden by sft+rag ---------------
    def _setup(self, suite: Suite, ctx: StrategyContext) -> dict[str, Any]:
        """Anything prompts() needs besides the suite (sft+rag builds its index here); returns
        what it built, for the cache identity."""
        return {}

    def _chats(self, examples: Sequence[Example]) -> list[Prompt]:
        return [Prompt(build_messages(self.suite, ex.input)) for ex in examples]

    def prepare(self, suite: Suite, ctx: StrategyContext) -> Prepared:
        self.suite = suite
        self.check(suite)
        artifacts = self._setup(suite, ctx)

        def pairs(examples: Sequence[Example]) -> list[tuple[Chat, str]]:
            return [
                (p.messages, target_text(ex)) for p, ex in zip(self._chats(examples), examples, strict=True)
            ]

        self.trained = ctx.train_adapter(
            pairs(suite.train), pairs(suite.validation), self.train_config(ctx.seed),
            description=f"train {escape(self.name)}",
        )
        # In the run folder too, so the run stays self-contained when the cache is cleared
        # (hard links where the file system allows: a cached rerun copies nothing).
        dest = Path(ctx.run_dir) / "adapters" / safe_name(self.name)
        link_or_copy_tree(self.trained.path, dest)
        self._adapter_rel = (
            str(dest.relative_to(ctx.run_dir)) if dest.is_relative_to(ctx.run_dir) else str(dest)
        )
        return Prepared(artifacts={**artifacts, "adapter": self.trained.key}, adapter=dest)

    def prompts(self, examples: Sequence[Example]) -> list[Prompt]:
        return self._chats(examples)

    def details(self) -> dict[str, Any]:
        if self.trained is None:
            return {}
        r = self.trained.report
        return {
            "training": {
                "loss_curve": r.loss_curve,
                "val_loss": r.val_loss,
                "tokens_per_s": r.tokens_per_s,
                "padding_share": r.padding_share,
                "train_tokens": r.train_tokens,
                "target_tokens": r.target_tokens,
                "examples": r.examples,
                "skipped_too_long": r.skipped,
                "adapter_path": self._adapter_rel,
                "adapter_key": self.trained.key,
                "epochs": r.epochs,
                "steps": r.steps,
                "seconds": r.seconds,
                "device": r.device,
                "precision": r.precision,
                "cached": self.trained.cached,
                "resumed_from_step": r.resumed_from_step,  # > 0: a killed training picked up from its checkpoint
                "processes": r.processes,  # data-parallel training processes
                "shard": r.shard,  # fsdp: the weights were sharded over them
                # examples per optimizer step, over all processes (0 in reports cached before it was recorded)
                "global_batch": r.global_batch or int(self.params["batch_size"]) * int(self.params["grad_accum"]),
            }
        }


class SftRagStrategy(SftStrategy):
    """Retrieval-augmented fine-tuning: train and decode on prompts with retrieved passages."""

    kind = "sft+rag"
    # The same retrieval defaults as `rag`, so by default both see exactly the same passages.
    options: ClassVar[dict[str, Any]] = {**TRAIN_OPTIONS, **SEED_OPTION, **RETRIEVAL_OPTIONS}

    def check_params(self) -> None:
        from .rag import check_retrieval_params

        super().check_params()
        check_retrieval_params(self.name, self.params)

    def needs_embedder(self) -> bool:
        return True

    def check(self, suite: Suite) -> None:
        from .rag import require_corpus

        super().check(suite)
        require_corpus(suite, self.kind)

    def _setup(self, suite: Suite, ctx: StrategyContext) -> dict[str, Any]:
        from .rag import retriever_from_options

        self.retriever, fp = retriever_from_options(suite, ctx, self.params)
        return {"index": fp}

    def _chats(self, examples: Sequence[Example]) -> list[Prompt]:
        from .rag import prompts_with_passages

        return prompts_with_passages(self.suite, self.retriever, examples)

    def prompts(self, examples: Sequence[Example]) -> list[Prompt]:
        self.retriever.measure_recall(examples)  # the scored examples only, not the train inputs
        return self._chats(examples)

    def details(self) -> dict[str, Any]:
        out = super().details()
        if hasattr(self, "retriever"):
            out.update(self.retriever.details())
        return out
