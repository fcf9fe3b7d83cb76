"""Adapters that do nothing are refused, with the reason.

Users of other tools have reported fine-tuned scores identical to the base model's because the
adapter never took effect. Three causes, each caught where it is cheapest:
- no layer matched `target_modules` (peft raises; we list the model's linear layers instead),
- every LoRA B matrix is zero (B starts at zero: no optimizer step moved it, lr 0, or a broken
  export), read from the weights without loading the model,
- the adapter is applied but the next-token logits do not move (probed on a few prompts, on a
  model that is loaded anyway: right after training, or when decoding with the adapter starts).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError

# Logits of an effective adapter move by far more than float noise.
MIN_LOGIT_CHANGE = 1e-6


def linear_layer_names(model: Any) -> list[str]:
    """The distinct leaf names of the model's linear layers (what target_modules can name)."""
    import torch

    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)})


def no_match_error(target_modules: Sequence[str], model: Any, cause: Exception) -> HarnessError:
    names = linear_layer_names(model)
    return HarnessError(
        f"LoRA target_modules {list(target_modules)} match no layer of this model ({str(cause).splitlines()[0][:120]}); "
        f"its linear layers are: {', '.join(names) or 'none'} (or use target_modules=all-linear)"
    )


def check_b_nonzero_params(model: Any, what: str) -> None:
    """Refuse a model whose LoRA B matrices are all zero (in memory, right after training)."""
    check_b_nonzero_tensors(dict(model.named_parameters()), what)


def check_b_nonzero_tensors(tensors: dict[str, Any], what: str) -> None:
    """check_b_nonzero_params on named tensors (an adapter gathered from its shards)."""
    values = [p for n, p in tensors.items() if "lora_B" in n]
    if values and all(float(p.detach().abs().max()) == 0.0 for p in values):
        raise HarnessError(f"{what}: every LoRA B matrix is zero, so the adapter changes nothing "
                           "(no optimizer step moved it: check lr, epochs and that training examples remain)")


def check_b_nonzero_file(weights: Path) -> None:
    """Refuse an adapter file whose LoRA B matrices are all zero (read without loading a model)."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        keys = [k for k in f.keys() if "lora_B" in k]
        if keys and all(float(f.get_tensor(k).abs().max()) == 0.0 for k in keys):
            raise HarnessError(f"adapter: {weights} has LoRA B matrices that are all zero: it changes nothing")


def check_logits_move(peft_model: Any, probes: Sequence[Sequence[int]], what: str) -> None:
    """Next-token logits with the adapter must differ from the base model's on the probe prompts."""
    import torch

    device = next(peft_model.parameters()).device
    was_training = peft_model.training
    peft_model.eval()
    moved = 0.0
    with torch.inference_mode():
        for ids in probes[:4]:
            x = torch.tensor([list(ids)], device=device)
            tuned = peft_model(input_ids=x).logits[0, -1].float()
            with peft_model.disable_adapter():
                base = peft_model(input_ids=x).logits[0, -1].float()
            moved = max(moved, float((tuned - base).abs().max()))
    peft_model.train(was_training)
    if moved <= MIN_LOGIT_CHANGE:
        raise HarnessError(f"{what}: applied, it does not change the model's next-token logits "
                           f"(largest change {moved:.2g}): it was trained for another model or never learned anything")
