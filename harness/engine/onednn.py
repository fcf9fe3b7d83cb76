"""fp32 linear layers through oneDNN while decoding and scoring on the CPU, where that is faster.

torch's fp32 `linear` on the CPU calls MKL's sgemm, which on some CPUs runs far below what the cores
do: on the 2-core AMD EPYC (Zen 4/5, AVX-512) this was measured on, a 2048^3 matmul reached 193 GFLOP/s
through MKL and 317 through oneDNN, and the decoding shapes (62 rows x 576 x 1536 and the like) about
twice as much through oneDNN. `torch.ops.mkldnn._linear_pointwise` (the op inductor's CPU freezing
emits) takes the same dense fp32 weights, with no copy, and computes the same products to float
tolerance; the demo's 62 greedy answers came out identical.

For decode steps (up to 256 rows), each weight is also reordered once into oneDNN's blocked layout (the
one its kernel reorders into at every call otherwise), a second copy held only inside `fast_linears`
and only where it fits in free memory: the same products bit for bit; all of the default model's
linears 1.2-1.5x faster at 8-62 rows (interleaved, on a 2-core Sapphire Rapids). End to end the
gain was within that machine's run-to-run noise (README, bench/generate.py).

Inside `fast_linears(model)` every plain `nn.Linear` of the model forwards through it, and only:
- where oneDNN is faster on this machine (measured once per machine, kept in the cache like the matmul
  probe, harness.engine.probe; SFT_HARNESS_ONEDNN=0 or 1 overrides the measurement);
- for fp32 weights and inputs on the CPU, so the GPU path, bf16 (autocast included) and quantised
  layers are untouched.
With `training=True` (fp32 LoRA training on the CPU) the frozen base linears go through oneDNN both
ways: the forward, and the backward's input gradient (grad_y @ W, the same op on the transposed weight
view, no copy); trainable weights keep autograd's linear. Training's shapes are measured on their own.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from functools import cache
from typing import Any

from harness.engine.kernels import onednn_available as available
from harness.engine.kernels import onednn_linear, onednn_packed_weight
from harness.engine.merge import copy_fits

# Decoding's shapes: rows x in -> out, for the default model's layers and its vocabulary head.
_PROBE_SHAPES = ((48, 576, 1536), (48, 1536, 576), (48, 576, 576), (48, 576, 49152 // 4), (8, 576, 1536))
# Training's: a micro-batch of tokens through the same layers (forward and input-gradient products).
_TRAIN_SHAPES = ((1024, 576, 1536), (1024, 1536, 576), (1024, 576, 576))
_MIN_GAIN = 1.10  # below this, keep torch's path: a kernel change is not worth a few percent


def _time(fn: Any, seconds: float = 0.05) -> float:
    fn()  # warm-up: the kernel's first call picks and caches its implementation
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or runs < 3:
        fn()
        runs += 1
    return (time.perf_counter() - start) / runs


def measure_gain(training: bool = False) -> float:
    """torch's linear time over oneDNN's (> 1: oneDNN is faster), summed over decoding-like shapes, or
    over training's forward and input-gradient products."""
    import torch
    import torch.nn.functional as F

    torch_s = onednn_s = 0.0
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for rows, n_in, n_out in _TRAIN_SHAPES if training else _PROBE_SHAPES:
            x = torch.randn(rows, n_in, generator=gen)
            w = torch.randn(n_out, n_in, generator=gen)
            torch_s += _time(lambda x=x, w=w: F.linear(x, w))
            fast = w if training else onednn_packed_weight(w)  # what decoding's linears use
            onednn_s += _time(lambda x=x, w=fast: onednn_linear(x, w, None))
            if training:
                g = torch.randn(rows, n_out, generator=gen)
                torch_s += _time(lambda g=g, w=w: torch.matmul(g, w))
                onednn_s += _time(lambda g=g, w=w: onednn_linear(g, w.t(), None))
    return torch_s / onednn_s


@cache
def _measured_gain(training: bool) -> float:
    return measure_gain(training)  # once per process; the cache file keeps it per machine


