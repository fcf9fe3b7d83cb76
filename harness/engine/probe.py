"""What this machine's matrix multiply does, measured, not assumed (CPUs differ: one emulates bf16,
another multiplies it natively at four times fp32).

`matmul_gflops` times square matmuls for a fraction of a second and returns GFLOP/s: the roofline
the benches report their share of (bench/generate.py `roofline:`, bench/sft.py `peak:`), and the
rate a run's time estimate divides its FLOPs by (harness.runner.estimate).
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any


@cache
def matmul_gflops(device: str = "cpu", dtype: str = "float32", n: int = 2048, seconds: float = 0.4) -> float:
    """GFLOP/s of n x n @ n x n matmuls on `device` in `dtype` (torch's threads as they are set)."""
    import torch

    torch_dtype: Any = getattr(torch, dtype)
    a = torch.randn(n, n, device=device).to(torch_dtype)
    b = torch.randn(n, n, device=device).to(torch_dtype)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    torch.matmul(a, b)  # warm-up: first-call allocation and kernel choice
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t0 = time.perf_counter()
        torch.matmul(a, b)
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    return 2 * n**3 / times[len(times) // 2] / 1e9  # the median matmul: one slow or lucky one does not move it


def linear_params(model: Any) -> int:
    """Weights of the model's linear layers (the output head included; embeddings are a lookup):
    a token costs 2 FLOPs per weight forward."""
    import torch

    total = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            total += module.weight.numel()
    return total
