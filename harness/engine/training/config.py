"""LoRA hyper-parameters, the training report, and the constants of the cache formats."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# Bump when the loop changes what it produces, so old cache entries are not reused.
# v2: each epoch's batch order comes from its own seeded generator (what makes resuming simple).
TRAINING_FORMAT = "lora-loop/v2"
REPORT_FILE = "train_report.json"
CHECKPOINT_FORMAT = "lora-checkpoint/v1"
CHECKPOINT_MANIFEST = "manifest.json"
CHECKPOINT_LORA = "lora.safetensors"  # the trainable (LoRA) parameters
CHECKPOINT_STATE = "state.pt"  # optimizer state and RNG states: tensors and plain values only
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
IGNORE = -100


@dataclass(frozen=True)
class TrainConfig:
    """LoRA hyper-parameters. The defaults learn a classification suite of ~150 short examples
    on the 135M default model in about two CPU minutes (measurements: bench/sft.py, the README)."""

    # 3 epochs, not 2: on poem-sentiment accuracy 0.51 -> 0.79, on banking-intents 0.87 -> 0.98
    epochs: int = 3
    lr: float = 1e-3  # high for LoRA, on purpose: ~60 optimizer steps in all (3e-4 and 2e-3 measured worse at 2 epochs)
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0  # a few epochs barely overfit; dropout costs a copy of the input per adapted layer
    # Every linear layer but the output head, whatever the architecture calls them (on Llama:
    # exactly q/k/v/o/gate/up/down_proj, so the same adapter as naming them).
    target_modules: tuple[str, ...] = ("all-linear",)
    batch_size: int = 8  # examples per micro-batch (packed into one row)
    grad_accum: int = 1  # micro-batches per optimizer step
    max_len: int = 1024  # longer examples are skipped (and counted), never silently truncated
    warmup: float = 0.1  # share of optimizer steps with a linear warm-up; cosine decay after
    weight_decay: float = 0.0
    seed: int = 0
    # True: each micro-batch packed into one row (no padding). False: length-grouped, padded
    # batches (~1% padding on short examples), measured ~1.2-1.5x faster on a CPU: a packed row
    # pays attention over its whole length, and a dense block mask, where separate rows do not.
    packing: bool = False
    max_val_examples: int = 256  # validation loss on at most this many examples (cost on CPU)
    # auto: bf16 autocast where the hardware multiplies bf16 natively (CUDA with bf16, CPUs with
    # AVX512-BF16 or AMX: ~1.5x on the default model), else fp32. LoRA weights stay fp32.
    precision: str = "auto"
    # Optimizer steps between mid-epoch checkpoints (there is one at each epoch end as well);
    # 0: epoch ends only. Not part of the adapter key: where the loop saves changes nothing.
    # 50: on the 135M default model a checkpoint (59 MB) takes ~0.2-0.3 s: ~0.3% of 50 CPU steps,
    # ~2% of 50 steps on an H100 (measured).
    checkpoint_every: int = 50
    # Memory options for large models. Gradient checkpointing recomputes activations in the
    # backward pass (about a third more compute, far less memory; the same gradients). quantize
    # "4bit": QLoRA, the frozen base weights in NF4 through bitsandbytes (CUDA only).
    gradient_checkpointing: bool = False
    quantize: str = "none"  # none | 4bit
    # Data-parallel processes (distributed.py, launch.py): each takes batch_size examples of every
    # global micro-batch of batch_size x processes. In the adapter key only through that global batch.
    processes: int = 1
    # none: every process holds the whole model (DDP); fsdp: FSDP2 shards the weights over the
    # processes (fsdp.py), for a model that does not fit one device. Not in the adapter key: the same steps.
    shard: str = "none"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


@dataclass
class TrainReport:
    loss_curve: list[list[float]] = field(default_factory=list)  # [[step, mean token loss]]
    val_loss: list[list[float]] = field(default_factory=list)  # [[epoch, loss]]; epoch 0 = before training
    tokens_per_s: float = 0.0  # non-padding tokens per second of training steps
    padding_share: float = 0.0  # padded / all tokens fed to the model
    train_tokens: int = 0  # non-padding tokens over all epochs
    target_tokens: int = 0  # tokens the loss was computed on, over all epochs
    seconds: float = 0.0  # wall time of the whole training (load, steps, validation, save, earlier runs)
    steps: int = 0
    epochs: int = 0
    examples: int = 0
    skipped: int = 0  # examples longer than max_len
    device: str = "cpu"
    precision: str = "fp32"
    resumed_from_step: int = 0  # > 0: continued from a checkpoint of an interrupted training
    processes: int = 1  # data-parallel training processes
    global_batch: int = 0  # examples per optimizer step: batch_size x grad_accum x processes
    shard: str = "none"  # fsdp: the weights were sharded over the processes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainReport:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def steps_layout(n_train: int, config: TrainConfig) -> tuple[int, int]:
    """(global micro-batches, optimizer steps) per epoch."""
    micro = math.ceil(n_train / (config.batch_size * config.processes))
    return micro, math.ceil(micro / config.grad_accum)