def faster_here(training: bool = False) -> bool:
    """Whether decoding's (or training's) linears run faster through oneDNN on this machine (measured
    once per machine, kept in the cache: probe/KEY.json)."""
    forced = os.environ.get("SFT_HARNESS_ONEDNN", "").strip()
    if forced in ("0", "1"):
        return forced == "1" and available()
    if not available():
        return False
    from harness.engine.probe import per_machine

    # v2: decoding's side is timed with the reordered weights it now uses
    spec = {"format": "onednn-linear/v2", **({"shapes": "training"} if training else {})}  # an entry each
    gain = per_machine(spec, "gain", lambda: _measured_gain(training))
    return gain >= _MIN_GAIN


def _forward(module: Any, x: Any) -> Any:
    import torch
    import torch.nn.functional as F

    w = module.weight
    if x.dtype != torch.float32 or x.device.type != "cpu" or torch.is_autocast_enabled("cpu"):
        return F.linear(x, w, module.bias)
    if not torch.is_grad_enabled() or not (x.requires_grad or w.requires_grad):
        rows = x.numel() // max(1, x.shape[-1])
        return onednn_linear(x, _packed(module, w) if rows <= _PACKED_ROWS else w, module.bias)
    if w.requires_grad or (module.bias is not None and module.bias.requires_grad):
        return F.linear(x, w, module.bias)  # a trained weight: autograd's linear gives its gradient
    return _frozen_linear().apply(x, w, module.bias)


_PACKED = "_sft_onednn_packed"  # the module's reordered weight: ((data pointer, version), tensor), or None
# Decode steps (one row per sequence) gain from the reordered weight; a prefill's thousands of rows did
# not (the kernel's own reorder is then a small share, and the head measured slower at 380 rows).
_PACKED_ROWS = 256


def _packed(module: Any, w: Any) -> Any:
    """The weight in oneDNN's blocked layout, reordered on its first use inside `fast_linears` (where the
    copy fits) and again if it changed in place since; elsewhere the weight itself."""
    slot = module.__dict__.get(_PACKED, False)
    if slot is False:
        return w
    key = (w.data_ptr(), w._version)
    if slot is None or slot[0] != key:
        slot = (key, onednn_packed_weight(w.detach()))
        module.__dict__[_PACKED] = slot
    return slot[1]


@cache
def _frozen_linear() -> Any:
    """An autograd function for a frozen weight: y = x W^T + b and dx = dy W, both through oneDNN."""
    import torch

    class FrozenLinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, weight: Any, bias: Any) -> Any:
            ctx.save_for_backward(weight)
            return onednn_linear(x, weight, bias)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (weight,) = ctx.saved_tensors
            return onednn_linear(grad.contiguous(), weight.t(), None), None, None

    return FrozenLinear


@contextlib.contextmanager
def fast_linears(model: Any, training: bool = False) -> Iterator[int]:
    """The model's plain fp32 CPU linears forward through oneDNN inside (where it is faster here, for
    decoding or for `training`); yields how many do. Restored on the way out, whatever happens inside."""
    import torch

    switched: list[Any] = []
    first = next(model.parameters(), None)
    if first is not None and first.device.type == "cpu" and faster_here(training):  # a GPU model: not even measured
        for m in model.modules():
            w = getattr(m, "weight", None)
            if (type(m) is torch.nn.Linear and "forward" not in vars(m) and w is not None
                    and type(w.data) is torch.Tensor and not hasattr(w, "ds_id")  # not DTensors, ZeRO partitions
                    and w.dtype == torch.float32 and w.device.type == "cpu"):
                m.forward = _forward.__get__(m)  # type: ignore[method-assign]  # an instance attribute: __call__ finds it first
                switched.append(m)
    if switched and not training and copy_fits(m.weight for m in switched):
        for m in switched:
            m.__dict__[_PACKED] = None  # reordered on first use; dropped on the way out
    try:
        yield len(switched)
    finally:
        for m in switched:
            del m.forward
            m.__dict__.pop(_PACKED, None)

