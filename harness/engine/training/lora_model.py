"""The model a training fits: a fresh copy of the base weights with LoRA layers (4-bit NF4 base weights for
QLoRA, activation checkpointing if asked); the decoding model is never touched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.core.errors import HarnessError
from harness.engine.adapter_checks import no_match_error
from harness.engine.training.config import TrainConfig


def load_for_training(
    model_path: str, target_modules: Sequence[str], config: TrainConfig, device: str
) -> Any:
    """A fresh copy of the base weights with LoRA layers: the decoding model is never touched."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32, attn_implementation="sdpa",
                                                **_quantization(config, device))
    if config.quantize == "4bit":
        from peft import prepare_model_for_kbit_training

        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=config.gradient_checkpointing,
                                               gradient_checkpointing_kwargs={"use_reentrant": False})
    elif config.gradient_checkpointing:
        # transformers 5 renamed it (the old name warns); non-reentrant: works with frozen inputs
        enable = getattr(base, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.enable_input_require_grads()  # the frozen embeddings must still pass gradients on to LoRA
    torch.manual_seed(config.seed)  # LoRA A matrices are initialised from the global generator
    targets: str | list[str] = (
        "all-linear" if tuple(target_modules) == ("all-linear",) else list(target_modules)
    )
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(base, lora)
    except ValueError as e:
        raise no_match_error(target_modules, base, e) from e
    from harness.engine.training.zero import is_partitioned

    if config.quantize == "4bit" or is_partitioned(model):
        return model  # placed already: 4-bit weights by bitsandbytes, ZeRO-3 partitions by DeepSpeed
    return model.to(device)


def _quantization(config: TrainConfig, device: str) -> dict[str, Any]:
    """from_pretrained arguments for QLoRA (4-bit NF4 base weights), refused where it cannot run."""
    if config.quantize == "none":
        return {}
    if config.quantize != "4bit":
        raise HarnessError(f"quantize must be none or 4bit, not {config.quantize!r}")
    if not device.startswith("cuda"):
        raise HarnessError("sft:quantize=4bit (QLoRA) needs a CUDA GPU: bitsandbytes' 4-bit kernels do not run on "
                           f"{device}; train without it here, or with sft:gradient_checkpointing=true to save memory")
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise HarnessError("sft:quantize=4bit needs bitsandbytes: pip install bitsandbytes")
    import torch
    from transformers import BitsAndBytesConfig

    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.bfloat16)
    return {"quantization_config": bnb, "device_map": {"": device}}
