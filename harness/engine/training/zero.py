"""Sharded data-parallel LoRA training with DeepSpeed ZeRO (stages 1-3).

Chosen by `sft:shard=zero2` / `zero3` (`zero1`), or by the launcher's accelerate config
(`distributed_type: DEEPSPEED`, which `accelerate launch` passes on as ACCELERATE_USE_DEEPSPEED, the
ZeRO stage and the user's DeepSpeed JSON). Stage 1 partitions the AdamW moments over the processes,
stage 2 the gradients too, stage 3 the weights as well (a process holds 1/N of them and gathers each
layer for its forward and backward).

The loop stays ours (loop.py): DeepSpeed wraps the model and our torch AdamW (`deepspeed.initialize`),
our loss scaling, learning-rate schedule and micro-batch plan drive it, so the steps are those of one
process with the same global batch. From the user's DeepSpeed config only `zero_optimization` is kept
("auto" values left to DeepSpeed's defaults): batch sizes and accumulation are the strategy's
(`batch_size` per process, `grad_accum`), precision is the strategy's `precision` (the loop autocasts,
as under DDP), the optimizer and schedule are the strategy's, and there is no gradient clipping (there
is none in one process either).

Checkpoints and the saved adapter are whole tensors in one process's format, assembled with DeepSpeed's
`safe_get_full_*` (collectives: every process calls them), so a checkpoint written under ZeRO resumes
in one process, under FSDP, or under another ZeRO stage, and the other way round.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError

STAGES = {"zero1": 1, "zero2": 2, "zero3": 3}
_MOMENTS = ("exp_avg", "exp_avg_sq")  # torch AdamW's per-parameter state (amsgrad is not used)


def require_deepspeed() -> None:
    """Raise (one line) unless DeepSpeed is installed; imports nothing (DeepSpeed picks its accelerator
    when imported: deepspeed_module does that with the training's device)."""
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        raise HarnessError("ZeRO sharding needs DeepSpeed: pip install 'sft-harness[deepspeed]' "
                           "(or pip install deepspeed)")


def pin_accelerator(device: str) -> None:
    """Tell DeepSpeed, before anything imports it, which accelerator this run uses. Left to itself it
    picks CUDA wherever a GPU is visible, even for a run on the CPU, and on a machine without one it
    prints a warning; libraries import it on their own (accelerate's unwrap_model in every
    save_pretrained, where DeepSpeed is installed)."""
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if device.startswith("cuda") else "cpu")


def deepspeed_module(device: str) -> Any:
    """DeepSpeed, imported on the accelerator of `device` (gloo and CPU tensors for a CPU run)."""
    require_deepspeed()
    pin_accelerator(device)
    import logging

    import deepspeed

    deepspeed.utils.logger.setLevel(logging.WARNING)  # its INFO lines (the config, every init) fill a launched run's terminal
    if not device.startswith("cuda"):
        # Its shared-memory all-reduce, compiled on first use (about 30 s per install, and a C++ compiler),
        # serves CPU inference; ZeRO training's collectives (reduce-scatter, all-gather) go through gloo.
        compatible = getattr(deepspeed.ops, "__compatible_ops__", None)
        if isinstance(compatible, dict):
            compatible["deepspeed_shm_comm"] = False
    return deepspeed


def accelerate_asks_deepspeed() -> bool:
    from harness.engine.training.fsdp import env_flag

    return env_flag("ACCELERATE_USE_DEEPSPEED")


def _user_config() -> dict[str, Any]:
    """The DeepSpeed JSON named by the accelerate config (deepspeed_config_file), or {}."""
    path = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "")
    if not path or path.lower() == "none":
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise HarnessError(f"{path}: the DeepSpeed config cannot be read: {e}") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: the DeepSpeed config must be a JSON object")
    return data


def launched_stage() -> str:
    """The shard choice ("zero1".."zero3") of the launcher's accelerate DeepSpeed config."""
    raw = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") or _user_config().get("zero_optimization", {}).get(
        "stage", 2)
    try:
        stage = int(raw)
    except (TypeError, ValueError):
        raise HarnessError(f"the DeepSpeed ZeRO stage must be 1, 2 or 3, not {raw!r}") from None
    if stage not in (1, 2, 3):
        raise HarnessError(f"DeepSpeed ZeRO stage {stage} is not supported: stage 0 is plain data parallelism "
                           "(launch with a MULTI_GPU or MULTI_CPU config); use stage 1, 2 or 3")
    return f"zero{stage}"


