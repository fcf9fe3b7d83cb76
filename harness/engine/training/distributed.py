"""Data-parallel training through Hugging Face accelerate: who does what when several processes train one adapter.

A single process (no WORLD_SIZE > 1 in the environment) gets `Single`: no accelerate import, no wrapping,
no communication, so the one-process loop runs exactly as before. Under several processes (started by
`sft:processes=N`, see launch.py, or by `accelerate launch` / torchrun around the worker) `Accelerated`
wraps the model and optimizer with `Accelerator.prepare` (DDP: gloo on the CPU, nccl on CUDA) and
every process trains on its shard of each global micro-batch:

- every process builds the same global plan (length-grouped micro-batches of batch_size x processes
  examples, from the same seeded generator) and takes a contiguous slice of each micro-batch, so the
  global batch is the per-process batch times the processes, and the optimizer steps are those of one
  process with that batch (the same loss curve, up to float summation order);
- each process divides its token-loss sum by the step's global target count and multiplies by the
  number of processes, since DDP averages gradients: the average is then the exact global mean;
- a process whose slice of a short last micro-batch is empty runs one example with weight 0, so it
  still joins the gradient all-reduce;
- only the main process writes checkpoints, the adapter and its report.

`sft:shard=fsdp` (or an accelerate FSDP config) gets `Sharded` instead: the same plan and loss
scaling, the weights sharded by FSDP2 (fsdp.py). `sft:shard=zero1|zero2|zero3` (or an accelerate
DeepSpeed config) gets `ZeRO`: the same again, through a DeepSpeed engine (zero.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

from harness.core.errors import HarnessError


def env_world_size() -> int:
    """Processes in this training as the launcher (ours, accelerate launch, torchrun) declared them."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def env_local_world_size() -> int:
    """Processes on this machine (they share its cores)."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1"))))
    except ValueError:
        return 1


class Single:
    """One process: every operation is the plain PyTorch one."""

    world = 1
    rank = 0
    is_main = True

    sharded = False  # the weights are DTensors: saves gather them, every process runs each forward

    def device(self, requested: str) -> str:
        return requested

    def loading(self, config: Any) -> Any:
        """The context the training model is loaded in (`config`: the TrainConfig): as usual here;
        ZeRO-3 partitions the weights as they load."""
        return contextlib.nullcontext()

    def shard_model(self, model: Any) -> Any:
        """The model as this role trains it (before the optimizer is built on its parameters)."""
        return model

    def full_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The tensors whole, on the CPU, as one process holds them."""
        return {n: p.detach().cpu().contiguous() for n, p in params.items()}

    def full_state(self, params: dict[str, Any], optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(LoRA tensors, optimizer state) whole: what checkpoints keep."""
        return self.full_params(params), optimizer.state_dict()

    def localise(self, value: Any, param: Any) -> Any:
        """A whole tensor from a checkpoint, as `param` holds it in this process."""
        return value

    def prepare(self, model: Any, optimizer: Any, config: Any = None) -> tuple[Any, Any]:
        """(model, optimizer) as the loop steps them; `config` is the TrainConfig."""
        return model, optimizer

    def backward(self, loss: Any) -> None:
        loss.backward()

    def step(self, optimizer: Any) -> None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def no_sync(self, model: Any) -> Any:
        return contextlib.nullcontext()

    def sum(self, values: Sequence[float]) -> list[float]:
        return list(values)

    def barrier(self) -> None:
        pass

    def release(self) -> None:
        """Drop what the last training prepared (a launched run trains several adapters in one process)."""


class Accelerated(Single):
    """Several processes joined by an `accelerate.Accelerator` (it reads the launcher's environment)."""

    def __init__(self, device: str):
        from accelerate import Accelerator

        # mixed_precision "no": the loop autocasts itself (the strategy's `precision`), the same
        # whatever an accelerate config says, so one and N processes multiply alike.
        self.acc = Accelerator(cpu=not device.startswith("cuda"), mixed_precision="no")
        kind = str(self.acc.distributed_type).rsplit(".", 1)[-1]
        if kind not in ("MULTI_CPU", "MULTI_GPU"):  # FSDP is Sharded's (fsdp.py), DeepSpeed ZeRO's (zero.py)
            raise HarnessError(f"data-parallel training runs under DDP (MULTI_CPU or MULTI_GPU), sft:shard=fsdp "
                               f"or sft:shard=zero1|zero2|zero3, not {kind}")
        self.world = self.acc.num_processes
        self.rank = self.acc.process_index
        self.is_main = self.acc.is_main_process

    def device(self, requested: str) -> str:
        d = self.acc.device
        return "cpu" if d.type == "cpu" else str(d)  # cuda:LOCAL_RANK on GPUs

    def prepare(self, model: Any, optimizer: Any, config: Any = None) -> tuple[Any, Any]:
        model, optimizer = self.acc.prepare(model, optimizer)
        return model, optimizer

    def backward(self, loss: Any) -> None:
        self.acc.backward(loss)

    def no_sync(self, model: Any) -> Any:
        return self.acc.no_sync(model)

    def sum(self, values: Sequence[float]) -> list[float]:
        import torch

        t = torch.tensor(list(values), dtype=torch.float64, device=self.acc.device)
        return [float(v) for v in self.acc.reduce(t, reduction="sum").cpu()]

    def barrier(self) -> None:
        self.acc.wait_for_everyone()

    def release(self) -> None:
        self.acc.free_memory()


class Sharded(Single):
    """Several processes training with FSDP2 on the launcher's process group (torch.distributed
    directly: accelerate enables FSDP only on GPUs)."""

    sharded = True

    def __init__(self, device: str):
        from torch.distributed.device_mesh import init_device_mesh

        from harness.engine.training.fsdp import offload_params, reshard_after_forward

        self.reshard, self.offload = reshard_after_forward(), offload_params()
        self._init_group(device)
        self.mesh = init_device_mesh("cuda" if self._device != "cpu" else "cpu", (self.world,))

    def _init_group(self, device: str) -> None:
        import torch.distributed as dist

        cuda = device.startswith("cuda")
        if not dist.is_initialized():  # env://: the launcher's MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
            dist.init_process_group(backend="nccl" if cuda else "gloo")
        self.world, self.rank = dist.get_world_size(), dist.get_rank()
        self.is_main = self.rank == 0
        self._device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if cuda else "cpu"
        if cuda:
            import torch

            torch.cuda.set_device(self._device)

    def device(self, requested: str) -> str:
        return self._device

    def shard_model(self, model: Any) -> Any:
        from harness.engine.training.fsdp import shard_model

        return shard_model(model, self.mesh, reshard=self.reshard, offload=self.offload)

    def full_params(self, params: dict[str, Any]) -> dict[str, Any]:
        from harness.engine.training.fsdp import full

        return {n: full(p) for n, p in params.items()}  # all-gathers, in the same order on every process

    def full_state(self, params: dict[str, Any], optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        from harness.engine.training.fsdp import full_optimizer_state

        return self.full_params(params), full_optimizer_state(optimizer)

    def localise(self, value: Any, param: Any) -> Any:
        from harness.engine.training.fsdp import like

        return like(value, param)

    def sum(self, values: Sequence[float]) -> list[float]:
        import torch
        import torch.distributed as dist

        t = torch.tensor(list(values), dtype=torch.float64, device=self._device)
        dist.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()


class ZeRO(Sharded):
    """Several processes training through a DeepSpeed ZeRO engine (stage 1, 2 or 3) on the launcher's
    process group. Every process joins each gather (the saves, the checkpoints, each ZeRO-3 forward)."""

    def __init__(self, device: str, shard: str):
        from harness.engine.training.zero import STAGES, deepspeed_module

        self.shard = shard if shard in STAGES else "zero2"
        self.ds = deepspeed_module(device)
        self._init_group(device)
        self.engine: Any = None
        self._boundary = True
        self._param_groups: list[dict[str, Any]] = []
        self._zero3_loading: Any = None

    @contextlib.contextmanager
    def loading(self, config: Any) -> Any:
        """ZeRO-3: from_pretrained builds the model under deepspeed.zero.Init (transformers' DeepSpeed
        integration): each process keeps 1/N of each weight on its device from the start, and only the
        main process reads the checkpoint (into its CPU memory), so no GPU holds the whole model. Kept on
        for the training (peft and transformers ask it) until release. An accelerate config's
        `zero3_init_flag: false` loads the whole model in each process instead."""
        from harness.engine.training.zero import zero3_init_wanted, zero3_loading

        if self.shard == "zero3" and zero3_init_wanted():
            # DeepSpeed's own view of the group (its config reads the world size there); joins ours
            self.ds.init_distributed(dist_backend="gloo" if self._device == "cpu" else "nccl")
            self._zero3_loading = zero3_loading(self._config(config))
        yield

    def _config(self, config: Any) -> dict[str, Any]:
        from harness.engine.training.zero import engine_config

        return engine_config(self.shard, config.batch_size, config.grad_accum, self.world, self._device != "cpu")

    def shard_model(self, model: Any) -> Any:
        return model  # partitioned as it loaded (ZeRO-3) or by deepspeed.initialize (prepare)

    def prepare(self, model: Any, optimizer: Any, config: Any = None) -> tuple[Any, Any]:
        """The engine around the model and our AdamW; the AdamW state a resume loaded moves into the
        engine's partitions."""
        from harness.engine.training.zero import load_optimizer_state

        self._release_engine()
        params = [p for g in optimizer.param_groups for p in g["params"]]
        restored = [dict(optimizer.state[p]) if p in optimizer.state else {} for p in params]
        state = optimizer.state_dict()
        self._param_groups = state["param_groups"]
        self.engine, engine_optimizer, _, _ = self.ds.initialize(model=model, optimizer=optimizer,
                                                                 config=self._config(config))
        load_optimizer_state(params, engine_optimizer, restored)
        return self.engine, engine_optimizer

    def backward(self, loss: Any) -> None:
        # The strategy's accumulation: the engine reduces and steps on the micro-batch we call last.
        self.engine.set_gradient_accumulation_boundary(self._boundary)
        self.engine.backward(loss, scale_wrt_gas=False)

    @contextlib.contextmanager
    def no_sync(self, model: Any) -> Any:
        self._boundary = False
        try:
            yield
        finally:
            self._boundary = True

    def step(self, optimizer: Any) -> None:
        self.engine.set_gradient_accumulation_boundary(True)
        self.engine.step()  # the optimizer step and zero_grad, on the boundary

    def full_params(self, params: dict[str, Any]) -> dict[str, Any]:
        from harness.engine.training.zero import full_param

        return {n: full_param(p) for n, p in params.items()}

    def full_state(self, params: dict[str, Any], optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        from harness.engine.training.zero import full_optimizer_state

        return self.full_params(params), full_optimizer_state(list(params.values()), optimizer, self._param_groups)

    def localise(self, value: Any, param: Any) -> Any:
        return value  # restored before the engine partitions the parameters

    def release(self) -> None:
        self._release_engine()
        if self._zero3_loading is not None:
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config

            unset_hf_deepspeed_config()
            self._zero3_loading = None

    def _release_engine(self) -> None:
        if self.engine is not None:
            destroy = getattr(self.engine, "destroy", None)
            if destroy is not None:
                destroy()
        self.engine = None


_roles: dict[str, Single] = {}


def current(device: str, shard: str = "none") -> Single:
    """This process's role: `Single` unless the environment declares several processes; then
    `Sharded` for shard="fsdp", `ZeRO` for "zero1".."zero3", else `Accelerated` (DDP). One of each
    per process."""
    kind = "single" if env_world_size() == 1 else shard
    if kind not in _roles:
        if kind == "single":
            _roles[kind] = Single()
        elif kind == "fsdp":
            _roles[kind] = Sharded(device)
        elif kind.startswith("zero"):
            _roles[kind] = ZeRO(device, kind)
        else:
            _roles[kind] = Accelerated(device)
    return _roles[kind]


def shard(indices: Sequence[int], rank: int, world: int) -> list[int]:
    """This process's contiguous slice of a global micro-batch (sizes differ by at most one)."""
    q, r = divmod(len(indices), world)
    start = rank * q + min(rank, r)
    return list(indices[start : start + q + (1 if rank < r else 0)])


def group_counts(train: Sequence[Any], group: Sequence[Sequence[int]], world: int,
                 packing: bool) -> tuple[int, int, int]:
    """(tokens, target tokens, slots incl. padding) of one optimizer step over all processes;
    `train` holds the sequences (data.Encoded: a length and n_prompt)."""
    tokens = targets = slots = 0
    for idx in group:
        for r in range(world):
            part = shard(idx, r, world)
            if not part:
                continue
            n = [len(train[i]) for i in part]
            tokens += sum(n)
            targets += sum(len(train[i]) - train[i].n_prompt for i in part)
            slots += sum(n) if packing else len(n) * max(n)
    return tokens, targets, slots
