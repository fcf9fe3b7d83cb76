"""The training loop: length-grouped (or packed) micro-batches, answer-only loss, bf16 autocast where native,
gradient accumulation, cosine schedule, checkpoints (see checkpoint.py)."""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.core.cache import write_json_atomic
from harness.core.errors import HarnessError
from harness.engine.adapter_checks import (
    check_b_nonzero_params,
    check_b_nonzero_tensors,
    check_logits_move,
)
from harness.engine.training.checkpoint import Checkpoints, _Loop, restore_checkpoint, save_checkpoint
from harness.engine.training.config import REPORT_FILE, TrainConfig, TrainReport, steps_layout
from harness.engine.training.data import Batch, Encoded, collate, plan_batches
from harness.engine.training.distributed import Single, group_counts, shard
from harness.engine.training.lora_model import load_for_training
from harness.engine.training.shared_start import logits_after_shared_start, shares_start


def batch_loss_sum(model: Any, batch: Batch, device: str, precision: str = "fp32", share_start: bool = False) -> Any:
    """Sum of token cross-entropies over the batch's targets (divide by the step's count).

    `share_start` (see shared_start.shares_start): the tokens every row begins with run once, as one row."""
    import torch
    import torch.nn.functional as F

    inputs = {k: v.to(device) for k, v in batch.tensors.items()}
    with autocast(device, precision):
        logits = logits_after_shared_start(model, inputs, batch.shared) if share_start and batch.shared else None
        if logits is None:  # use_cache=False: a cache would also switch off the packed-sequence masks
            logits = model(**inputs, use_cache=False).logits
    logits = logits.reshape(-1, logits.shape[-1]).float()
    return (
        F.cross_entropy(logits, batch.targets.to(device), reduction="sum")
        if logits.numel()
        else torch.zeros(())
    )


def resolve_precision(precision: str, device: str) -> str:
    """`auto` -> `bf16` where bf16 matrix products are native, else `fp32`."""
    import torch

    if precision not in ("auto", "bf16", "fp32"):
        raise HarnessError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    caps = torch.cpu.get_capabilities() if device == "cpu" else {}
    # The CPU's flags, and the kernels torch may use: ATEN_CPU_CAPABILITY=avx2 (or a torch built
    # without AVX-512 kernels) leaves bf16 emulated even on a CPU that has it.
    kernels = torch.backends.cpu.get_cpu_capability() if device == "cpu" else ""
    native = bool(caps.get("avx512_bf16") or caps.get("amx_bf16")) and kernels.startswith("AVX512")
    return "bf16" if native else "fp32"


def autocast(device: str, precision: str) -> Any:
    import contextlib

    import torch

    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


# -- training ----------------------------------------------------------------------------------


def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def evaluate(model: Any, seqs: Sequence[Encoded], config: TrainConfig, pad_id: int, device: str,
             dist: Single | None = None, share_start: bool = False) -> float:
    """Mean token loss on the answer tokens of `seqs` (eval mode, no gradients). Under several
    processes each takes every world-th batch (of the unwrapped model) and the sums are added."""
    import torch

    dist = dist or Single()
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    size = config.batch_size
    with torch.no_grad():
        # The same number of forwards on every process (a sharded forward all-gathers): a process
        # whose batch of the last round is empty runs a stand-in it does not count.
        for first in range(0, len(seqs), size * dist.world):
            i = first + dist.rank * size
            part = seqs[i : i + size]
            if not part and not dist.sharded:
                break
            batch = collate(part or seqs[:1], config.packing, pad_id)
            loss = batch_loss_sum(model, batch, device, config.precision, share_start).item()
            if part:
                total += loss
                count += len(batch.targets)
    model.train(was_training)
    if dist.world > 1:
        total, summed = dist.sum([total, count])
        count = round(summed)
    return total / max(1, count)


