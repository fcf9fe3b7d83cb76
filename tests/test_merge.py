"""An adapter folded into a copy of the weights decodes as the unmerged adapter does, leaves the
base weights as they were, and a merged export folder loads as a plain model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.core.types import GenerationConfig
from harness.engine import merge
from harness.engine.backends.transformers import TransformersBackend
from harness.engine.models import LoadedModel, load_generator

CHATS = [[{"role": "user", "content": text}] for text in
         ("What is the capital of France?", "Name a colour.", "Count to three, please, slowly and clearly.", "Hi")]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> LoadedModel:
    return load_generator(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def adapter(tiny: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter whose B matrices are not zero (peft's init_lora_weights=False): it moves the logits."""
    from peft import LoraConfig, get_peft_model

    path = tmp_path_factory.mktemp("adapter")
    torch.manual_seed(1)
    peft_model = get_peft_model(tiny.model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                       init_lora_weights=False))
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.data.mul_(0.3)  # enough to change answers, not so much that they are noise
    peft_model.save_pretrained(path)
    peft_model.unload()
    return path


def _decode(backend: TransformersBackend, adapter: Path) -> tuple[list[str], torch.Tensor, str]:
    ids = backend.tokenizer("The answer is", return_tensors="pt")["input_ids"]
    with backend.adapter(adapter):
        texts = [g.text for g in backend.generate(CHATS, GenerationConfig(max_new_tokens=12))]
        with torch.inference_mode():
            logits = backend.model(ids).logits
        kind = type(backend.model).__name__
    return texts, logits, kind


def test_a_merged_copy_decodes_as_the_unmerged_adapter(tiny: LoadedModel, adapter: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    backend = TransformersBackend(tiny)
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    base_texts = [g.text for g in backend.generate(CHATS, GenerationConfig(max_new_tokens=12))]
    merged_texts, merged_logits, merged_kind = _decode(backend, adapter)
    # the path a tight memory takes: the adapter stays unmerged
    monkeypatch.setattr("harness.engine.backends.transformers.copy_fits", lambda model, margin=1.5: False)
    peft_texts, peft_logits, peft_kind = _decode(backend, adapter)
    assert merged_kind == "LlamaForCausalLM" and peft_kind.startswith("PeftModel")
    assert merged_texts == peft_texts and merged_texts != base_texts
    torch.testing.assert_close(merged_logits, peft_logits, rtol=1e-4, atol=1e-4)
    after = tiny.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_merge_adapter_writes_a_plain_model_folder(tiny: LoadedModel, tiny_model_dir: Path, adapter: Path,
                                                   tmp_path: Path) -> None:
    out = merge.merge_adapter(str(tiny_model_dir), adapter, tmp_path / "merged")
    assert list(out.glob("*.safetensors")) and (out / "tokenizer_config.json").is_file()
    merged = TransformersBackend(load_generator(str(out), device="cpu"))
    texts = [g.text for g in merged.generate(CHATS, GenerationConfig(max_new_tokens=12))]
    assert texts == _decode(TransformersBackend(tiny), adapter)[0]
