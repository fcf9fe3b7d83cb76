"""`sft-harness run` under a distributed launcher, on one node: `torchrun --nproc_per_node N -m harness
run ...` or `accelerate launch --num_processes N -m harness run ...`.

Rank 0 runs the comparison exactly as one process would (plan, decoding, the run folder, the cache
entries, the history line, the reports); every `sft` training it needs is trained by all N ranks on
the launcher's process group, `batch_size` per rank, through the code of `sft:processes=N`
(harness.engine.training.launched). The other ranks build no plan of their own: they wait for rank
0's training jobs, train their shards, write nothing, and leave with rank 0's exit code. Decoding is
not sharded: the comparison's cost on a GPU is mostly training, and one decoding process keeps the
prediction cache, the outputs and their order exactly those of a plain run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from harness.core.errors import HarnessError
from harness.engine.training.distributed import env_world_size


def launched() -> bool:
    """Whether a launcher started this process as one of several (WORLD_SIZE > 1)."""
    return env_world_size() > 1


def sharded_config() -> str | None:
    """Why the launcher's accelerate config cannot run here (hybrid FSDP, a ZeRO stage or offload we do
    not train with, DeepSpeed not installed), or None. Checked before any work: on the CPU accelerate
    would quietly fall back to DDP, on CUDA the saves would be shards. An FSDP config trains every adapter
    with FSDP2 (harness.engine.training.fsdp), a DeepSpeed one with its ZeRO stage (zero.py)."""
    from harness.engine.training.fsdp import accelerate_asks_fsdp, reshard_after_forward
    from harness.engine.training.zero import accelerate_asks_deepspeed, check_launched_config

    try:
        if accelerate_asks_deepspeed():
            check_launched_config()
        elif accelerate_asks_fsdp():
            reshard_after_forward()
    except HarnessError as e:
        return str(e)
    return None


def run_launched(opts: Any, main: Callable[[], None]) -> int:
    """Rank 0: `main` (the run and its reports); the other ranks: the trainings rank 0 sends. Returns
    the exit code."""
    from harness.engine.models import pick_device
    from harness.engine.training.launched import close_channel, follow, open_channel

    sharded = sharded_config()
    if sharded:  # refused on rank 0 (one line); the others leave quietly with the same exit code
        if os.environ.get("RANK", "0") == "0":
            raise HarnessError(sharded)
        return 2
    # Every rank picks the same device from the same options, so the process group has one backend.
    ch = open_channel(pick_device(opts.device, opts.flag("device")))
    try:
        if ch.rank != 0:
            return follow(ch)
        code = 2
        try:
            main()
            code = 0
        except HarnessError as e:
            code = e.exit_code
            raise
        finally:
            if not ch.training:  # else the others wait inside a training: the launcher stops them
                ch.send({"kind": "exit", "code": code})
        return code
    finally:
        close_channel()