def check_launched_config() -> None:
    """Raise (one line) if the launcher's DeepSpeed config cannot train here: DeepSpeed missing, a
    stage other than 1-3, an unreadable JSON, NVMe offload."""
    require_deepspeed()
    shard = launched_stage()
    engine_config(shard, 1, 1, 1, cuda=True)


def _without_auto(section: dict[str, Any]) -> dict[str, Any]:
    """The section with its "auto" entries (HF's placeholders, at any depth) left to DeepSpeed's defaults."""
    return {k: _without_auto(v) if isinstance(v, dict) else v for k, v in section.items() if v != "auto"}


def _offload(zero: dict[str, Any], cuda: bool) -> dict[str, Any]:
    """The offload entries kept: on CUDA as asked (to CPU memory); on the CPU they are dropped (the
    weights are in CPU memory already). NVMe offload is refused, whether the JSON or accelerate's
    environment asks for it."""

    def refuse_nvme(key: str, device: str) -> None:
        if device == "nvme":
            raise HarnessError(f"DeepSpeed {key} to nvme is not supported: offload to cpu, or not at all")

    for key in ("offload_optimizer", "offload_param"):
        entry = zero.get(key)
        device = str((entry or {}).get("device", "none")).lower() if isinstance(entry, dict) else "none"
        refuse_nvme(key, device)
        if isinstance(entry, dict) and float(entry.get("ratio", 1.0)) < 1.0:  # DeepSpeedCPUAdam only
            raise HarnessError(f"DeepSpeed {key}.ratio below 1 (a partial offload) is not supported: it needs "
                               "DeepSpeed's own CPU Adam, and the strategy trains with torch's AdamW")
        if device == "none" or not cuda:
            zero.pop(key, None)
    for key, env in (("offload_optimizer", "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE"),
                     ("offload_param", "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE")):
        value = os.environ.get(env, "none").lower()
        refuse_nvme(key, value)
        if value == "cpu" and cuda:
            zero[key] = {"device": "cpu"}
    return zero


def engine_config(shard: str, batch_size: int, grad_accum: int, world: int, cuda: bool) -> dict[str, Any]:
    """The DeepSpeed config: the user's zero_optimization ("auto" entries dropped) at the chosen stage,
    with the strategy's batch layout; no precision, optimizer, scheduler or clipping of DeepSpeed's."""
    user = _user_config().get("zero_optimization", {}) if accelerate_asks_deepspeed() else {}
    zero = _without_auto(dict(user))
    for old in ("cpu_offload", "cpu_offload_param", "cpu_offload_use_pin_memory"):
        if old in zero:
            raise HarnessError(f"the DeepSpeed config's zero_optimization.{old} is DeepSpeed's old offload key: "
                               "write offload_optimizer / offload_param {\"device\": \"cpu\"} instead")
    zero["stage"] = STAGES[shard]
    zero = _offload(zero, cuda)
    return {
        "train_micro_batch_size_per_gpu": batch_size,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": batch_size * grad_accum * world,
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,  # our torch AdamW
        "zero_force_ds_cpu_optimizer": False,  # ... also with optimizer offload
        "gradient_clipping": 0.0,
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
    }


def zero3_init_wanted() -> bool:
    """Whether ZeRO-3 loads under zero.Init: yes, unless the launcher's accelerate config says
    `zero3_init_flag: false` (some models' custom code does not build under it)."""
    return not (accelerate_asks_deepspeed() and os.environ.get("ACCELERATE_DEEPSPEED_ZERO3_INIT", "").lower() == "false")


def zero3_loading(config: dict[str, Any]) -> Any:
    """Turn on transformers' ZeRO-3 loading (from_pretrained under deepspeed.zero.Init) with this engine
    config; the returned object keeps it on (transformers holds only a weak reference to it)."""
    from transformers.integrations.deepspeed import HfDeepSpeedConfig

    return HfDeepSpeedConfig(config)


def is_partitioned(model: Any) -> bool:
    """Whether the model's weights are ZeRO-3 partitions (loaded under zero.Init)."""
    return any(hasattr(p, "ds_id") for p in model.parameters())


