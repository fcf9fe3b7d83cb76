"""Training throughput: our LoRA loop (harness.training) against a plain TRL SFTTrainer.

Same model (the default smollm2-135m-instruct), same examples (the first N of a built-in suite's
train split, as the `sft` strategy renders them), same LoRA settings, optimizer settings, batch
size, epochs and precision. Throughput is non-padding tokens per second of training (model
loading excluded on both sides). TRL gets its best options for this hardware, named in the
output: loss on the completion only, no gradient checkpointing (TRL turns it on by default; our
loop does not use it), and its padding-free mode where asked (`--trl padding_free`).

    .venv/bin/python bench/sft.py [--suite suites/poem-sentiment] [--examples 128] [--epochs 1] [--model NAME]

TRL comes with the bench extras (`pip install trl datasets`); without them the script still measures
our loop and ends with `speedup: n/a (pip install trl datasets)`. Otherwise the last line is
`speedup: N.NNx` (our tokens/s over TRL's), then `peak: 0.NN`: our training FLOPs per second (the
formula below) over a matmul probe of this machine in the training precision (harness.engine.probe).

MFU (model FLOPs utilisation, on a GPU) = FLOPs per token x tokens/s / the GPU's dense bf16 peak, with

    FLOPs per token = 4 * N_base + 6 * N_lora

N_base: the weights of the base model's linear layers (the output head included, embeddings as a lookup
not); N_lora: the LoRA A and B weights. A frozen base weight costs 2 FLOPs per token forward and 2
backward (the gradient of its input, which LoRA layers below still need; no weight gradient); a LoRA
weight 6 (forward, input and weight gradients), the usual 6N of full training. Attention scores
(~ sequence length x hidden size per layer and token) are left out, as is usual for short sequences:
the figure slightly understates the work. It counts every token fed, as if every position were
projected onto the vocabulary; our loop projects only answer positions, so its MFU by this formula
credits it with head work it skips (the same formula for both sides keeps the comparison fair:
tokens/s). Peaks (dense bf16, no sparsity): H100 SXM and H200 989 TFLOP/s, H100 PCIe 756, A100 312.
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
# Dense bf16 peak in TFLOP/s by a substring of torch.cuda.get_device_name (most specific first).
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H200", 989.0), ("H100", 989.0), ("H800", 989.0), ("A100", 312.0),
                    ("A800", 312.0), ("L40S", 362.0), ("A10G", 70.0), ("L4", 121.0))


def device_name(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()}"


def peak_flops(name: str) -> float | None:
    return next((tf * 1e12 for key, tf in PEAK_BF16_TFLOPS if key in name), None)


def flops_per_token(model: Any) -> tuple[float, int, int]:
    """(4 * N_base + 6 * N_lora, N_base, N_lora) of a PEFT model (see the module docstring)."""
    import torch

    n_base = n_lora = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            if "lora_" in name:
                n_lora += module.weight.numel()
            else:
                n_base += module.weight.numel()
    return 4.0 * n_base + 6.0 * n_lora, n_base, n_lora


def mfu_text(device: str, name: str, per_token: float, tokens_per_s: float) -> str:
    if not device.startswith("cuda"):
        return "n/a (CPU)"
    peak = peak_flops(name)
    if peak is None:
        return f"n/a (no dense bf16 peak known for {name}: add it to PEAK_BF16_TFLOPS)"
    return f"{per_token * tokens_per_s / peak:.1%} of {peak / 1e12:.0f} TFLOP/s"


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
    per_token, n_base, n_lora = flops_per_token(model)
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
        "flops_per_token": per_token,
        "n_base": n_base,
        "n_lora": n_lora,
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
            # peft expands the bare string "all-linear", not a list holding it
            target_modules="all-linear" if tuple(config.target_modules) == ("all-linear",) else list(config.target_modules),
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


def compare_trl(path: str, tok: Any, pairs: list[tuple[Chat, str]], config: TrainConfig, device: str,
                mode: str, name: str, ours: dict[str, Any]) -> str:
    """Run TRL's SFTTrainer where it is installed; returns the `speedup: ...` line."""
    import importlib.util

    missing = [m for m in ("trl", "datasets") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"trl SFTTrainer: not measured ({' and '.join(missing)} not installed)")
        return "speedup: n/a (pip install trl datasets)"
    trl = bench_trl(path, tok, pairs, config, device, mode)
    print(
        f"trl SFTTrainer ({mode}, completion_only_loss, no gradient checkpointing): {trl['tokens']} tokens in "
        f"{trl['seconds']:.1f} s = {trl['tokens_per_s']:.1f} tok/s (mean train loss {trl['train_loss']:.3f})"
    )
    print(f"trl MFU: {mfu_text(device, name, ours['flops_per_token'], trl['tokens_per_s'])}")
    return f"speedup: {ours['tokens_per_s'] / trl['tokens_per_s']:.2f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=str(ROOT / "suites" / "poem-sentiment"))
    ap.add_argument("--examples", type=int, default=128, help="train examples used by both (default 128)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--precision", choices=["auto", "bf16", "fp32"], default=TrainConfig.precision,
                    help="training precision for both (default: auto, as sft trains)")
    ap.add_argument("--trl", choices=["padded", "padding_free"], default="padded", help="TRL batching mode")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--model", default=DEFAULT_MODEL, help=f"a packaged model alias or a folder (default {DEFAULT_MODEL})")
    opts = ap.parse_args()

    import torch

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        torch.set_num_threads(cpu_threads())
    name = device_name(device)
    path = materialize(resolve(opts.model))
    tok = load_tokenizer(path)
    what, pairs = load_pairs(Path(opts.suite), opts.examples)
    config = TrainConfig(epochs=opts.epochs, precision=resolve_precision(opts.precision, device))
    print(f"device: {device} ({name})")
    print(f"data: {what}; model {opts.model} on {device} ({torch.get_num_threads()} threads), {config.precision}")
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
    print(f"FLOPs per token: 4 x {ours['n_base']:,} base + 6 x {ours['n_lora']:,} LoRA = {ours['flops_per_token']:.3g}")
    print(f"MFU: {mfu_text(device, name, ours['flops_per_token'], ours['tokens_per_s'])}")
    speedup = compare_trl(path, tok, pairs, config, device, opts.trl, name, ours)
    print(
        f"load average after: {os.getloadavg()[0]:.2f} (the benchmark itself adds about {torch.get_num_threads()})"
    )
    from harness.engine.probe import best_fp32_gflops, matmul_gflops

    # fp32: the roofline is the faster of torch.matmul (MKL) and oneDNN, as in bench/generate.py
    probe, kernel = (matmul_gflops(device, "bfloat16"), "torch.matmul") if config.precision == "bf16" \
        else best_fp32_gflops(device)
    achieved = ours["flops_per_token"] * ours["tokens_per_s"] / 1e9
    print(f"ours: {achieved:.1f} GFLOP/s; matmul probe ({config.precision}, 2048^3, {kernel}): {probe:.1f} GFLOP/s")
    print(speedup)
    print(f"peak: {achieved / probe:.2f}")


if __name__ == "__main__":
    main()
