"""LoRA fine-tuning: one plain PyTorch loop, no HF Trainer, cached by what the adapter depends on.

Why a loop of our own: on a CPU every wasted token costs seconds. This loop
- batches by length (sorted into micro-batches, the batches shuffled per epoch: ~1% padding on
  short examples), or packs each micro-batch into one row (position_ids restart per sequence;
  transformers' masks turn that into a block-diagonal causal mask: no padding, no cross-talk, the
  same loss as unpacked, see tests/test_training.py). Packing is off by default: on a CPU the
  packed row's attention over its full length costs more than the padding it saves;
- multiplies in bf16 (autocast, fp32 LoRA weights) where the hardware does it natively;
- projects onto the vocabulary only where a target token is predicted (`logits_to_keep` with a
  boolean mask): the 49k-wide head is a fifth of a small model's compute;
- trains on exactly the tokens the decoder will see: the prompt as the engine renders it, then
  the answer and the end-of-turn token; loss on the answer tokens only.

The adapter is saved in standard PEFT format (`PeftModel.from_pretrained` loads it) under
cache_root()/adapters/KEY, beside `train_report.json`, written atomically so an interrupted
training leaves no entry behind. Every `checkpoint_every` optimizer steps, and at each epoch end,
the loop saves its state (LoRA weights, optimizer, RNG, position in the data, the partial report)
under cache_root()/checkpoints/KEY; a rerun resumes from there and trains the same adapter as an
uninterrupted run (bit for bit on the CPU). The checkpoint is deleted once the adapter is cached.

The package: config (hyper-parameters, report), data (tokenising, batching), loop (the training
loop), checkpoint (resume), and here the cache entry point `train_adapter`.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.core.cache import atomic_dir, cache_root, fingerprint
from harness.core.errors import HarnessError
from harness.core.types import Chat
from harness.engine.models import end_token_ids
from harness.engine.training.checkpoint import Checkpoints
from harness.engine.training.config import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_LORA,
    CHECKPOINT_MANIFEST,
    CHECKPOINT_STATE,
    LLAMA_PROJECTIONS,
    REPORT_FILE,
    TRAINING_FORMAT,
    TrainConfig,
    TrainReport,
)
from harness.engine.training.data import (
    Batch,
    Encoded,
    collate,
    encode_all,
    encode_pair,
    plan_batches,
    sequences_sha256,
)
from harness.engine.training.launch import launch_training
from harness.engine.training.launched import channel, launched_config, train_launched
from harness.engine.training.loop import (
    batch_loss_sum,
    cpu_threads,
    evaluate,
    fit_lora,
    load_for_training,
    resolve_precision,
    train_lora,
)

__all__ = [
    "CHECKPOINT_FORMAT", "CHECKPOINT_LORA", "CHECKPOINT_MANIFEST", "CHECKPOINT_STATE", "LLAMA_PROJECTIONS",
    "REPORT_FILE", "TRAINING_FORMAT", "Batch", "Checkpoints", "Encoded", "TrainConfig", "TrainReport",
    "TrainedAdapter", "adapter_key", "batch_loss_sum", "collate", "cpu_threads", "encode_all", "encode_pair",
    "end_token_ids", "evaluate", "fit_lora", "load_for_training", "plan_batches", "resolve_precision",
    "sequences_sha256", "train_adapter", "train_lora",
]

log = logging.getLogger(__name__)


# -- cache -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainedAdapter:
    path: Path  # the cache entry: a PEFT adapter folder plus train_report.json
    report: TrainReport
    key: str
    cached: bool


def adapter_key(
    model_id: str,
    device_type: str,
    train: Sequence[Encoded],
    validation: Sequence[Encoded],
    config: TrainConfig,
) -> str:
    return fingerprint(
        {
            "format": TRAINING_FORMAT,
            "model": model_id,
            "device": device_type,  # bf16 autocast on a GPU trains a (slightly) different adapter
            "train": sequences_sha256(train),
            # validation only shapes the report, but a cached report must match the request
            "validation": sequences_sha256(list(validation)[: config.max_val_examples]),
            "config": _key_config(config),
        },
        length=24,
    )


def _key_config(config: TrainConfig) -> dict[str, Any]:
    """The config as far as it shapes the adapter. Not where the loop saves (checkpoint_every); and the
    processes only through the global micro-batch: 1 process x batch 4 and 2 x 2 run the same optimizer
    steps (distributed.py) and share one cache entry. With one process the key is what it always was."""
    d = {k: v for k, v in config.to_json().items() if k not in ("checkpoint_every", "processes", "shard")}
    d["batch_size"] = config.batch_size * config.processes
    return d


def train_adapter(
    *,
    model_path: str,
    model_id: str,
    tokenizer: Any,
    train_pairs: Sequence[tuple[Chat, str]],
    config: TrainConfig,
    validation_pairs: Sequence[tuple[Chat, str]] = (),
    end_ids: Sequence[int] | None = None,
    device: str = "cpu",
    progress: Any = None,
    description: str = "train",
    cache_dir: Path | None = None,
) -> TrainedAdapter:
    """Train (or reuse) the adapter for these (chat, answer) pairs; cached under adapters/KEY
    of `cache_dir` (default: cache_root()). A training killed before the end resumes from its
    last checkpoint, kept under checkpoints/KEY until the adapter is in the cache."""
    end_ids = list(end_ids) if end_ids is not None else end_token_ids(tokenizer)
    train, skipped = encode_all(tokenizer, train_pairs, end_ids, config.max_len)
    if not train:
        raise HarnessError(
            f"all {len(train_pairs)} training examples are longer than max_len={config.max_len} tokens: raise max_len"
        )
    validation, _ = encode_all(tokenizer, validation_pairs, end_ids, config.max_len)
    config = replace(config, precision=resolve_precision(config.precision, device))  # the key names what ran
    if channel() is not None:  # `torchrun ... -m harness run`: the launcher's processes train
        config = launched_config(config)
    key = adapter_key(model_id, device.split(":")[0], train, validation, config)
    root = cache_dir or cache_root()
    final = root / "adapters" / key
    if (final / "adapter_config.json").exists() and (final / REPORT_FILE).exists():
        report = TrainReport.from_json(json.loads((final / REPORT_FILE).read_text()))
        return TrainedAdapter(final, report, key, cached=True)
    with atomic_dir(final) as tmp:
        # launch: N worker processes of our own; train_launched: the ranks of the user's launcher
        run = train_lora if config.processes == 1 else train_launched if channel() else launch_training
        report = run(
            model_path,
            tokenizer,
            train,
            tmp,
            config,
            validation=validation,
            device=device,
            progress=progress,
            description=description,
            skipped=skipped,
            checkpoint_dir=root / "checkpoints" / key,  # outside tmp: it must survive a failure
        )
    shutil.rmtree(root / "checkpoints" / key, ignore_errors=True)
    return TrainedAdapter(final, report, key, cached=False)