def _epoch_plan(lengths: Sequence[int], config: TrainConfig, epoch: int) -> list[list[int]]:
    # A generator per epoch (a str seed is hashed with SHA-512: the same in every process), so a
    # resume needs only the epoch and the position in it, not a generator state.
    # The global micro-batch: every process plans the same batches and takes its shard of each.
    size = config.batch_size * config.processes
    return plan_batches(lengths, size, random.Random(f"{config.seed}:{epoch}"), config.packing)


def _start(
    checkpoints: Checkpoints | None,
    params: dict[str, Any],
    optimizer: Any,
    config: TrainConfig,
    n_train: int,
    device: str,
    dist: Single,
) -> _Loop:
    """The loop's state from the latest checkpoint, or a fresh one."""
    import torch

    shard = config.shard if config.processes > 1 else "none"
    global_batch = config.batch_size * config.grad_accum * config.processes
    if checkpoints is not None:
        loop = restore_checkpoint(checkpoints, params, optimizer, config, n_train, device, dist.localise)
        if loop is not None:  # a checkpoint crosses over between layouts: the report says this run's
            loop.report = replace(loop.report, device=device, processes=config.processes, shard=shard,
                                  global_batch=global_batch)
            return loop
    torch.manual_seed(config.seed)  # LoRA dropout draws from the global generator
    report = TrainReport(epochs=config.epochs, examples=n_train, device=device, precision=config.precision,
                         processes=config.processes, shard=shard, global_batch=global_batch)
    return _Loop(report)


def _step_batches(train: Sequence[Encoded], group: Sequence[Sequence[int]], config: TrainConfig, pad_id: int,
                  dist: Single) -> list[tuple[Batch, float]]:
    """This process's micro-batches of one optimizer step, with their weights (0: a stand-in that
    only keeps an empty shard in the gradient all-reduce)."""
    out = []
    for idx in group:
        part = shard(idx, dist.rank, dist.world) if dist.world > 1 else list(idx)
        out.append((collate([train[i] for i in part or idx[:1]], config.packing, pad_id), 1.0 if part else 0.0))
    return out


def _train_step(
    model: Any, batches: Sequence[tuple[Batch, float]], counts: tuple[int, int, int], optimizer: Any, lr: float,
    loop: _Loop, device: str, precision: str, dist: Single, share_start: bool = False,
) -> float:
    """One optimizer step over `batches` (this process's micro-batches); `counts` = (tokens, targets,
    slots) of the whole step over all processes. Returns the step's mean token loss."""
    t0 = time.perf_counter()
    n_targets = counts[1]
    loss_total = 0.0
    for i, (b, weight) in enumerate(batches):  # normalised by the whole step's targets: exact accumulation
        last = i == len(batches) - 1  # DDP all-reduces the gradients on the last backward only
        with dist.no_sync(model) if not last else contextlib.nullcontext():
            loss = batch_loss_sum(model, b, device, precision, share_start) / max(1, n_targets)
            if dist.world > 1:  # DDP averages over processes: scale so that the average is the sum
                loss = loss * (weight * dist.world)
            dist.backward(loss)
        loss_total += loss.item() / dist.world
    if dist.world > 1:
        loss_total = dist.sum([loss_total])[0]
    loop.report.train_tokens += counts[0]
    loop.report.target_tokens += counts[1]
    loop.slots += counts[2]
    for g in optimizer.param_groups:
        g["lr"] = lr
    dist.step(optimizer)
    loop.step += 1
    loop.step_seconds += time.perf_counter() - t0
    loop.report.loss_curve.append([loop.step, round(loss_total, 5)])
    return loss_total


def _prepare(model: Any, n_train: int, config: TrainConfig, checkpoints: Checkpoints | None, device: str,
             dist: Single) -> tuple[Any, dict[str, Any], Any, _Loop]:
    """(model wrapped for the processes, LoRA parameters, optimizer, loop state from a checkpoint or fresh)."""
    import torch

    model = dist.shard_model(model)  # in place, before the optimizer: FSDP replaces the parameters
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(params.values(), lr=config.lr, weight_decay=config.weight_decay)
    loop = _start(checkpoints, params, optimizer, config, n_train, device, dist)
    wrapped, optimizer = dist.prepare(model, optimizer, config)
    return wrapped, params, optimizer, loop


