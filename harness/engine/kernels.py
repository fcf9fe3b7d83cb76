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


def onednn_packed_weight(weight: Any) -> Any:
    """`weight` reordered into oneDNN's blocked layout for `onednn_linear` (a copy, any number of rows):
    the kernel then skips reordering it at every call, which at decoding's few rows costs as much as
    the product. The same results bit for bit."""
    import torch

    return torch.ops.mkldnn._reorder_linear_weight(weight, 64)  # 64: a row-count hint only
