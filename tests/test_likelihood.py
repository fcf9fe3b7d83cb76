"""Continuation scores (`Backend.score`) on a tiny random Llama: the shared-prompt path and the whole-
sequence path both equal the log-probabilities of one plain forward pass over prompt + continuation."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.types import ScoreRequest
from harness.engine.backends.transformers import TransformersBackend
from harness.engine.models import load_generator
from harness.engine.prompting import answer_ids, render_chat

CHAT = [{"role": "system", "content": "Classify the sentiment."}, {"role": "user", "content": "I loved every minute."}]
LABELS = ("positive", "negative", "no impact", "mixed feelings about it")


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path) -> TransformersBackend:
    return TransformersBackend(load_generator(str(tiny_model_dir), device="cpu"))


def reference(backend: TransformersBackend, chat: list[dict[str, str]], answer: str) -> tuple[float, int]:
    """Summed log-probability of the answer's tokens (end token included) after the prompt, in one pass."""
    import torch

    tok = backend.tokenizer
    prompt = tok(render_chat(tok, chat), add_special_tokens=False)["input_ids"]
    cont = answer_ids(tok, chat, answer, backend.loaded.end_token_ids())
    ids = torch.tensor([prompt + cont])
    with torch.inference_mode():
        logp = torch.log_softmax(backend.loaded.model(input_ids=ids).logits[0].float(), dim=-1)
    return sum(float(logp[len(prompt) + t - 1, c]) for t, c in enumerate(cont)), len(cont)


def test_labels_score_as_one_plain_forward_pass_would(backend: TransformersBackend) -> None:
    [many] = backend.score([ScoreRequest(CHAT, LABELS)])  # the prompt's cache shared by four labels
    singles = backend.score([ScoreRequest(CHAT, (label,)) for label in LABELS])  # batched whole sequences
    for i, label in enumerate(LABELS):
        want, n = reference(backend, CHAT, label)
        assert many.tokens[i] == singles[i].tokens[0] == n and n >= 2  # the label and an end token
        assert many.logprobs[i] == pytest.approx(want, abs=1e-4)
        assert singles[i].logprobs[0] == pytest.approx(want, abs=1e-4)
    assert many.prompt_tokens > 5 and many.error is None


def test_plain_text_scores_every_token_after_the_first(backend: TransformersBackend) -> None:
    [s] = backend.score([ScoreRequest(None, ("one two three four",))])
    ids = [backend.tokenizer.bos_token_id] + backend.tokenizer("one two three four", add_special_tokens=False)["input_ids"]
    assert s.tokens == (len(ids) - 1,) and s.logprobs[0] < 0
    [cut] = backend.score([ScoreRequest(None, ("one two three four",), max_tokens=3)])
    assert cut.tokens == (2,)
    [empty] = backend.score([ScoreRequest(None, ("",))])
    assert empty.tokens == () and empty.logprobs == ()


def test_prompts_of_different_lengths_scored_together_as_each_alone(backend: TransformersBackend) -> None:
    """Prompts run together are left-padded: each keeps its own positions, so its scores are its own."""
    chats = [CHAT, [CHAT[0], {"role": "user", "content": "A long, winding review " * 12}],
             [CHAT[0], {"role": "user", "content": "Meh."}]]
    together = backend.score([ScoreRequest(c, LABELS) for c in chats])
    for chat, scored in zip(chats, together, strict=True):
        for i, label in enumerate(LABELS):
            want, n = reference(backend, chat, label)
            assert scored.tokens[i] == n and scored.logprobs[i] == pytest.approx(want, abs=1e-4)