def fit_lora(
    model: Any,
    train: Sequence[Encoded],
    config: TrainConfig,
    *,
    pad_id: int,
    validation: Sequence[Encoded] = (),
    device: str = "cpu",
    progress: Any = None,
    description: str = "train",
    checkpoints: Checkpoints | None = None,
    dist: Single | None = None,
) -> TrainReport:
    """Train the LoRA parameters of `model` in place; returns the curves and throughput.

    With `checkpoints`, resume from the latest one and save new ones as training goes; the
    report's `seconds` is then the time the earlier runs spent (the caller adds its own).
    With `dist` (distributed.Accelerated) this process trains its shard of every micro-batch."""
    if not train:
        raise HarnessError("no training examples (all empty or longer than max_len)")
    dist = dist or Single()
    config = replace(config, precision=resolve_precision(config.precision, device), processes=dist.world)
    model.train()
    with _cpu_kernels(model, config, device, dist):  # fp32 on the CPU: oneDNN where it is faster here
        # `model` stays unwrapped for evaluation: a DDP forward on one process alone would wait for the others
        wrapped, params, optimizer, loop = _prepare(model, len(train), config, checkpoints, device, dist)
        total_steps = steps_layout(len(train), config)[1] * config.epochs
        warmup = max(1, round(config.warmup * total_steps)) if config.warmup > 0 else 0
        val = list(validation)[: config.max_val_examples]
        share = shares_start(model, config, device, dist)

        task = None
        if progress is not None:
            task = progress.add_task(description, total=total_steps, completed=loop.step, info="")
        if val and loop.step == 0:
            loop.report.val_loss.append([0, round(evaluate(model, val, config, pad_id, device, dist, share), 5)])
        for epoch in range(loop.epoch, config.epochs + 1):
            loop.epoch = epoch
            plan = _epoch_plan([len(s) for s in train], config, epoch)
            for first in range(loop.position, len(plan), config.grad_accum):
                group = plan[first : first + config.grad_accum]
                lr = config.lr * _lr_factor(loop.step, total_steps, warmup)
                loss = _train_step(wrapped, _step_batches(train, group, config, pad_id, dist),
                                   group_counts(train, group, dist.world, config.packing), optimizer, lr, loop, device,
                                   config.precision, dist, share)
                loop.position = first + config.grad_accum
                every = config.checkpoint_every
                if checkpoints and every > 0 and loop.step % every == 0 and loop.position < len(plan):
                    _checkpoint(checkpoints, loop, params, optimizer, device, dist)  # (epoch ends: below)
                if task is not None:
                    tps = loop.report.train_tokens / max(loop.step_seconds, 1e-9)
                    info = f"epoch {epoch}/{config.epochs} loss {loss:.3f} {tps:,.0f} tok/s"
                    progress.update(task, advance=1, info=info)
            if val:
                loop.report.val_loss.append([epoch, round(evaluate(model, val, config, pad_id, device, dist, share), 5)])
            loop.position = 0
            if checkpoints and epoch < config.epochs:  # after the last epoch: the adapter
                loop.epoch = epoch + 1
                _checkpoint(checkpoints, loop, params, optimizer, device, dist)
        return _finish(loop)


def _cpu_kernels(model: Any, config: TrainConfig, device: str, dist: Single) -> Any:
    """oneDNN for the frozen base linears of an fp32 training on the CPU, where it is faster here
    (harness.engine.onednn); not for sharded weights (DTensors, ZeRO partitions) or autocast."""
    if device != "cpu" or config.precision != "fp32" or dist.sharded:
        return contextlib.nullcontext()
    from harness.engine.onednn import fast_linears

    return fast_linears(model, training=True)


