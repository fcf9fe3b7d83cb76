"""The `rag` strategy end to end on a tiny suite: real MiniLM, real FAISS, the generator's tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.core.errors import HarnessError
from harness.core.types import Example, GenerationConfig, Suite
from harness.engine.backends.transformers import TransformersBackend
from harness.engine.context import StrategyContext
from harness.engine.encoder import Encoder
from harness.engine.models import (
    DEFAULT_EMBEDDER,
    LoadedModel,
    load_embedder,
    load_tokenizer,
    materialize,
    resolve,
)
from strategies import build
from strategies.rag import RagStrategy, Retriever
from tests.test_retrieval import DOCS, QUERIES


@pytest.fixture(scope="module")
def embedder() -> Any:
    return load_embedder(DEFAULT_EMBEDDER)


def make_encoder(tmp_path: Path, model: Any) -> Encoder:
    encoder = Encoder(DEFAULT_EMBEDDER, cache_dir=tmp_path / "cache")
    encoder._model = model  # share one loaded MiniLM across the module's tests
    return encoder


@pytest.fixture(scope="module")
def generator() -> LoadedModel:
    # Only the tokenizer matters to retrieval (it measures the passage budget): no weights loaded.
    path = materialize(resolve("smollm2-135m-instruct"))
    return LoadedModel("smollm2-135m-instruct", path, load_tokenizer(path), "cpu", "float32", "")


def make_ctx(tmp_path: Path, generator: LoadedModel, embedder: Any) -> StrategyContext:
    return StrategyContext(seed=0, cache_dir=tmp_path / "cache", run_dir=tmp_path / "run",
                           backend=TransformersBackend(generator), encoder=make_encoder(tmp_path, embedder))


def make_suite(corpus: bool = True) -> Suite:
    test = tuple(Example(f"q{i}", q, "answer", doc_ids=(gold,)) for i, (q, gold) in enumerate(QUERIES))
    return Suite(
        name="tiny-faq",
        task="qa",
        instruction="Answer the question.",
        labels=(),
        metrics=("accuracy",),
        generation=GenerationConfig(),
        train=(Example("t0", "What is sourdough?", "A bread."),),
        test=test + (Example("q-nogold", "Tell me about espresso.", "A coffee."),),
        corpus=tuple(DOCS) if corpus else (),
    )


def test_rag_prompts_carry_the_gold_passage(tmp_path: Path, generator: LoadedModel, embedder: Any) -> None:
    suite = make_suite()
    rag = build("rag", {"k": "2"})
    assert isinstance(rag, RagStrategy) and rag.params["k"] == 2
    rag.prepare(suite, make_ctx(tmp_path, generator, embedder))
    prompts = rag.prompts(suite.test)
    assert len(prompts) == len(suite.test)
    by_id = {d.id: d for d in DOCS}
    hits = 0
    for ex, prompt in zip(suite.test, prompts, strict=True):
        assert len(prompt.retrieved) == 2 and len(set(prompt.retrieved)) == 2
        user = prompt.messages[-1]
        assert user["role"] == "user" and user["content"].startswith("Passages:\n")
        assert f"\n\nQuestion: {ex.input}\nAnswer the question using the passages' own words." in user["content"]
        for doc_id in prompt.retrieved:  # every named document is really in the prompt
            assert by_id[doc_id].text in user["content"]
        if ex.doc_ids and ex.doc_ids[0] == prompt.retrieved[0]:
            hits += 1
    assert hits >= 9  # the gold document ranks first for (nearly) every paraphrased question
    retrieval = rag.details()["retrieval"]
    assert retrieval["k"] == 2 and retrieval["recall_at_k"] == 1.0  # 10 gold examples; the 11th skipped
    assert retrieval["index"]["kind"] == "flat" and retrieval["index"]["documents"] == 10


def test_fingerprint_follows_the_index(tmp_path: Path, generator: LoadedModel, embedder: Any) -> None:
    ctx = make_ctx(tmp_path, generator, embedder)
    a, b, c = RagStrategy(), RagStrategy(), RagStrategy(chunk_tokens=64)
    pa, pb, pc = (s.prepare(make_suite(), ctx) for s in (a, b, c))
    assert pa.artifacts == pb.artifacts != pc.artifacts
    assert b.details()["retrieval"]["index"]["cached"] is True  # the second prepare loaded from disk
    assert pa.artifacts["index"] == a.details()["retrieval"]["index"]["fingerprint"]


def test_budget_limits_passages_in_generator_tokens(
    tmp_path: Path, generator: LoadedModel, embedder: Any
) -> None:
    rag = RagStrategy(k=3, budget=40)
    rag.prepare(make_suite(), make_ctx(tmp_path, generator, embedder))
    (prompt,) = rag.prompts([Example("x", QUERIES[0][0], "")])
    assert prompt.retrieved == ("volcano",)  # the first passage alone is ~40 tokens: cut to fit
    content = prompt.messages[-1]["content"]
    passage = content.split("[1] Volcanoes\n", 1)[1].split("\n\nQuestion:", 1)[0]
    assert DOCS[0].text.startswith(passage) and len(generator.tokenizer.encode(passage)) < 40


def test_retriever_api_for_sft_rag(tmp_path: Path, generator: LoadedModel, embedder: Any) -> None:
    retriever = Retriever()
    fp = retriever.prepare(
        make_suite(),
        make_ctx(tmp_path, generator, embedder),
        k=1,
        chunk_tokens=128,
        overlap=32,
        budget_tokens=768,
        hnsw_threshold=20000,
    )
    assert retriever.index is not None and fp == retriever.index.fingerprint
    [(passages, ids)] = retriever.passages_for([QUERIES[4][0]])
    assert ids == ("refund",) and passages[0].text == DOCS[4].text and passages[0].title == "Refund policy"
    assert retriever.details()["retrieval"]["recall_at_k"] is None  # nothing scored yet
    retriever.measure_recall(make_suite().test)
    assert retriever.details()["retrieval"]["recall_at_k"] >= 0.9


def test_recall_covers_only_the_scored_examples(tmp_path: Path, generator: LoadedModel, embedder: Any) -> None:
    suite = make_suite()
    rag = RagStrategy(k=1)
    rag.prepare(suite, make_ctx(tmp_path, generator, embedder))
    rag.prompts(suite.test[:2])  # as with --limit 2
    assert set(rag.retriever._hits) == {ex.input for ex in suite.test[:2]}  # nothing else was embedded
    assert rag.details()["retrieval"]["recall_at_k"] is not None


@pytest.mark.parametrize(
    "options, message",
    [
        ({"k": "0"}, "k must be at least 1"),
        ({"chunk_tokens": "0"}, "chunk_tokens must be at least 1"),
        ({"chunk_tokens": "32", "overlap": "32"}, "overlap (32) must be smaller than chunk_tokens (32)"),
        ({"overlap": "-1"}, "overlap must be 0 or more"),
        ({"budget": "0"}, "budget must be at least 1"),
    ],
)
def test_retrieval_options_are_refused_when_built(options: dict[str, str], message: str) -> None:
    from strategies.sft import SftRagStrategy

    for cls in (RagStrategy, SftRagStrategy):
        with pytest.raises(HarnessError) as e:
            cls(**options)
        assert message in str(e.value)


def test_no_corpus_is_a_clear_error(tmp_path: Path, generator: LoadedModel, embedder: Any) -> None:
    with pytest.raises(
        HarnessError, match=r"suite tiny-faq has no corpus: rag needs \[corpus\] in suite.toml"
    ):
        RagStrategy().prepare(make_suite(corpus=False), make_ctx(tmp_path, generator, embedder))
    with pytest.raises(HarnessError, match="no option 'kk'"):
        RagStrategy(kk=3)
