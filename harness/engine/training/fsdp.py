"""Sharded data-parallel LoRA training with PyTorch FSDP2 (`torch.distributed.fsdp.fully_shard`).

Chosen by `sft:shard=fsdp`, or by the launcher's accelerate config (`distributed_type: FSDP`, which
`accelerate launch` passes on as ACCELERATE_USE_FSDP and the FSDP_* variables). Each decoder layer and
then the root module are sharded over every process: a process holds 1/N of the weights (frozen base
and LoRA alike), all-gathers a layer for its forward and backward, and reduce-scatters the gradients.
FSDP2 averages gradients over processes as DDP does, so the loop's loss scaling and the optimizer
steps are those of the DDP path, and the adapter equals one process's with the same global batch
(tests/test_launched.py).

What sharding changes for the loop (loop.py, checkpoint.py), all collective (every process calls it):
- the optimizer is built after sharding (fully_shard replaces the parameters with DTensors);
- a checkpoint and the saved adapter are the full tensors, all-gathered; only the main process writes
  them, in the format of one process, so a checkpoint resumes under any number of processes;
- a resume cuts the full tensors back into this process's shards (no communication);
- evaluation and the post-training checks run on every process, since each forward all-gathers.

accelerate's own FSDP integration is not used: it turns FSDP on only on GPUs, while fully_shard runs on
the CPU with gloo too (what the tests run). FSDP1 configs (fsdp_version 1) train with FSDP2 likewise.
"""

from __future__ import annotations

import os
from typing import Any

from harness.core.errors import HarnessError

SHARD_CHOICES = ("none", "fsdp", "zero1", "zero2", "zero3")  # zero*: DeepSpeed (zero.py)


def env_flag(name: str) -> bool:
    """A true/false variable as `accelerate launch` sets them from its config (absent: false)."""
    return os.environ.get(name, "false").lower() == "true"


def accelerate_asks_fsdp() -> bool:
    """Whether the launcher's accelerate config is an FSDP one."""
    return env_flag("ACCELERATE_USE_FSDP")


def reshard_after_forward() -> bool:
    """FSDP_RESHARD_AFTER_FORWARD (FSDP2 configs) or FSDP_SHARDING_STRATEGY (FSDP1 names): FULL_SHARD
    frees a layer's gathered weights after its forward (less memory), SHARD_GRAD_OP keeps them for the
    backward (fewer all-gathers). Hybrid sharding needs a 2-D mesh over nodes: refused."""
    value = os.environ.get("FSDP_RESHARD_AFTER_FORWARD") or os.environ.get("FSDP_SHARDING_STRATEGY") or "true"
    value = value.upper()
    if value in ("TRUE", "FULL_SHARD", "1"):
        return True
    if value in ("FALSE", "SHARD_GRAD_OP", "2"):
        return False
    raise HarnessError(f"the accelerate config's FSDP sharding {value} is not supported: use FULL_SHARD "
                       "(fsdp_reshard_after_forward: true) or SHARD_GRAD_OP (false)")


def offload_params() -> bool:
    """FSDP_OFFLOAD_PARAMS: keep the shards in CPU memory between uses (on CUDA)."""
    return env_flag("FSDP_OFFLOAD_PARAMS")


def layer_classes(model: Any) -> set[str]:
    """The class names of the model's repeated blocks: transformers' `_no_split_modules` (the layers
    a device map keeps whole), as accelerate's TRANSFORMER_BASED_WRAP finds them."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    return names


def shard_model(model: Any, mesh: Any, *, reshard: bool, offload: bool) -> Any:
    """fully_shard every decoder layer, then the root (embeddings, final norm, head: tied weights stay
    in one group). In place: the model's parameters become DTensors on the mesh's device."""
    from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

    policy = CPUOffloadPolicy() if offload and mesh.device_type == "cuda" else OffloadPolicy()
    blocks = layer_classes(model)
    layers = [m for m in model.modules() if type(m).__name__ in blocks]
    if not layers:
        raise HarnessError(f"FSDP: no repeated layer ({', '.join(sorted(blocks)) or 'no _no_split_modules'}) found "
                           f"in {type(model).__name__} to shard; train it without sft:shard=fsdp")
    for layer in layers:
        fully_shard(layer, mesh=mesh, reshard_after_forward=reshard, offload_policy=policy)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard, offload_policy=policy)
    return model


def is_sharded(t: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def full(t: Any) -> Any:
    """The whole tensor on the CPU (an all-gather for a DTensor: every process must call it)."""
    return (t.full_tensor() if is_sharded(t) else t).detach().cpu().contiguous()


def full_optimizer_state(optimizer: Any) -> dict[str, Any]:
    """optimizer.state_dict() with every sharded moment all-gathered: the format of one process."""
    state = optimizer.state_dict()
    return {
        "state": {i: {k: full(v) if is_sharded(v) else v for k, v in slots.items()}
                  for i, slots in state["state"].items()},
        "param_groups": state["param_groups"],
    }


def like(value: Any, param: Any) -> Any:
    """A full tensor cut like `param`: this process's shard of it as a DTensor (each process holds the
    whole value, so no communication), or the value itself for a plain parameter."""
    if not is_sharded(param):
        return value
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(value.to(param.device, param.dtype), param.device_mesh, param.placements,
                             src_data_rank=None)