def _checkpoint(checkpoints: Checkpoints, loop: _Loop, params: dict[str, Any], optimizer: Any, device: str,
                dist: Single) -> None:
    """Every process gathers (sharded weights: a collective), only the main process writes."""
    if not (dist.is_main or dist.sharded):
        return
    lora, optimizer_state = dist.full_state(params, optimizer)
    if dist.is_main:
        save_checkpoint(checkpoints, loop, lora, optimizer_state, device)


def _finish(loop: _Loop) -> TrainReport:
    report = loop.report
    report.steps = loop.step
    report.tokens_per_s = round(report.train_tokens / max(loop.step_seconds, 1e-9), 1)
    report.padding_share = round(1 - report.train_tokens / max(1, loop.slots), 4)
    return report


def _check_and_save(model: Any, probes: Sequence[Sequence[int]], out_dir: Path, dist: Single) -> bool:
    """The trained adapter checked (B matrices not all zero, the logits moved) and saved by the main
    process; whether this process saved it."""
    what = "the trained adapter"
    if dist.sharded:  # the whole adapter gathered, and the logits check's forwards, on every process
        lora = dist.full_params({n: p for n, p in model.named_parameters() if p.requires_grad})
        check_logits_move(model, probes, what)
        if dist.is_main:
            check_b_nonzero_tensors(lora, what)
            model.save_pretrained(str(out_dir), state_dict=lora)
        return dist.is_main
    if not dist.is_main:
        return False
    check_b_nonzero_params(model, what)
    check_logits_move(model, probes, what)
    model.save_pretrained(str(out_dir))
    return True


def train_lora(
    model_path: str,
    tokenizer: Any,
    train: Sequence[Encoded],
    out_dir: Path,
    config: TrainConfig,
    *,
    validation: Sequence[Encoded] = (),
    device: str = "cpu",
    progress: Any = None,
    description: str = "train",
    skipped: int = 0,
    checkpoint_dir: Path | None = None,
) -> TrainReport:
    """Load a fresh copy of the base model, fit LoRA, save the adapter (PEFT format) and
    train_report.json into out_dir. With `checkpoint_dir` (named by the adapter key), resume
    from a checkpoint there and write new ones. Under several processes (WORLD_SIZE > 1: launch.py,
    accelerate launch) each trains its shard and only the main process writes out_dir."""
    import torch

    from harness.engine.training import distributed

    started = time.perf_counter()
    dist = distributed.current(device, config.shard)
    device = dist.device(device)
    if device == "cpu":  # the cores shared out among the processes on this machine
        torch.set_num_threads(max(1, cpu_threads() // distributed.env_local_world_size()))
    # Sharded: loaded on the CPU, and fully_shard (or DeepSpeed) moves each process's shard to its device.
    with dist.loading(config):  # ZeRO-3: partitioned as it loads
        model = load_for_training(model_path, config.target_modules, config, "cpu" if dist.sharded else device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    checkpoints = None
    if checkpoint_dir is not None:
        checkpoints = Checkpoints(checkpoint_dir, key=checkpoint_dir.name, started=started)
    try:
        report = fit_lora(model, train, config, pad_id=pad_id, validation=validation, device=device,
                          progress=progress, description=description, checkpoints=checkpoints, dist=dist)
        report.skipped = skipped
        saved = _check_and_save(model, [s.input_ids[: s.n_prompt] for s in train[:4]], out_dir, dist)
    except torch.cuda.OutOfMemoryError:
        raise HarnessError(
            f"out of GPU memory while training on {device} (batch_size={config.batch_size}, max_len={config.max_len}): "
            "try sft:gradient_checkpointing=true, sft:quantize=4bit, or a smaller sft:batch_size (with grad_accum "
            "to keep the step) or sft:max_len; checkpoints so far are kept"
        ) from None
    finally:
        dist.release()  # the accelerator's (engine's) references to this model and optimizer; ZeRO-3 loading off
    if not saved:
        return report
    report.seconds = round(report.seconds + time.perf_counter() - started, 2)  # plus earlier runs'
    write_json_atomic(out_dir / REPORT_FILE, report.to_json())
    return report
