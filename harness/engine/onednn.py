"""fp32 linear layers through oneDNN while decoding and scoring on the CPU, where that is faster.

torch's fp32 `linear` on the CPU calls MKL's sgemm, which on some CPUs runs far below what the cores
do: on the 2-core AMD EPYC (Zen 4/5, AVX-512) this was measured on, a 2048^3 matmul reached 193 GFLOP/s
through MKL and 317 through oneDNN, and the decoding shapes (62 rows x 576 x 1536 and the like) about
twice as much through oneDNN. `torch.ops.mkldnn._linear_pointwise` (the op inductor's CPU freezing
emits) takes the same dense fp32 weights, with no copy, and computes the same products to float
tolerance; the demo's 62 greedy answers came out identical.

Inside `fast_linears(model)` every plain `nn.Linear` of the model forwards through it, and only:
- where oneDNN is faster on this machine (measured once per machine, kept in the cache like the matmul
  probe, harness.engine.probe; SFT_HARNESS_ONEDNN=0 or 1 overrides the measurement);
- for fp32 weights and inputs on the CPU, without gradients (decoding and scoring run in inference
  mode), so the GPU path, training, bf16 and quantised layers are untouched.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from functools import cache
from typing import Any

from harness.engine.kernels import onednn_available as available
from harness.engine.kernels import onednn_linear

# Decoding's shapes: rows x in -> out, for the default model's layers and its vocabulary head.
_PROBE_SHAPES = ((48, 576, 1536), (48, 1536, 576), (48, 576, 576), (48, 576, 49152 // 4), (8, 576, 1536))
_MIN_GAIN = 1.10  # below this, keep torch's path: a kernel change is not worth a few percent


def _time(fn: Any, seconds: float = 0.05) -> float:
    fn()  # warm-up: the kernel's first call picks and caches its implementation
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or runs < 3:
        fn()
        runs += 1
    return (time.perf_counter() - start) / runs


def measure_gain() -> float:
    """torch's linear time over oneDNN's, summed over decoding-like shapes (> 1: oneDNN is faster)."""
    import torch
    import torch.nn.functional as F

    torch_s = onednn_s = 0.0
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for rows, n_in, n_out in _PROBE_SHAPES:
            x = torch.randn(rows, n_in, generator=gen)
            w = torch.randn(n_out, n_in, generator=gen)
            torch_s += _time(lambda x=x, w=w: F.linear(x, w))
            onednn_s += _time(lambda x=x, w=w: onednn_linear(x, w, None))
    return torch_s / onednn_s


@cache
def _measured_gain() -> float:
    return measure_gain()  # once per process; the cache file keeps it per machine


def faster_here() -> bool:
    """Whether decoding's linears run faster through oneDNN on this machine (measured once per machine,
    kept in the cache: probe/KEY.json)."""
    forced = os.environ.get("SFT_HARNESS_ONEDNN", "").strip()
    if forced in ("0", "1"):
        return forced == "1" and available()
    if not available():
        return False
    from harness.engine.probe import per_machine

    gain = per_machine({"format": "onednn-linear/v1"}, "gain", _measured_gain)
    return gain >= _MIN_GAIN


def _forward(module: Any, x: Any) -> Any:
    import torch
    import torch.nn.functional as F

    if x.dtype != torch.float32 or x.device.type != "cpu" or (
            torch.is_grad_enabled() and (x.requires_grad or module.weight.requires_grad)):
        return F.linear(x, module.weight, module.bias)  # gradients need autograd's linear
    return onednn_linear(x, module.weight, module.bias)


@contextlib.contextmanager
def fast_linears(model: Any) -> Iterator[int]:
    """The model's plain fp32 CPU linears forward through oneDNN inside (where it is faster here);
    yields how many do. Restored on the way out, whatever happens inside."""
    import torch

    switched: list[Any] = []
    first = next(model.parameters(), None)
    if first is not None and first.device.type == "cpu" and faster_here():  # a GPU model: not even measured
        for m in model.modules():
            w = getattr(m, "weight", None)
            if (type(m) is torch.nn.Linear and "forward" not in vars(m) and w is not None
                    and w.dtype == torch.float32 and w.device.type == "cpu"):
                m.forward = _forward.__get__(m)  # type: ignore[method-assign]  # an instance attribute: __call__ finds it first
                switched.append(m)
    try:
        yield len(switched)
    finally:
        for m in switched:
            del m.forward
