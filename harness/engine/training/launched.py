"""Training inside a run started by a launcher (`torchrun --nproc_per_node N -m harness run ...`,
`accelerate launch -m harness run ...`): rank 0 runs the comparison; the other ranks only train.

Rank 0 alone decides what to train (it looks the adapter up in the cache, so no two ranks can
disagree about an entry another is still writing); for each adapter it must train, it sends the job
(launch.job_json: the encoded data and the config) to the other ranks over a gloo control group, and
every rank, itself included, trains its shard through the same code as an `sft:processes=N` worker
(worker.run_job -> train_lora -> distributed.Accelerated, on the launcher's process group). The
control group waits up to a week: the other ranks wait in it while rank 0 decodes. At the end rank 0
sends the exit code and every rank leaves. Only rank 0 writes (train_lora saves on the main process
only; checkpoints too), so the other ranks write nothing.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.engine.training.config import TrainConfig, TrainReport
from harness.engine.training.data import Encoded
from harness.engine.training.distributed import env_world_size

CONTROL_TIMEOUT = datetime.timedelta(days=7)  # how long the other ranks wait for rank 0's next message


class Channel:
    """The launcher's process group (nccl on CUDA, gloo on the CPU) and a gloo group for rank 0's messages."""

    def __init__(self, device: str):
        import torch.distributed as dist

        if not dist.is_initialized():  # env://: the launcher's MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
            dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.group = dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT)
        self.training = False  # rank 0 is inside a training: the others are in its collectives, not listening

    def send(self, message: dict[str, Any]) -> None:
        import torch.distributed as dist

        dist.broadcast_object_list([message], src=0, group=self.group)

    def receive(self) -> dict[str, Any]:
        import torch.distributed as dist

        box: list[Any] = [None]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return dict(box[0])

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


_channel: Channel | None = None


def open_channel(device: str) -> Channel:
    global _channel
    if _channel is None:
        _channel = Channel(device)
    return _channel


def channel() -> Channel | None:
    """The launched run's channel, or None (a plain run, or a `sft:processes` worker)."""
    return _channel


def close_channel() -> None:
    global _channel
    if _channel is not None:
        _channel.close()
        _channel = None


def launched_config(config: TrainConfig) -> TrainConfig:
    """A strategy's config under the launcher: the launcher's processes train it (batch_size per process);
    an accelerate FSDP config shards the weights, with its activation checkpointing if it asks for it; a
    DeepSpeed config trains at its ZeRO stage (zero.py)."""
    from dataclasses import replace

    from harness.engine.training.fsdp import accelerate_asks_fsdp, env_flag
    from harness.engine.training.launch import check_processes
    from harness.engine.training.zero import accelerate_asks_deepspeed, launched_stage

    check_processes(config.processes, "cpu")  # refuses processes other than 1 or the launcher's
    config = replace(config, processes=env_world_size())
    if accelerate_asks_fsdp():
        checkpointing = env_flag("FSDP_ACTIVATION_CHECKPOINTING")
        config = replace(config, shard="fsdp", gradient_checkpointing=config.gradient_checkpointing or checkpointing)
    elif accelerate_asks_deepspeed():
        config = replace(config, shard=launched_stage())
    return config


def train_launched(
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
    """train_lora's contract on rank 0 of a launched run: the job goes to the other ranks, then this
    rank trains its own shard and saves the adapter."""
    import torch

    from harness.engine.training.launch import job_json
    from harness.engine.training.loop import train_lora

    ch = channel()
    if ch is None:
        raise HarnessError("training under a distributed launcher needs the launched run's process group "
                           "(sft-harness run sets it up); start it as one process otherwise")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ch.send({"kind": "train", "job": job_json(
        model_path=model_path, out_dir=str(out_dir), config=config, train=train, validation=validation,
        device=device, pad_id=pad_id, skipped=skipped, description=description,
        checkpoint_dir=str(checkpoint_dir) if checkpoint_dir is not None else None)})
    threads = torch.get_num_threads()  # training shares the cores out; decoding afterwards has them all
    ch.training = True
    try:
        report = train_lora(model_path, tokenizer, train, out_dir, config, validation=validation, device=device,
                            progress=progress, description=description, skipped=skipped,
                            checkpoint_dir=checkpoint_dir)
    finally:
        torch.set_num_threads(threads)
    ch.training = False
    return report


def follow(ch: Channel) -> int:
    """A rank other than 0: train every job rank 0 sends; return the exit code it sends at the end."""
    from harness.engine.training.worker import run_job

    while True:
        message = ch.receive()
        if message["kind"] == "exit":
            return int(message["code"])
        run_job(message["job"], progress=None)
