"""Checkpoints of a training in progress: the loop's state saved atomically, read back with every check done
before the weights are touched, so a resume continues bit for bit and a damaged checkpoint is ignored."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.cache import atomic_dir
from harness.engine.training.config import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_LORA,
    CHECKPOINT_MANIFEST,
    CHECKPOINT_STATE,
    TrainConfig,
    TrainReport,
    steps_layout,
)

log = logging.getLogger(__name__)


@dataclass
class _Loop:
    """Where the loop stands: with the weights, optimizer and RNG, all a resume needs."""

    report: TrainReport
    step: int = 0  # optimizer steps done
    epoch: int = 1  # the epoch in progress
    position: int = 0  # the next micro-batch of that epoch's plan
    slots: int = 0  # tokens fed including padding
    step_seconds: float = 0.0  # time inside training steps (for tokens_per_s)


@dataclass(frozen=True)
class Checkpoints:
    """Where fit_lora keeps its latest state: one step-NNNNNNNN folder under `folder`."""

    folder: Path  # cache_root()/checkpoints/KEY
    key: str  # the adapter key: a checkpoint of other data, config or model is never loaded
    started: float  # perf_counter() when this run began: `seconds` adds what it has spent


def _rng_state(device: str) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.get_rng_state(device) if device.startswith("cuda") else None
    return {"cpu": torch.get_rng_state(), "cuda": cuda}  # LoRA dropout draws from these


def save_checkpoint(
    ckpt: Checkpoints, loop: _Loop, lora: dict[str, Any], optimizer_state: dict[str, Any], device: str
) -> Path:
    """Write the loop's state atomically as step-NNNNNNNN, then delete the older ones. `lora` and
    `optimizer_state` are whole (distributed.Single.full_state): one format for any number of processes."""
    import torch
    from safetensors.torch import save as safetensors_bytes

    t0 = time.perf_counter()
    state = io.BytesIO()
    torch.save({"optimizer": optimizer_state, "rng": _rng_state(device)}, state)
    blobs = {
        CHECKPOINT_LORA: safetensors_bytes(lora),
        CHECKPOINT_STATE: state.getvalue(),
    }
    manifest = {
        "format": CHECKPOINT_FORMAT,
        "key": ckpt.key,
        "step": loop.step,
        "epoch": loop.epoch,
        "position": loop.position,
        "slots": loop.slots,
        "step_seconds": loop.step_seconds,
        "seconds": loop.report.seconds + time.perf_counter() - ckpt.started,
        "report": loop.report.to_json(),
        "sha256": {name: hashlib.sha256(b).hexdigest() for name, b in blobs.items()},  # catches any damage
    }
    final = ckpt.folder / f"step-{loop.step:08d}"
    with atomic_dir(final) as tmp:
        for name, blob in blobs.items():
            (tmp / name).write_bytes(blob)
        (tmp / CHECKPOINT_MANIFEST).write_text(json.dumps(manifest))
    for old in ckpt.folder.glob("step-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    log.debug("checkpoint at step %d in %.3f s", loop.step, time.perf_counter() - t0)
    return final


def _read_checkpoint(folder: Path, key: str, params: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """Manifest, LoRA tensors and state of one checkpoint, checked; raises if anything is off."""
    import torch
    from safetensors.torch import load as safetensors_load

    manifest = json.loads((folder / CHECKPOINT_MANIFEST).read_text())
    if manifest.get("format") != CHECKPOINT_FORMAT or manifest.get("key") != key:
        raise ValueError("another format or adapter key")
    blobs = {}
    for name in (CHECKPOINT_LORA, CHECKPOINT_STATE):
        blobs[name] = (folder / name).read_bytes()
        if hashlib.sha256(blobs[name]).hexdigest() != manifest["sha256"][name]:
            raise ValueError(f"{name} is damaged (checksum)")
    tensors = safetensors_load(blobs[CHECKPOINT_LORA])
    shapes = {n: (tuple(p.shape), p.dtype) for n, p in params.items()}
    if {n: (tuple(t.shape), t.dtype) for n, t in tensors.items()} != shapes:
        raise ValueError("its LoRA parameters do not match the model's")
    state = torch.load(io.BytesIO(blobs[CHECKPOINT_STATE]), map_location="cpu", weights_only=True)
    per_param = list(shapes.values())
    for index, slots in state["optimizer"]["state"].items():  # AdamW moments: one per parameter
        for v in slots.values():
            if isinstance(v, torch.Tensor) and v.ndim and tuple(v.shape) != per_param[index][0]:
                raise ValueError("its optimizer state does not match the LoRA parameters")
    return manifest, tensors, state


def _optimizer_state_like(state: dict[str, Any], params: list[Any],
                          localise: Callable[[Any, Any], Any]) -> dict[str, Any]:
    """A checkpoint's whole optimizer state with each per-parameter moment cut like its parameter."""
    shapes = [tuple(p.shape) for p in params]

    def cut(v: Any, i: int) -> Any:
        return localise(v, params[i]) if getattr(v, "ndim", 0) and tuple(v.shape) == shapes[i] else v

    return {"state": {i: {k: cut(v, int(i)) for k, v in slots.items()} for i, slots in state["state"].items()},
            "param_groups": state["param_groups"]}


def restore_checkpoint(
    ckpt: Checkpoints, params: dict[str, Any], optimizer: Any, config: TrainConfig, n_train: int, device: str,
    localise: Callable[[Any, Any], Any] | None = None,
) -> _Loop | None:
    """Load the latest usable checkpoint into params, optimizer and the RNGs; None if there is
    none. An unusable one is skipped with a warning (the caller starts over), never an error.
    `localise(whole tensor, parameter)` cuts a tensor as a sharded parameter holds it (FSDP)."""
    import torch

    localise = localise or (lambda value, _param: value)

    micro, steps_per_epoch = steps_layout(n_train, config)
    for folder in sorted(ckpt.folder.glob("step-*"), reverse=True):
        try:
            manifest, tensors, state = _read_checkpoint(folder, ckpt.key, params)
            loop = _Loop(
                TrainReport.from_json(manifest["report"]),
                step=int(manifest["step"]),
                epoch=int(manifest["epoch"]),
                position=int(manifest["position"]),
                slots=int(manifest["slots"]),
                step_seconds=float(manifest["step_seconds"]),
            )
            valid = (
                1 <= loop.epoch <= config.epochs
                and 0 <= loop.position < micro
                and loop.position % config.grad_accum == 0
                and loop.step == (loop.epoch - 1) * steps_per_epoch + loop.position // config.grad_accum
                and len(loop.report.loss_curve) == loop.step
            )
            if not valid:
                raise ValueError("its position does not fit this training")
            # Everything that can fail first; the weights last, so a failure leaves them untouched.
            torch.set_rng_state(state["rng"]["cpu"])
            if state["rng"]["cuda"] is not None and device.startswith("cuda"):
                torch.cuda.set_rng_state(state["rng"]["cuda"], device)
            optimizer_state = _optimizer_state_like(state["optimizer"], list(params.values()), localise)
            optimizer.load_state_dict(optimizer_state)  # checks, then replaces: all or nothing
        except Exception as e:  # a bad checkpoint costs time, never the training
            log.warning("ignoring checkpoint %s: %s: %s", folder, type(e).__name__, e)
            continue
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(localise(tensors[name], p))
        loop.report.seconds = float(manifest["seconds"])
        loop.report.resumed_from_step = loop.step
        log.info("resuming training from step %d (checkpoint %s)", loop.step, folder)
        return loop
    return None
