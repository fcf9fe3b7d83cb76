"""`sft`, `sft+rag` and `adapter` strategies on a tiny random Llama (and, for retrieval, real MiniLM)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.core.errors import HarnessError
from harness.core.types import Example, GenerationConfig, Suite
from harness.engine.backends.transformers import TransformersBackend
from harness.engine.context import Prepared, StrategyContext
from harness.engine.models import LoadedModel, load_generator
from harness.engine.prompting import build_messages
from strategies import build, from_spec, registry
from strategies.adapter import AdapterStrategy
from strategies.sft import SftRagStrategy, SftStrategy, safe_name
from tests.test_retrieval import DOCS, QUERIES

FAST = {"epochs": 1, "lr": 2e-2, "rank": 4, "alpha": 8, "batch_size": 4, "max_len": 256}


def make_suite(corpus: bool = False) -> Suite:
    train = tuple(
        Example(f"t{i}", q, "positive" if i % 2 else "negative") for i, (q, _) in enumerate(QUERIES)
    )
    return Suite(
        name="tiny-cls",
        task="classification",
        instruction="Is the question about food?",
        labels=("negative", "positive"),
        metrics=("accuracy",),
        generation=GenerationConfig(max_new_tokens=4),
        train=train[:8],
        test=train[8:],
        validation=train[:2],
        corpus=tuple(DOCS) if corpus else (),
    )


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> LoadedModel:
    return load_generator(str(tiny_model_dir), device="cpu")


def make_ctx(tmp_path: Path, generator: LoadedModel) -> StrategyContext:
    return StrategyContext(seed=0, cache_dir=tmp_path / "cache", run_dir=tmp_path / "run",
                           backend=TransformersBackend(generator))


def identity(strategy: Any, prepared: Prepared, generator: LoadedModel, suite: Suite) -> str:
    """The prediction-cache identity the runner gives this strategy after prepare()."""
    from harness.core.cache import fingerprint
    from harness.runner import prediction_identity

    return fingerprint(prediction_identity(strategy, prepared, TransformersBackend(generator), suite))


def test_registered_with_typed_options() -> None:
    assert registry()["sft"] is SftStrategy and registry()["sft+rag"] is SftRagStrategy
    assert registry()["adapter"] is AdapterStrategy
    s = from_spec("sft:epochs=3:lr=3e-4:target_modules=q_proj+v_proj:packing=false")[0]
    assert s.params["epochs"] == 3 and s.params["lr"] == 3e-4 and s.params["packing"] is False
    assert s.params["target_modules"] == ("q_proj", "v_proj")
    assert s.train_config(seed=7).seed == 7
    with pytest.raises(HarnessError, match="epochs"):
        build("sft", {"epochs": "0"})
    with pytest.raises(HarnessError, match="dropout"):
        build("sft", {"dropout": "1.5"})
    with pytest.raises(HarnessError, match="precision"):
        build("sft", {"precision": "fp8"})
    with pytest.raises(HarnessError, match="no option"):
        build("sft", {"epoch": "2"})
    assert safe_name("sft:epochs=3") == "sft_epochs_3"


def test_sft_trains_copies_and_decodes_with_its_adapter(tmp_path: Path, tiny: LoadedModel) -> None:
    from peft import PeftConfig

    suite = make_suite()
    ctx = make_ctx(tmp_path, tiny)
    sft = build("sft", dict(FAST), "sft:fast")
    prepared = sft.prepare(suite, ctx)
    assert prepared.adapter == ctx.run_dir / "adapters" / "sft_fast"
    assert PeftConfig.from_pretrained(str(prepared.adapter)).r == 4
    # The training prompt is the zero-shot prompt: prompt and sft differ only in the weights.
    assert [p.messages for p in sft.prompts(suite.test)] == [
        build_messages(suite, ex.input) for ex in suite.test
    ]
    t = sft.details()["training"]
    assert t["cached"] is False and t["adapter_path"] == "adapters/sft_fast" and t["epochs"] == 1
    assert t["steps"] == 2 and len(t["loss_curve"]) == 2 and [e for e, _ in t["val_loss"]] == [0, 1]
    assert t["train_tokens"] > 0 and 0 <= t["padding_share"] < 0.5 and t["tokens_per_s"] > 0
    assert json.loads((prepared.adapter / "train_report.json").read_text())["loss_curve"] == t["loss_curve"]

    engine = TransformersBackend(tiny, batch_size=2)
    with engine.adapter(prepared.adapter):
        tuned = engine.generate([p.messages for p in sft.prompts(suite.test)], suite.generation)
    base = engine.generate([p.messages for p in sft.prompts(suite.test)], suite.generation)
    assert len(tuned) == len(base) == len(suite.test)

    again = build("sft", dict(FAST), "sft:fast")
    prepared_again = again.prepare(suite, make_ctx(tmp_path, tiny))  # same cache, same data: no training
    assert again.details()["training"]["cached"] is True
    assert identity(again, prepared_again, tiny, suite) == identity(sft, prepared, tiny, suite)
    other = build("sft", {**FAST, "rank": 8})
    prepared_other = other.prepare(suite, make_ctx(tmp_path, tiny))
    assert identity(other, prepared_other, tiny, suite) != identity(sft, prepared, tiny, suite)
    assert other.details()["training"]["cached"] is False


def test_sft_refuses_a_suite_without_train_examples(tiny: LoadedModel, tmp_path: Path) -> None:
    suite = make_suite()
    empty = replace(suite, train=())
    with pytest.raises(HarnessError, match="no train examples"):
        build("sft", {}).check(empty)
    with pytest.raises(HarnessError, match="no corpus"):
        build("sft+rag", {}).check(suite)


def test_sft_rag_trains_on_retrieved_passages(tmp_path: Path, tiny: LoadedModel, monkeypatch: Any) -> None:
    from harness.engine import training

    seen: dict[str, Any] = {}
    real = training.train_adapter

    def spy(**kw: Any) -> Any:
        seen.update(kw)
        return real(**kw)

    monkeypatch.setattr(training, "train_adapter", spy)
    suite = make_suite(corpus=True)
    ctx = make_ctx(tmp_path, tiny)
    s = build("sft+rag", {**FAST, "k": "1"})
    prepared = s.prepare(suite, ctx)
    # Every train prompt carries the passage retrieved for its own input (here the gold one).
    for (chat, answer), ex, (_, gold) in zip(seen["train_pairs"], suite.train, QUERIES, strict=False):
        assert (
            chat[-1]["content"].startswith("Passages:\n") and f"Question: {ex.input}\n" in chat[-1]["content"]
        )
        assert answer == ex.target
        gold_doc = next(d for d in DOCS if d.id == gold)
        assert gold_doc.text[:40] in chat[-1]["content"]
    prompts = s.prompts(suite.test)
    assert all(len(p.retrieved) == 1 for p in prompts)
    d = s.details()
    assert d["training"]["cached"] is False and d["retrieval"]["k"] == 1
    assert set(prepared.artifacts) == {"index", "adapter"} and prepared.adapter is not None


def test_adapter_strategy_rejects_what_is_not_an_adapter(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="needs path"):
        build("adapter", {})
    with pytest.raises(HarnessError, match="not a folder"):
        build("adapter", {"path": str(tmp_path / "missing")})
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text("{}")
    with pytest.raises(HarnessError, match="not a PEFT adapter"):
        build("adapter", {"path": str(tmp_path / "x")})
    (tmp_path / "x" / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (tmp_path / "x" / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(HarnessError, match="safetensors"):
        build("adapter", {"path": str(tmp_path / "x")})


def test_adapter_strategy_evaluates_a_trained_adapter(tmp_path: Path, tiny: LoadedModel) -> None:
    suite = make_suite()
    sft = build("sft", dict(FAST))
    prepared_sft = sft.prepare(suite, make_ctx(tmp_path, tiny))
    copy = tmp_path / "mine"
    shutil.copytree(prepared_sft.adapter, copy)
    a = build("adapter", {"path": str(copy)})
    prepared = a.prepare(suite, make_ctx(tmp_path, tiny))
    assert prepared.adapter == copy.resolve()
    assert [p.messages for p in a.prompts(suite.test)] == [p.messages for p in sft.prompts(suite.test)]
    assert a.details()["adapter"]["r"] == 4 and len(a.details()["adapter"]["sha256"]) == 64
    before = identity(a, prepared, tiny, suite)
    # Retrained in place: other weights, other identity (so predictions are not reused).
    other = build("sft", {**FAST, "lr": 1e-2})
    prepared_other = other.prepare(suite, make_ctx(tmp_path, tiny))
    assert prepared_other.adapter is not None
    (copy / "adapter_model.safetensors").unlink()  # a hard link into the cache: replace, never write through
    shutil.copy(prepared_other.adapter / "adapter_model.safetensors", copy / "adapter_model.safetensors")
    assert identity(a, a.prepare(suite, make_ctx(tmp_path, tiny)), tiny, suite) != before


def test_adapter_for_another_base_model_is_refused(tmp_path: Path, tiny: LoadedModel) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.engine.training import LLAMA_PROJECTIONS, TrainConfig, load_for_training

    config = LlamaConfig(
        vocab_size=len(tiny.tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "base")
    load_for_training(str(tmp_path / "base"), LLAMA_PROJECTIONS, TrainConfig(rank=2), "cpu").save_pretrained(
        str(tmp_path / "lora")
    )
    a = build("adapter", {"path": str(tmp_path / "lora")})
    with pytest.raises(HarnessError, match="does not fit"):
        a.prepare(make_suite(), make_ctx(tmp_path, tiny))


def test_run_records_the_adapter_section(tmp_path: Path, tiny_model_dir: Path, tiny: LoadedModel) -> None:
    """`run` with `adapter:path=...` keeps the strategy's adapter details in results.json."""
    from harness.runner import RunOptions, run
    from tests.test_suites import write_suite

    sft = build("sft", dict(FAST))
    adapter = sft.prepare(make_suite(), make_ctx(tmp_path, tiny)).adapter
    assert adapter is not None
    suite_dir = write_suite(tmp_path / "suite")
    run_dir = run(RunOptions(suite=str(suite_dir), strategies=f"adapter:path={adapter}:name=mine", model=str(tiny_model_dir),
                             out=tmp_path / "runs", device="cpu"))
    entry = json.loads((run_dir / "results.json").read_text())["strategies"]["mine"]
    assert entry["adapter"]["r"] == 4 and entry["adapter"]["peft_type"] == "LORA"
    assert len(entry["adapter"]["sha256"]) == 64 and entry["adapter"]["path"] == str(adapter.resolve())
    assert entry["retrieval"] is None and entry["training"] is None
