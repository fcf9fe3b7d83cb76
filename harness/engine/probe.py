"""What this machine's matrix multiply does, measured, not assumed (CPUs differ: one emulates bf16,
another multiplies it natively at four times fp32).

`matmul_gflops` times square matmuls for a fraction of a second and returns GFLOP/s: the roofline
the benches report their share of (bench/generate.py `roofline:`, bench/sft.py `peak:`), and the
rate a run's time estimate divides its FLOPs by (harness.runner.estimate). The benches measure afresh
every time; the estimate reads `machine_gflops`, measured once per machine (CPU model and flags, torch
version, threads) and kept in the cache, so a run's start does not pay the probe again (~1 s).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any


@cache
def matmul_gflops(device: str = "cpu", dtype: str = "float32", n: int = 2048, seconds: float = 0.4,
                  kernel: str = "torch") -> float:
    """GFLOP/s of n x n @ n x n matmuls on `device` in `dtype` (torch's threads as they are set).
    kernel="onednn": the same product through oneDNN's linear (CPU; harness.engine.onednn), which on
    some CPUs is much faster than torch.matmul's MKL path in fp32."""
    import torch

    torch_dtype: Any = getattr(torch, dtype)
    a = torch.randn(n, n, device=device).to(torch_dtype)
    b = torch.randn(n, n, device=device).to(torch_dtype)
    if kernel == "onednn":
        from harness.engine.kernels import onednn_linear

        def product() -> Any:
            return onednn_linear(a, b, None)  # a @ b.T: the same FLOPs
    else:
        def product() -> Any:
            return torch.matmul(a, b)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    product()  # warm-up: first-call allocation and kernel choice
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t0 = time.perf_counter()
        product()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    return 2 * n**3 / times[len(times) // 2] / 1e9  # the median matmul: one slow or lucky one does not move it


def _machine() -> dict[str, Any]:
    """What a CPU probe's result depends on: the CPU (model name and feature flags), torch, its threads."""
    import platform

    import torch

    cpu: dict[str, str] = {}
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "flags", "Features", "CPU part") and key not in cpu:
                cpu[key] = value.strip()
    except OSError:  # not Linux
        cpu["processor"] = platform.processor()
    # The kernels torch and oneDNN may use here: ATEN_CPU_CAPABILITY=avx2 or ONEDNN_MAX_CPU_ISA caps them.
    kernels = {"aten": torch.backends.cpu.get_cpu_capability(), "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
               "mkl": os.environ.get("MKL_ENABLE_INSTRUCTIONS", "")}
    return {"cpu": cpu, "machine": platform.machine(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "kernels": kernels}


def best_fp32_gflops(device: str = "cpu") -> tuple[float, str]:
    """The machine's fp32 roofline as torch reaches it: the faster of torch.matmul and oneDNN (CPU),
    with the kernel's name."""
    from harness.engine.kernels import onednn_available

    rates = {"torch": matmul_gflops(device, "float32")}
    if device == "cpu" and onednn_available():
        rates["onednn"] = matmul_gflops(device, "float32", kernel="onednn")
    kernel = max(rates, key=lambda k: rates[k])
    return rates[kernel], kernel


def probe_dir() -> Path:
    """Where the per-machine measurements live: `$SFT_HARNESS_PROBES`, else the cache's probe/ (they
    hold nothing of a run's work, so one folder can serve several caches, as models/ can)."""
    from harness.core.cache import cache_root

    override = os.environ.get("SFT_HARNESS_PROBES")
    return Path(override) if override else cache_root() / "probe"


def per_machine(spec: dict[str, Any], field: str, measure: Callable[[], float]) -> float:
    """`measure()` once per machine (the spec plus this machine's key), kept as KEY.json in probe_dir();
    a missing or damaged entry is measured again."""
    from harness.core.cache import fingerprint, write_json_atomic

    machine = _machine()
    path = probe_dir() / f"{fingerprint({'machine': machine, **spec})}.json"
    try:
        return float(json.loads(path.read_text())[field])
    except (OSError, ValueError, KeyError, TypeError):  # not measured yet here, or damaged: measure
        pass
    value = measure()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {field: value, **spec, "machine": machine})
    return value


def machine_gflops(dtype: str = "float32", kernel: str = "torch") -> float:
    """matmul_gflops("cpu", dtype, kernel=...), measured once per machine and kept in the cache
    (probe/KEY.json)."""
    spec = {"dtype": dtype, "format": "matmul-probe/v1"}
    if kernel != "torch":  # (the key of torch's probe as it was before kernels)
        spec["kernel"] = kernel
    return per_machine(spec, "gflops", lambda: matmul_gflops("cpu", dtype, kernel=kernel))


def linear_params(model: Any) -> int:
    """Weights of the model's linear layers (the output head included; embeddings are a lookup):
    a token costs 2 FLOPs per weight forward."""
    import torch

    total = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            total += module.weight.numel()
    return total
