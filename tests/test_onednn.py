"""Decoding's fp32 linears through oneDNN on the CPU (harness.engine.onednn): the same logits to float
tolerance, the same greedy answers, gradients untouched, and the model as it was afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.engine import onednn
from harness.engine.greedy import greedy_compact

pytestmark = pytest.mark.skipif(not onednn.available(), reason="this torch has no oneDNN")


@pytest.fixture
def forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFT_HARNESS_ONEDNN", "1")


def _model(path: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()


def test_onednn_linears_give_the_logits_and_greedy_answers_of_torch(tiny_model_dir: Path, forced: None) -> None:
    model = _model(tiny_model_dir)
    ids = torch.randint(5, 1000, (3, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # a left-padded row
    with torch.inference_mode():
        want = model(input_ids=ids, attention_mask=mask).logits
        plain = greedy_compact(model, ids, mask, max_new_tokens=8, stop_ids=[-1])
        linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
        with onednn.fast_linears(model) as switched:
            assert switched == len(linears) > 0
            got = model(input_ids=ids, attention_mask=mask).logits
            fast = greedy_compact(model, ids, mask, max_new_tokens=8, stop_ids=[-1])
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)
    assert fast == plain
    assert not any("forward" in vars(m) for m in linears)  # restored


def test_training_gradients_and_errors_inside_leave_the_model_as_it_was(tiny_model_dir: Path, forced: None) -> None:
    model = _model(tiny_model_dir)
    ids = torch.randint(5, 1000, (2, 6), generator=torch.Generator().manual_seed(1))
    with pytest.raises(RuntimeError, match="inside"):
        with onednn.fast_linears(model):
            # with gradients on, autograd's linear runs: the backward still reaches the weights
            model(input_ids=ids).logits.sum().backward()
            assert model.lm_head.weight.grad is not None
            raise RuntimeError("inside")
    assert not any("forward" in vars(m) for m in model.modules())


def test_off_where_not_faster_and_never_for_other_dtypes(tiny_model_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(tiny_model_dir)
    monkeypatch.setenv("SFT_HARNESS_ONEDNN", "0")
    with onednn.fast_linears(model) as switched:
        assert switched == 0
    monkeypatch.setenv("SFT_HARNESS_ONEDNN", "1")
    with onednn.fast_linears(model.to(torch.bfloat16)) as switched:
        assert switched == 0


def test_the_measurement_compares_the_two_kernels() -> None:
    gain = onednn.measure_gain()
    assert 0.05 < gain < 50  # a ratio of two timings of the same products, whichever is faster here


def test_lora_training_through_onednn_gives_torch_s_gradients(tiny_model_dir: Path, forced: None) -> None:
    """training=True: the frozen base linears forward and pass gradients back through oneDNN; the LoRA
    gradients (what the optimizer steps) equal torch's to float tolerance, also with gradient
    checkpointing (the recomputed forward) and under bf16 autocast (where torch's linear runs)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(_model(tiny_model_dir), LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    ids = torch.randint(5, 1000, (2, 10), generator=torch.Generator().manual_seed(2))
    trained = [p for p in model.parameters() if p.requires_grad]

    def grads() -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()
        return [p.grad.clone() for p in trained]

    want = grads()
    with onednn.fast_linears(model, training=True) as switched:
        frozen = [m for m in model.modules() if type(m) is torch.nn.Linear and not m.weight.requires_grad]
        assert switched > len(frozen) > 0  # the base layers and the head; LoRA's own A and B stay on autograd's path
        got = grads()
        model.base_model.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.base_model.model.enable_input_require_grads()
        checkpointed = grads()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(input_ids=ids, labels=ids).loss.backward()  # autocast: torch's bf16 linear, no error
    for w, g, c in zip(want, got, checkpointed, strict=True):
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-6) and torch.allclose(c, w, rtol=1e-4, atol=1e-6)
    assert not any("forward" in vars(m) for m in model.modules())


def test_the_decoding_and_training_decisions_are_kept_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each decision is measured once per machine and kept in its own cache entry: asking one never
    drops the other (so neither is measured again by the next process)."""
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path))
    monkeypatch.delenv("SFT_HARNESS_PROBES", raising=False)
    monkeypatch.delenv("SFT_HARNESS_ONEDNN", raising=False)
    onednn.faster_here()
    onednn.faster_here(training=True)
    entries = {p.name: p.read_text() for p in (tmp_path / "probe").iterdir()}
    assert len(entries) == 2
    onednn.faster_here()
    onednn.faster_here(training=True)
    assert {p.name: p.read_text() for p in (tmp_path / "probe").iterdir()} == entries


def test_reordered_weights_give_the_same_products_and_leave_with_the_context(tiny_model_dir: Path, forced: None) -> None:
    """Decode steps' linears use a copy of each weight in oneDNN's blocked layout (a prefill's many rows
    do not): the logits equal the plain oneDNN kernel's bit for bit, a weight changed in place inside is reordered again, and no copy
    outlives the context. Linears with a bias too."""
    model = _model(tiny_model_dir)
    ids = torch.randint(5, 1000, (3, 9), generator=torch.Generator().manual_seed(3))
    layer = torch.nn.Linear(64, 48)
    x = torch.randn(5, 64)
    with torch.inference_mode():
        with onednn.fast_linears(model):
            for m in model.modules():  # the plain kernel on the weight as it is
                m.__dict__.pop(onednn._PACKED, None)
            plain = model(input_ids=ids).logits
        with onednn.fast_linears(model):
            model.lm_head(torch.randn(onednn._PACKED_ROWS + 1, model.lm_head.in_features))  # a prefill's rows
            assert model.lm_head.__dict__[onednn._PACKED] is None  # the weight as it is, nothing reordered
            packed = model(input_ids=ids).logits
            slots = [m.__dict__.get(onednn._PACKED) for m in model.modules() if type(m) is torch.nn.Linear]
            assert slots and all(s is not None for s in slots)  # every weight reordered once
            model.lm_head.weight.mul_(2.0)  # in place: the head must see it
            doubled = model(input_ids=ids).logits
            model.lm_head.weight.div_(2.0)
        assert not any(onednn._PACKED in vars(m) for m in model.modules())
        with onednn.fast_linears(layer):
            biased = layer(x)
        assert torch.allclose(biased, torch.nn.functional.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)
    assert torch.equal(packed, plain)
    assert not torch.allclose(doubled, packed)
