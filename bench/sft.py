"""Training throughput: our LoRA loop (harness.training) against a plain TRL SFTTrainer.

Same model (the default smollm2-135m-instruct), same examples (the first N of a built-in suite's
train split, as the `sft` strategy renders them), same LoRA settings, optimizer settings, batch
size, epochs and precision. Throughput is non-padding tokens per second of training (model
loading excluded on both sides). TRL gets its best options for this hardware, named in the
output: loss on the completion only, no gradient checkpointing (TRL turns it on by default; our
loop does not use it), and its padding-free mode where asked (`--trl padding_free`).

    .venv/bin/python bench/sft.py [--suite suites/poem-sentiment] [--examples 128] [--epochs 1]

Needs the bench extras: `pip install trl datasets`. The last line is `speedup: N.NNx`.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.core.types import Chat  # noqa: E402
from harness.engine.models import DEFAULT_MODEL, load_tokenizer, materialize, resolve  # noqa: E402
from harness.engine.prompting import build_messages, target_text  # noqa: E402
from harness.engine.training import (  # noqa: E402
    TrainConfig,
    cpu_threads,
    encode_all,
    end_token_ids,
    fit_lora,
    load_for_training,
    resolve_precision,
)

ROOT = Path(__file__).resolve().parent.parent


def load_pairs(suite_dir: Path, n: int) -> tuple[str, list[tuple[Chat, str]]]:
    """(chat, answer) pairs from a suite's train split; a synthetic set if the suite is missing."""
    if (suite_dir / "suite.toml").exists():
        from harness.core.suites import load_suite

        suite = load_suite(str(suite_dir))
        train = list(suite.train)[:n]
        return f"{suite.name} train[:{len(train)}]", [
            (build_messages(suite, ex.input), target_text(ex)) for ex in train
        ]
    # Fallback: short sentiment-like lines, the shape of the built-in classification suites.
    rng = random.Random(0)
    words = (
        "the night sea dark bright love sorrow heart golden tears joy gloom morning light cold warm".split()
    )
    system = {
        "role": "system",
        "content": "Classify the sentiment of this line. Answer with one label: negative; positive.",
    }
    pairs = []
    for _ in range(n):
        line = " ".join(rng.choice(words) for _ in range(rng.randint(6, 14)))
        pairs.append(([system, {"role": "user", "content": line}], rng.choice(["negative", "positive"])))
    return f"synthetic ({suite_dir} not found), {n} examples", pairs


def bench_ours(
    path: str, tok: Any, pairs: list[tuple[Chat, str]], config: TrainConfig, device: str
) -> dict[str, Any]:
    encoded, skipped = encode_all(tok, pairs, end_token_ids(tok), config.max_len)
    model = load_for_training(path, config.target_modules, config, device)
    start = time.perf_counter()
    report = fit_lora(model, encoded, config, pad_id=tok.pad_token_id, device=device)
    seconds = time.perf_counter() - start
    losses = [loss for _, loss in report.loss_curve]
    per_epoch = max(1, len(losses) // config.epochs)
    return {
        "tokens": report.train_tokens,
        "seconds": seconds,
        "tokens_per_s": report.train_tokens / seconds,
        "padding_share": report.padding_share,
        "loss_first": losses[0],
        "loss_last_epoch": sum(losses[-per_epoch:]) / per_epoch,
        "skipped": skipped,
    }


def bench_trl(
    path: str, tok: Any, pairs: list[tuple[Chat, str]], config: TrainConfig, device: str, mode: str
) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    data = Dataset.from_list(
        [{"prompt": chat, "completion": [{"role": "assistant", "content": answer}]} for chat, answer in pairs]
    )
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
    padding_free = mode == "padding_free"
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(
            output_dir=out,
            num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size,
            gradient_accumulation_steps=config.grad_accum,
            learning_rate=config.lr,
            lr_scheduler_type="cosine",
            warmup_steps=config.warmup,  # a float below 1 is a share of the steps
            weight_decay=config.weight_decay,
            max_length=None if padding_free else config.max_len,
            padding_free=padding_free,
            completion_only_loss=True,
            gradient_checkpointing=False,
            bf16=config.precision == "bf16",
            use_cpu=device == "cpu",
            seed=config.seed,
            logging_steps=10_000,
            save_strategy="no",
            report_to="none",
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        lora = LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=list(config.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=data, processing_class=tok, peft_config=lora
        )
        prepared: Any = trainer.train_dataset  # TRL's tokenised rows: what it really trains on
        tokens = sum(len(ids) for ids in prepared["input_ids"]) * config.epochs
        start = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - start
    return {
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "train_loss": result.training_loss,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=str(ROOT / "suites" / "poem-sentiment"))
    ap.add_argument("--examples", type=int, default=128, help="train examples used by both (default 128)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--trl", choices=["padded", "padding_free"], default="padded", help="TRL batching mode")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    opts = ap.parse_args()

    import torch

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        torch.set_num_threads(cpu_threads())
    path = materialize(resolve(DEFAULT_MODEL))
    tok = load_tokenizer(path)
    what, pairs = load_pairs(Path(opts.suite), opts.examples)
    config = TrainConfig(epochs=opts.epochs, precision=resolve_precision(TrainConfig.precision, device))
    print(
        f"data: {what}; model {DEFAULT_MODEL} on {device} ({torch.get_num_threads()} threads), {config.precision}"
    )
    print(
        f"lora: r={config.rank} alpha={config.alpha} dropout={config.dropout} targets={'+'.join(config.target_modules)}; "
        f"lr={config.lr} cosine warmup={config.warmup}; batch={config.batch_size}x{config.grad_accum}; epochs={config.epochs}"
    )
    # Other processes on the machine skew both numbers (2 busy cores can cost 10x): say so.
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    ours = bench_ours(path, tok, pairs, config, device)
    print(
        f"ours: {ours['tokens']} tokens in {ours['seconds']:.1f} s = {ours['tokens_per_s']:.1f} tok/s "
        f"(length-grouped batches, padding {ours['padding_share']:.1%}; loss {ours['loss_first']:.3f} -> "
        f"{ours['loss_last_epoch']:.3f} last-epoch mean)"
    )
    trl = bench_trl(path, tok, pairs, config, device, opts.trl)
    print(
        f"trl SFTTrainer ({opts.trl}, completion_only_loss, no gradient checkpointing): {trl['tokens']} tokens in "
        f"{trl['seconds']:.1f} s = {trl['tokens_per_s']:.1f} tok/s (mean train loss {trl['train_loss']:.3f})"
    )
    print(
        f"load average after: {os.getloadavg()[0]:.2f} (the benchmark itself adds about {torch.get_num_threads()})"
    )
    print(f"speedup: {ours['tokens_per_s'] / trl['tokens_per_s']:.2f}x")


if __name__ == "__main__":
    main()
