"""The CPU matrix-product kernels torch offers besides its default: oneDNN's fp32 linear.

Shared by the probe (harness.engine.probe: what each kernel does on this machine) and by decoding
(harness.engine.onednn: which one the linear layers use)."""

from __future__ import annotations

from typing import Any


def onednn_available() -> bool:
    import torch

    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def onednn_linear(x: Any, weight: Any, bias: Any) -> Any:
    """x @ weight.T + bias through oneDNN (the op inductor's CPU freezing emits): dense fp32 tensors in
    and out, the weight used as it is (no copy, no prepacking)."""
    import torch

    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
