"""A training batch's shared start (the system turn every row begins with) run once, as one row:
the same loss and gradients as the plain forward, and a training that follows the same curve."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.engine.models import load_tokenizer
from harness.engine.training import (
    LLAMA_PROJECTIONS,
    Encoded,
    batch_loss_sum,
    collate,
    encode_pair,
    end_token_ids,
    evaluate,
    fit_lora,
    load_for_training,
)
from harness.engine.training import loop as training_loop
from harness.engine.training.data import shared_start
from harness.engine.training.distributed import Single
from harness.engine.training.shared_start import shares_start
from tests.test_training import FAST, chat, pairs


@pytest.fixture(scope="module")
def tok(tiny_model_dir: Path) -> Any:
    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="module")
def encoded(tok: Any) -> list[Encoded]:
    return [encode_pair(tok, c, a, end_token_ids(tok)) for c, a in pairs(12)]


def _lora(tiny_model_dir: Path) -> Any:
    model = load_for_training(str(tiny_model_dir), LLAMA_PROJECTIONS, FAST, "cpu")
    torch.manual_seed(1)
    for name, p in model.named_parameters():  # a non-zero adapter, so the LoRA layers take part
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    return model


def test_the_shared_start_ends_before_the_first_position_a_loss_reads(tok: Any, encoded: list[Encoded]) -> None:
    seqs = encoded[:5]
    n = shared_start(seqs)
    first = seqs[0].input_ids
    assert n >= 10 and all(s.input_ids[:n] == first[:n] for s in seqs)  # the system turn and more
    assert n == min(s.n_prompt for s in seqs) - 1 or len({s.input_ids[n] for s in seqs}) > 1
    assert collate(seqs, False, pad_id=2).shared == n and collate(seqs, True, pad_id=2).shared == 0
    assert shared_start(seqs[:1]) == 0  # one row: nothing to share
    same = encode_pair(tok, chat("a sunny day"), "positive", end_token_ids(tok))
    assert shared_start([same, same]) == same.n_prompt - 1  # the prompt's last token predicts the answer
    other = encode_pair(tok, [{"role": "system", "content": "Other."}, {"role": "user", "content": "x"}], "y",
                        end_token_ids(tok))
    assert shared_start([same, other]) < n  # only the template's own opening is common


def _loss_and_grads(model: Any, batch: Any, share: bool) -> tuple[float, list[torch.Tensor]]:
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    loss = batch_loss_sum(model, batch, "cpu", "fp32", share)
    loss.backward()
    return float(loss.detach()), [p.grad.clone() for p in params]


def test_running_the_shared_start_once_gives_the_plain_loss_and_gradients(
        tiny_model_dir: Path, encoded: list[Encoded]) -> None:
    model = _lora(tiny_model_dir)
    batch = collate(encoded[:6], False, pad_id=2)  # right-padded rows of different lengths
    assert batch.shared > 0
    plain, plain_grads = _loss_and_grads(model, batch, share=False)
    shared, shared_grads = _loss_and_grads(model, batch, share=True)
    assert shared == pytest.approx(plain, rel=1e-5)
    for a, b in zip(plain_grads, shared_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    # It can fail: a start longer than what the rows share gives every row the first row's tokens.
    wrong = replace(batch, shared=batch.shared + 3)
    assert _loss_and_grads(model, wrong, share=True)[0] != pytest.approx(plain, rel=1e-3)
    with torch.no_grad():  # and validation (no gradients) takes it as well
        assert evaluate(model, encoded, FAST, 2, "cpu", share_start=True) == pytest.approx(
            evaluate(model, encoded, FAST, 2, "cpu"), rel=1e-5)


def test_a_training_with_the_start_run_once_follows_the_plain_curve(
        tiny_model_dir: Path, encoded: list[Encoded], monkeypatch: pytest.MonkeyPatch) -> None:
    config = replace(FAST, epochs=2)
    curves, calls = [], []
    run_once = training_loop.logits_after_shared_start

    def counted(*args: Any) -> Any:
        calls.append(1)
        return run_once(*args)

    monkeypatch.setattr(training_loop, "logits_after_shared_start", counted)
    for share in (True, False):
        monkeypatch.setattr(training_loop, "shares_start", lambda *a, _s=share: _s)
        model = load_for_training(str(tiny_model_dir), LLAMA_PROJECTIONS, config, "cpu")
        report = fit_lora(model, encoded, config, pad_id=2, validation=encoded[:4], device="cpu")
        curves.append([loss for _, loss in report.loss_curve + report.val_loss])
        if share:  # every training and validation batch of the run took the shared start
            assert len(calls) == len(report.loss_curve) + len(report.val_loss) and calls
    assert len(calls) == len(curves[0])  # and none without it
    assert curves[0] == pytest.approx(curves[1], rel=1e-4)
    assert curves[0][len(curves[0]) // 2] < curves[0][0]  # it trained


def test_the_start_is_shared_only_in_one_cpu_process_without_dropout(tiny_model_dir: Path) -> None:
    model = load_for_training(str(tiny_model_dir), LLAMA_PROJECTIONS, FAST, "cpu")
    assert shares_start(model, FAST, "cpu", Single())
    assert not shares_start(model, FAST, "cuda", Single())  # a GPU: one more call, no time saved
    for changed in (dict(dropout=0.1), dict(gradient_checkpointing=True), dict(packing=True)):
        assert not shares_start(model, replace(FAST, **changed), "cpu", Single())

    class TwoProcesses(Single):
        world = 2

    assert not shares_start(model, FAST, "cpu", TwoProcesses())
