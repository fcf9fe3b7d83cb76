"""The LoRA loop on a tiny random Llama: labels, packing, learning, round trip, cache."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.core.errors import HarnessError
from harness.engine import training
from harness.engine.generate import Engine
from harness.engine.models import load_tokenizer
from harness.engine.training import (
    LLAMA_PROJECTIONS,
    Encoded,
    TrainConfig,
    batch_loss_sum,
    collate,
    encode_all,
    encode_pair,
    end_token_ids,
    evaluate,
    fit_lora,
    load_for_training,
    train_adapter,
)
from harness.engine.training import loop as training_loop
from harness.engine.training.data import shared_start
from harness.engine.training.distributed import Single
from harness.engine.training.shared_start import shares_start

SYSTEM = {
    "role": "system",
    "content": "Classify the sentiment. Answer with exactly one label: negative; positive.",
}
WORDS = ["sunny", "gloomy", "bright", "dark", "warm", "cold", "joy", "grief"]


def chat(text: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": text}]


def pairs(n: int) -> list[tuple[list[dict[str, str]], str]]:
    # A learnable rule: an even word index is positive. Lengths vary so packing has work to do.
    out = []
    for i in range(n):
        w = WORDS[i % len(WORDS)]
        out.append((chat(f"a {w} day " + "and more " * (i % 4)), "positive" if i % 2 == 0 else "negative"))
    return out


# fp32 where a test compares numbers exactly; bf16 has its own test.
FAST = TrainConfig(
    epochs=3, lr=2e-2, rank=8, alpha=16, batch_size=4, max_len=128, warmup=0.0, seed=0, precision="fp32"
)


@pytest.fixture(scope="module")
def tok(tiny_model_dir: Path) -> Any:
    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="module")
def encoded(tok: Any) -> list[Encoded]:
    return [encode_pair(tok, c, a, end_token_ids(tok)) for c, a in pairs(12)]


def test_labels_cover_only_the_answer_and_end_of_turn(tok: Any) -> None:
    c = chat("a sunny day")
    enc = encode_pair(tok, c, "positive", end_token_ids(tok))
    # The prompt tokens are exactly what the decoding engine feeds the model.
    engine = Engine.__new__(Engine)
    engine.tokenizer = tok
    assert list(enc.input_ids[: enc.n_prompt]) == engine.encode(c)
    answer = [t for t in enc.labels if t != -100]
    assert tok.decode(answer) == "positive<|im_end|>"  # no trailing newline after the end token
    assert answer[-1] == tok.eos_token_id
    assert enc.labels[: enc.n_prompt] == [-100] * enc.n_prompt
    assert enc.labels[enc.n_prompt :] == list(enc.input_ids[enc.n_prompt :])
    assert len(enc.labels) == len(enc.input_ids)


def test_template_free_tokenizer_still_gets_an_end_token(tok: Any) -> None:
    plain = load_tokenizer(tok.name_or_path)
    plain.chat_template = None
    enc = encode_pair(plain, chat("hi"), "positive", end_token_ids(plain))
    assert plain.decode(list(enc.input_ids[enc.n_prompt :])) == " positive<|im_end|>"


def test_too_long_examples_are_skipped_and_counted(tok: Any) -> None:
    items = [(chat("short"), "positive"), (chat("long " * 200), "negative")]
    kept, skipped = encode_all(tok, items, end_token_ids(tok), max_len=64)
    assert len(kept) == 1 and skipped == 1


def _loss(model: Any, seqs: list[Encoded], packing: bool) -> float:
    with torch.no_grad():
        return float(batch_loss_sum(model, collate(seqs, packing, pad_id=2), "cpu"))


def test_packing_gives_the_same_loss_as_unpacked(tiny_model_dir: Path, encoded: list[Encoded]) -> None:
    model = load_for_training(str(tiny_model_dir), LLAMA_PROJECTIONS, FAST, "cpu")
    for name, p in model.named_parameters():  # a non-zero adapter, so LoRA layers take part
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    model.eval()
    seqs = encoded[:6]
    one_by_one = sum(_loss(model, [s], packing=False) for s in seqs)
    packed = _loss(model, seqs, packing=True)
    padded = _loss(model, seqs, packing=False)
    assert packed == pytest.approx(one_by_one, rel=1e-5)
    assert padded == pytest.approx(one_by_one, rel=1e-5)
    # The test can fail: positions that do not restart let sequences attend to each other.
    wrong = collate(seqs, True, pad_id=2)
    wrong.tensors["position_ids"] = torch.arange(wrong.tokens)[None]
    with torch.no_grad():
        assert float(batch_loss_sum(model, wrong, "cpu")) != pytest.approx(one_by_one, rel=1e-3)


def test_padded_batches_report_their_padding(encoded: list[Encoded]) -> None:
    batch = collate([encoded[0], encoded[3]], packing=False, pad_id=2)
    assert batch.slots == 2 * max(len(encoded[0]), len(encoded[3]))
    assert batch.tokens == len(encoded[0]) + len(encoded[3])
    assert collate(encoded[:4], packing=True, pad_id=2).slots == sum(len(s) for s in encoded[:4])


@pytest.mark.parametrize(("packing", "precision"), [(True, "fp32"), (False, "fp32"), (False, "bf16")])
def test_training_lowers_the_loss(
    tiny_model_dir: Path, encoded: list[Encoded], packing: bool, precision: str
) -> None:
    config = replace(FAST, packing=packing, precision=precision)
    model = load_for_training(str(tiny_model_dir), LLAMA_PROJECTIONS, config, "cpu")
    report = fit_lora(model, encoded, config, pad_id=2, validation=encoded[:4])
    losses = [loss for _, loss in report.loss_curve]
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3]), report.loss_curve  # last epoch vs first
    assert [e for e, _ in report.val_loss] == [0, 1, 2, 3]
    assert report.val_loss[-1][1] < 0.8 * report.val_loss[0][1], report.val_loss
    assert report.steps == 3 * 3 and report.train_tokens == 3 * sum(len(s) for s in encoded)
    assert report.target_tokens == 3 * sum(len(s) - s.n_prompt for s in encoded)
    assert (report.padding_share == 0) if packing else (0 <= report.padding_share < 0.5)
    assert report.tokens_per_s > 0 and report.precision == precision


def test_same_seed_same_training(tiny_model_dir: Path, encoded: list[Encoded]) -> None:
    curves = []
    for _ in range(2):
        model = load_for_training(str(tiny_model_dir), LLAMA_PROJECTIONS, FAST, "cpu")
        curves.append(fit_lora(model, encoded, replace(FAST, epochs=1), pad_id=2).loss_curve)
    assert curves[0] == curves[1]


def test_saved_adapter_gives_identical_logits(
    tiny_model_dir: Path, encoded: list[Encoded], tmp_path: Path
) -> None:
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM

    model = load_for_training(str(tiny_model_dir), LLAMA_PROJECTIONS, FAST, "cpu")
    fit_lora(model, encoded, replace(FAST, epochs=1), pad_id=2)
    model.save_pretrained(str(tmp_path))
    assert PeftConfig.from_pretrained(str(tmp_path)).r == FAST.rank
    reloaded = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), str(tmp_path)
    )
    model.eval()
    reloaded.eval()
    ids = torch.tensor([list(encoded[0].input_ids)])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, reloaded(input_ids=ids).logits)
        assert evaluate(model, encoded, FAST, 2, "cpu") == evaluate(reloaded, encoded, FAST, 2, "cpu")


def _train(tiny_model_dir: Path, tok: Any, cache: Path, **kw: Any) -> training.TrainedAdapter:
    return train_adapter(
        model_path=str(tiny_model_dir),
        model_id="tiny",
        tokenizer=tok,
        train_pairs=pairs(8),
        validation_pairs=pairs(3),
        config=replace(FAST, epochs=1),
        cache_dir=cache,
        **kw,
    )


def test_cache_hit_skips_training(tiny_model_dir: Path, tok: Any, tmp_path: Path, monkeypatch: Any) -> None:
    first = _train(tiny_model_dir, tok, tmp_path)
    assert not first.cached and (first.path / "adapter_model.safetensors").exists()
    saved = json.loads((first.path / training.REPORT_FILE).read_text())
    assert saved["loss_curve"] == first.report.loss_curve and saved["val_loss"]

    def no_training(*a: Any, **k: Any) -> None:
        raise AssertionError("trained again on a cache hit")

    monkeypatch.setattr(training, "train_lora", no_training)
    second = _train(tiny_model_dir, tok, tmp_path)
    assert second.cached and second.key == first.key and second.report == first.report
    # Different model, device, data or hyper-parameters make a different entry.
    seq = [Encoded((1, 2, 3), 1)]
    keys = {
        training.adapter_key("tiny", "cpu", [], [], FAST),
        training.adapter_key("tiny", "cpu", [], [], replace(FAST, lr=1e-4)),
        training.adapter_key("other", "cpu", [], [], FAST),
        training.adapter_key("tiny", "cuda", [], [], FAST),
        training.adapter_key("tiny", "cpu", seq, [], FAST),
        training.adapter_key("tiny", "cpu", [Encoded((1, 2, 3), 2)], [], FAST),
    }
    assert len(keys) == 6


class ExplodingProgress:
    """A progress bar whose second update is a Ctrl-C in the middle of training."""

    def __init__(self) -> None:
        self.updates = 0

    def add_task(self, *a: Any, **k: Any) -> int:
        return 0

    def update(self, *a: Any, **k: Any) -> None:
        self.updates += 1
        if self.updates == 2:
            raise KeyboardInterrupt


def test_interrupted_training_leaves_no_cache_entry(tiny_model_dir: Path, tok: Any, tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_model_dir, tok, tmp_path, progress=ExplodingProgress())
    assert list((tmp_path / "adapters").iterdir()) == []  # neither the entry nor a temp folder
    done = _train(tiny_model_dir, tok, tmp_path)  # and the next run trains from scratch
    assert not done.cached and [p.name for p in (tmp_path / "adapters").iterdir()] == [done.key]


def test_all_examples_too_long_is_a_clear_error(tiny_model_dir: Path, tok: Any, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="max_len"):
        train_adapter(
            model_path=str(tiny_model_dir),
            model_id="tiny",
            tokenizer=tok,
            train_pairs=pairs(2),
            config=replace(FAST, max_len=16),
            cache_dir=tmp_path,
        )


def test_unknown_target_modules_are_a_clear_error(tiny_model_dir: Path) -> None:
    with pytest.raises(HarnessError, match="target_modules"):
        load_for_training(str(tiny_model_dir), ("no_such_proj",), FAST, "cpu")


def test_auto_precision_is_bf16_only_where_torch_multiplies_it_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from harness.engine.training.loop import resolve_precision

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True})
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert resolve_precision("auto", "cpu") == "bf16"
    # The CPU has it, but torch's kernels are capped at AVX2 (ATEN_CPU_CAPABILITY=avx2): emulated, so fp32.
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True})
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # asked for: as asked


# -- the shared start run once (harness.engine.training.shared_start) -------------------------


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
