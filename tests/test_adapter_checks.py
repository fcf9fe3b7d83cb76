"""Adapters that do nothing are refused; the default target_modules fit several architectures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.core.errors import HarnessError
from harness.engine.models import load_tokenizer
from harness.engine.training import TrainConfig, train_adapter
from tests.test_training import FAST, pairs


def tiny_model(kind: str, vocab: int, folder: Path, tok: Any) -> Path:
    """A tiny randomly initialised model of one architecture, saved with the SmolLM2 tokenizer."""
    import torch
    import transformers as t

    common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config, cls = {
        "llama": (lambda: t.LlamaConfig(**common), t.LlamaForCausalLM),
        "qwen2": (lambda: t.Qwen2Config(**common), t.Qwen2ForCausalLM),
        "gemma3": (lambda: t.Gemma3TextConfig(**common, head_dim=16, sliding_window=64), t.Gemma3ForCausalLM),
        "phi3": (lambda: t.Phi3Config(**common), t.Phi3ForCausalLM),
    }[kind]
    torch.manual_seed(0)
    cls(config()).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tok(tiny_model_dir: Path) -> Any:
    return load_tokenizer(str(tiny_model_dir))


def train(folder: Path, tok: Any, config: TrainConfig, cache: Path) -> Any:
    return train_adapter(model_path=str(folder), model_id=str(folder), tokenizer=tok, train_pairs=pairs(8),
                         config=config, device="cpu", cache_dir=cache)


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gemma3", "phi3"])
def test_the_default_target_modules_train_every_architecture(kind: str, tok: Any, tmp_path: Path) -> None:
    from safetensors import safe_open

    folder = tiny_model(kind, len(tok), tmp_path / kind, tok)
    assert TrainConfig().target_modules == ("all-linear",)
    trained = train(folder, tok, replace(FAST, target_modules=TrainConfig().target_modules), tmp_path / "cache")
    with safe_open(str(trained.path / "adapter_model.safetensors"), framework="pt") as f:
        adapted = {k.split(".lora_A.")[0].rsplit(".", 1)[-1] for k in f.keys() if ".lora_A." in k}
    assert len(adapted) >= 3 and "lm_head" not in adapted  # attention and MLP layers, never the head


def test_target_modules_that_match_nothing_list_the_layers(tok: Any, tmp_path: Path) -> None:
    folder = tiny_model("qwen2", len(tok), tmp_path / "m", tok)
    with pytest.raises(HarnessError, match=r"match no layer of this model .*its linear layers are: .*q_proj"):
        train(folder, tok, replace(FAST, target_modules=("nothing_here",)), tmp_path / "cache")


def test_an_adapter_that_never_moved_is_refused(tok: Any, tmp_path: Path) -> None:
    folder = tiny_model("llama", len(tok), tmp_path / "m", tok)
    with pytest.raises(HarnessError, match="every LoRA B matrix is zero"):
        train(folder, tok, replace(FAST, lr=0.0), tmp_path / "cache")
    assert not list((tmp_path / "cache" / "adapters").glob("*/adapter_config.json"))  # nothing cached


def test_a_zero_adapter_file_is_refused_and_a_dead_one_on_apply(tok: Any, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from harness.engine.adapter_checks import check_b_nonzero_file
    from harness.engine.backends.transformers import TransformersBackend
    from harness.engine.models import load_generator

    folder = tiny_model("llama", len(tok), tmp_path / "m", tok)
    trained = train(folder, tok, FAST, tmp_path / "cache")
    weights = trained.path / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    zeroed = {k: torch.zeros_like(v) if "lora_B" in k else v for k, v in tensors.items()}
    dead = tmp_path / "dead"
    dead.mkdir()
    save_file(zeroed, str(dead / "adapter_model.safetensors"))
    (dead / "adapter_config.json").write_text((trained.path / "adapter_config.json").read_text())
    with pytest.raises(HarnessError, match="all zero"):
        check_b_nonzero_file(dead / "adapter_model.safetensors")
    engine = TransformersBackend(load_generator(str(folder), device="cpu"))
    with pytest.raises(HarnessError, match="does not change the model's next-token logits"):
        with engine.adapter(dead):
            pass
    with engine.adapter(trained.path):  # the trained one moves the logits
        assert engine.model is not engine.loaded.model
