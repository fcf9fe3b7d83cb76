"""Shared fixtures: a tiny randomly initialised Llama with the real SmolLM2 tokenizer.

Unit tests use it for speed; the end-to-end tests use the real default models.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# GGUF conversions are shared by every test, whatever cache it sets (each costs 10-30 s).
os.environ.setdefault("SFT_HARNESS_MODELS", str(Path(os.environ.get("SFT_HARNESS_CACHE",
                                                                     Path.home() / ".cache" / "sft-harness")) / "models"))
# So are the per-machine measurements (harness.engine.probe: a few seconds at each fresh cache otherwise).
os.environ.setdefault("SFT_HARNESS_PROBES", str(Path(os.environ["SFT_HARNESS_MODELS"]).parent / "probe"))


@pytest.fixture(scope="session")
def default_model_dir() -> str:
    """The real default generator, converted to safetensors in the cache (once per machine)."""
    from harness.engine.models import materialize, resolve

    return materialize(resolve("smollm2-135m-instruct"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, default_model_dir: str) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.engine.models import load_tokenizer

    tok = load_tokenizer(default_model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        # A wide init gives peaked logits, so greedy choices are not float-noise ties.
        initializer_range=0.2, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