def full_param(param: Any) -> Any:
    """The whole fp32 tensor on the CPU (a collective under ZeRO)."""
    from deepspeed.utils import safe_get_full_fp32_param

    value = safe_get_full_fp32_param(param)
    return (param if value is None else value).detach().cpu().contiguous()


def full_optimizer_state(params: list[Any], engine_optimizer: Any, param_groups: list[dict[str, Any]]
                         ) -> dict[str, Any]:
    """The AdamW state as one process's torch AdamW holds it: per parameter, its whole moments and the
    step count (the same for every partition)."""
    from deepspeed.utils import safe_get_full_optimizer_state

    step = _step_count(engine_optimizer)
    state: dict[int, dict[str, Any]] = {}
    if step is not None:
        for i, p in enumerate(params):
            state[i] = {"step": step.clone()}
            for key in _MOMENTS:
                state[i][key] = safe_get_full_optimizer_state(p, key).detach().cpu().contiguous()
    return {"state": state, "param_groups": param_groups}


def _inner(engine_optimizer: Any) -> Any:
    return getattr(engine_optimizer, "optimizer", engine_optimizer)


def _step_count(engine_optimizer: Any) -> Any:
    """The AdamW step of this process's partitions (None before the first step)."""
    state = _inner(engine_optimizer).state
    for flat in _flat_partitions(engine_optimizer):
        if "step" in state.get(flat, {}):
            return state[flat]["step"].detach().cpu()
    return None


def _flat_partitions(engine_optimizer: Any) -> list[Any]:
    """The fp32 tensors the inner AdamW steps, which key its state: this process's partition of each
    parameter group (stages 1-2), of each sub-group (stage 3)."""
    for name in ("single_partition_of_fp32_groups", "fp32_partitioned_groups_flat"):
        flats = getattr(engine_optimizer, name, None)
        if flats is not None:
            return [f for f in flats if f is not None]
    raise HarnessError(f"DeepSpeed {type(engine_optimizer).__name__}: its fp32 partitions were not found, so a "
                       "checkpoint cannot be resumed under it (this DeepSpeed version is not supported)")


def load_optimizer_state(params: list[Any], engine_optimizer: Any, restored: list[dict[str, Any]]) -> None:
    """Move the per-parameter AdamW state a resume put into the client optimizer (before DeepSpeed
    flattened it) into DeepSpeed's partitions: empty moments first (AdamW creates them lazily), then
    each parameter's fragment."""
    import torch
    from deepspeed.utils import safe_set_full_optimizer_state

    inner = _inner(engine_optimizer)
    for p in params:  # the client AdamW's own entries: DeepSpeed steps its partitions, not these
        inner.state.pop(p, None)
    if not restored or not all(restored):
        return
    step = restored[0]["step"]
    for flat in _flat_partitions(engine_optimizer):
        inner.state[flat] = {"step": step.clone().to(torch.float32),
                             **{k: torch.zeros_like(flat, memory_format=torch.preserve_format) for k in _MOMENTS}}
    link = getattr(engine_optimizer, "_lazy_init_hp_params_optimizer_state", None)
    if link is not None:  # stages 1-2 link each parameter to its moments' fragment after the first step
        link()
    for p, slots in zip(params, restored, strict=True):
        for key in _MOMENTS:
            if hasattr(p, "ds_id"):  # ZeRO-3: this process's partition, cut by hand (see _local_partition)
                from deepspeed.utils import safe_set_local_optimizer_state

                safe_set_local_optimizer_state(p, _local_partition(p, slots[key]), key)
            else:
                safe_set_full_optimizer_state(p, slots[key].to(p.device), key)


def _local_partition(param: Any, value: Any) -> Any:
    """This process's slice of a whole ZeRO-3 tensor: the flat value zero-padded to partition x world (the
    last partition is padded when the size does not divide; DeepSpeed's set_full_hp_param would read past
    the end there)."""
    import torch
    import torch.distributed as dist

    part = param.ds_tensor.numel()
    flat = value.detach().flatten().to(param.ds_tensor.device, torch.float32)
    padded = torch.zeros(part * dist.get_world_size(), dtype=flat.dtype, device=flat.device)
    padded[: flat.numel()] = flat
    return padded.narrow(0, part * dist.get_rank(), part)
