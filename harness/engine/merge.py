"""A LoRA adapter folded into its base model's weights: one plain model folder (safetensors, config,
tokenizer) that transformers, vLLM or TGI load with no PEFT at all.

Merged in float32 (whatever the run decoded in): W + scale * B @ A rounded once, at the end, to the
dtype saved. Used by `sft-harness export --merge` (harness.runner.export).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError


def merge_adapter(base_path: str, adapter: Path, out: Path, *, dtype: str = "float32",
                  trust_remote_code: bool = False) -> Path:
    """Write base + adapter, merged, to the folder `out` (the caller's: export builds in a temp folder)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        base: Any = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32,
                                                         trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(base_path, trust_remote_code=trust_remote_code)
    except Exception as e:  # the base model folder: the user's (or the cache's) files
        raise HarnessError(f"cannot load the base model from {base_path}: {type(e).__name__}: {str(e)[:200]}") from e
    try:
        peft_model = PeftModel.from_pretrained(base, str(adapter), is_trainable=False)
    except Exception as e:
        raise HarnessError(f"cannot apply adapter {adapter}: {type(e).__name__}: {str(e)[:200]}") from e
    merged = peft_model.merge_and_unload()
    merged = merged.to(getattr(torch, dtype))
    merged.eval()
    merged.save_pretrained(out)  # safetensors
    tokenizer.save_pretrained(out)
    return out


def _available_bytes() -> int | None:
    """Memory the OS can still give (MemAvailable), or None where it does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def copy_fits(tensors: Iterable[Any], margin: float = 1.5) -> bool:
    """Whether a second copy of these tensors (a model's parameters, say) fits in free memory with room
    to spare; a tensor listed twice (a weight tied to another layer's) counts once."""
    size = sum(t.numel() * t.element_size() for t in {id(t): t for t in tensors}.values())
    free = _available_bytes()
    return free is not None and size * margin < free


def merged_copy(peft_model: Any) -> Any:
    """A copy of the base weights with the adapter of `peft_model` folded in, for decoding.

    Decoding with an unmerged adapter runs two small extra matmuls (and PEFT's Python) per adapted
    layer and step; folded into a copy, it costs what the base model costs. The base weights are
    left untouched (merging in place and unmerging after would drift them in float, and every
    later strategy must decode the exact same base model)."""
    import copy

    clone = copy.deepcopy(peft_model)
    return clone.merge_and_unload().eval()
