"""Retrieval with the real MiniLM embedder and real FAISS indexes: chunking, search, HNSW, cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.core.types import Document
from harness.engine.encoder import Encoder
from harness.engine.models import load_embedder
from harness.engine.retrieval import (
    Hit,
    build_index,
    chunk_corpus,
    embed,
    fit_passages,
    recall_at_k,
)

# Ten short documents on distinct topics, and questions that paraphrase rather than copy them.
DOCS = [
    Document(
        "volcano",
        "Volcanoes form where magma from the mantle reaches the surface. Eruptions eject lava, ash and gases, and the layered ash builds steep stratovolcanoes such as Mount Fuji.",
        "Volcanoes",
    ),
    Document(
        "bread",
        "Sourdough bread rises because wild yeast and lactic acid bacteria in the starter ferment the flour, releasing carbon dioxide that is trapped by the gluten network.",
        "Sourdough baking",
    ),
    Document(
        "chess",
        "In chess, castling moves the king two squares toward a rook and places the rook on the other side of the king. It is illegal if the king is in check.",
        "Chess rules",
    ),
    Document(
        "photosynthesis",
        "Plants use sunlight, water and carbon dioxide to make glucose in their chloroplasts, giving off oxygen as a by-product. Chlorophyll absorbs mostly red and blue light.",
        "Photosynthesis",
    ),
    Document(
        "refund",
        "Customers can return an unused item within 30 days of delivery for a full refund. Refunds go back to the original payment method within five business days.",
        "Refund policy",
    ),
    Document(
        "password",
        "To reset your password, open the sign-in page, choose 'Forgot password' and follow the link we email you. The link expires after one hour.",
        "Account password",
    ),
    Document(
        "jupiter",
        "Jupiter is the largest planet in the solar system, a gas giant with a Great Red Spot, a storm larger than Earth that has raged for centuries.",
        "Jupiter",
    ),
    Document(
        "vaccine",
        "Vaccines train the immune system by exposing it to a harmless piece or weakened form of a pathogen, so that memory cells respond quickly to a real infection.",
        "How vaccines work",
    ),
    Document(
        "coffee",
        "Espresso is brewed by forcing hot water at about nine bars of pressure through finely ground coffee, producing a concentrated shot topped with crema.",
        "Espresso",
    ),
    Document(
        "bicycle",
        "To fix a flat bicycle tyre, remove the wheel, lever off the tyre, find the puncture in the inner tube, patch or replace it, then reinflate to the rated pressure.",
        "Bike repair",
    ),
]
QUERIES = [
    ("How do mountains that spit molten rock come about?", "volcano"),
    ("Why does naturally leavened dough get bigger?", "bread"),
    ("When am I not allowed to swap my king and rook?", "chess"),
    ("How do green plants turn light into food?", "photosynthesis"),
    ("Can I get my money back if I send the product back?", "refund"),
    ("I forgot my login credentials, what do I do?", "password"),
    ("What is the biggest world orbiting the sun?", "jupiter"),
    ("How do immunisations protect people from disease?", "vaccine"),
    ("How is a strong Italian coffee shot made?", "coffee"),
    ("My bike wheel has a puncture, how do I repair it?", "bicycle"),
]


@pytest.fixture(scope="module")
def embedder() -> Any:
    return load_embedder("all-minilm-l6-v2")


def enc(model: Any, tmp_path: Path) -> Encoder:
    """An Encoder around an already loaded (or counting) model; its vector cache beside tmp_path."""
    encoder = Encoder("all-minilm-l6-v2", cache_dir=tmp_path.parent / f"{tmp_path.name}-vectors")
    encoder._model = model
    return encoder


class CountingEmbedder:
    """The real embedder, with its encode calls counted (and optionally made to fail)."""

    def __init__(self, real: Any, fail: bool = False):
        self.real, self.fail, self.calls = real, fail, 0
        self.tokenizer = real.tokenizer
        self.max_seq_length = real.max_seq_length

    def get_embedding_dimension(self) -> int:
        return self.real.get_embedding_dimension()

    def encode(self, texts: list[str], **kw: Any) -> Any:
        self.calls += 1
        if self.fail:
            raise KeyboardInterrupt("interrupted mid-build")
        return self.real.encode(texts, **kw)


def long_text(n_sentences: int) -> str:
    return " ".join(
        f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(n_sentences)
    )


# ---- chunking ---------------------------------------------------------------------------------


def test_short_docs_are_one_chunk_each(embedder: Any) -> None:
    chunks = chunk_corpus(DOCS, embedder.tokenizer)
    assert [c.doc_id for c in chunks] == [d.id for d in DOCS]
    assert [c.text for c in chunks] == [d.text for d in DOCS]  # offsets cut the original text exactly
    assert chunks[0].title == "Volcanoes" and chunks[0].embed_text().startswith("Volcanoes: ")


def test_long_doc_chunks_overlap_and_are_substrings(embedder: Any) -> None:
    tok = embedder.tokenizer
    text = long_text(60) + " Café naïve résumé — “quotes”."  # accents and punctuation survive
    doc = Document("long", text, "A long one")
    chunks = chunk_corpus([doc, DOCS[0]], tok, chunk_tokens=40, overlap=10)
    mine = [c for c in chunks if c.doc_id == "long"]
    assert len(mine) > 5 and chunks[-1].doc_id == "volcano"
    n_tokens = len(tok(text, add_special_tokens=False)["input_ids"])
    assert len(mine) == 1 + -(-(n_tokens - 40) // 30)  # windows of 40, stride 30
    starts = []
    for c in mine:
        assert c.text in text and c.title == "A long one"
        assert len(tok(c.text, add_special_tokens=False)["input_ids"]) <= 40
        starts.append(text.index(c.text))
    assert starts == sorted(starts) and starts[0] == 0
    assert mine[-1].text.endswith("“quotes”.")
    for a, b in zip(mine, mine[1:], strict=False):
        tail = tok(a.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"][-10:]
        shared = a.text[tail[0][0] :]
        assert b.text.startswith(shared)  # the last 10 tokens of a chunk open the next one


def test_window_shrinks_so_title_and_chunk_fit_the_embedder(embedder: Any) -> None:
    tok = embedder.tokenizer
    doc = Document("t", long_text(80), "a fairly long title " * 5)
    for c in chunk_corpus([doc], tok, chunk_tokens=250, overlap=0, max_tokens=embedder.max_seq_length):
        assert len(tok(c.embed_text())["input_ids"]) <= embedder.max_seq_length


def test_bad_chunk_params(embedder: Any) -> None:
    from harness.core.errors import HarnessError

    with pytest.raises(HarnessError, match="overlap"):
        chunk_corpus(DOCS, embedder.tokenizer, chunk_tokens=32, overlap=32)


def test_embed_is_normalised_float32_in_input_order(embedder: Any) -> None:
    texts = [d.text for d in DOCS]
    vecs = embed(embedder, texts, batch_size=3)
    assert vecs.dtype.name == "float32" and vecs.shape == (10, 384)
    ref = embedder.encode(texts, normalize_embeddings=True)
    assert abs(vecs - ref).max() < 1e-5
    assert abs((vecs**2).sum(1) - 1).max() < 1e-5


# ---- search -----------------------------------------------------------------------------------


def test_retrieves_the_gold_document(embedder: Any, tmp_path: Path) -> None:
    index = build_index(DOCS, enc(embedder, tmp_path), cache_dir=tmp_path)
    assert index.kind == "flat"
    info = index.info()
    assert (
        info["chunks"] == 10
        and info["documents"] == 10
        and info["dim"] == 384
        and "recall_vs_flat" not in info
    )
    hits = index.search([q for q, _ in QUERIES], k=3)
    gold = [(g,) for _, g in QUERIES]
    assert all(len(h) == 3 and len({x.doc_id for x in h}) == 3 for h in hits)
    assert all(h[0].score >= h[1].score >= h[2].score for h in hits)
    r1 = recall_at_k(hits, gold, 1)
    assert r1 is not None and r1 >= 0.9
    assert recall_at_k(hits, gold, 3) == 1.0


def test_search_returns_distinct_documents_from_many_chunks(embedder: Any, tmp_path: Path) -> None:
    # One document with many chunks about chess must not crowd the others out of the top-k.
    chess = Document("chess-long", " ".join([DOCS[2].text] * 30), "Chess rules, at length")
    index = build_index(
        [chess, *DOCS],
        enc(embedder, tmp_path),
        chunk_tokens=32,
        overlap=8,
        cache_dir=tmp_path,
    )
    assert index.info()["chunks"] > 20
    (hits,) = index.search(["castling the king in chess"], k=4)
    ids = [h.doc_id for h in hits]
    assert len(ids) == 4 == len(set(ids)) and set(ids[:2]) == {"chess-long", "chess"}
    assert index.search([], k=3) == []


def test_recall_at_k_by_hand() -> None:
    def hits(*ids: str) -> list[Hit]:
        return [Hit(i, "", "", 1.0) for i in ids]

    ranked = [hits("a", "b", "c"), hits("x", "y", "a"), hits("p", "q", "r"), hits("a")]
    gold = [("a",), ("a", "z"), ("r",), ()]  # the last example has no gold: skipped
    assert recall_at_k(ranked, gold, 1) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, gold, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, gold, 3) == pytest.approx(1.0)
    assert recall_at_k(ranked, [(), (), (), ()], 3) is None


def test_hnsw_path_reports_recall_against_flat(embedder: Any, tmp_path: Path) -> None:
    docs = [*DOCS, *(Document(f"filler-{i}", long_text(6 + i % 5), f"Filler {i}") for i in range(20))]
    index = build_index(docs, enc(embedder, tmp_path),
        chunk_tokens=48,
        overlap=8,
        hnsw_threshold=5,
        cache_dir=tmp_path,
    )
    info = index.info()
    assert index.kind == "hnsw" and info["chunks"] > 5
    assert info["recall_vs_flat"] >= 0.95 and info["recall_sample"] == min(256, info["chunks"])
    hits = index.search([q for q, _ in QUERIES], k=3)
    assert recall_at_k(hits, [(g,) for _, g in QUERIES], 3) == 1.0
    flat = build_index(docs, enc(embedder, tmp_path), chunk_tokens=48, overlap=8, cache_dir=tmp_path
    )
    assert flat.kind == "flat" and flat.fingerprint != index.fingerprint  # the threshold is part of the key


# ---- cache ------------------------------------------------------------------------------------


def test_second_build_loads_from_disk_without_embedding(embedder: Any, tmp_path: Path) -> None:
    first = CountingEmbedder(embedder)
    a = build_index(DOCS, enc(first, tmp_path), cache_dir=tmp_path)
    assert first.calls > 0 and a.info()["cached"] is False
    second = CountingEmbedder(embedder)
    b = build_index(DOCS, enc(second, tmp_path), cache_dir=tmp_path)
    assert second.calls == 0 and b.info()["cached"] is True and b.fingerprint == a.fingerprint
    queries = [q for q, _ in QUERIES]
    assert a.search(queries, 3) == b.search(queries, 3)
    # Any change to the corpus or the chunking is a different entry.
    c = build_index(DOCS[:-1], enc(second, tmp_path), cache_dir=tmp_path)
    d = build_index(DOCS, enc(second, tmp_path), chunk_tokens=64, cache_dir=tmp_path)
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3
    assert len([p for p in tmp_path.iterdir()]) == 3


def test_interrupted_build_leaves_no_cache_entry(embedder: Any, tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        build_index(
            DOCS, enc(CountingEmbedder(embedder, fail=True), tmp_path), cache_dir=tmp_path
        )
    assert list(tmp_path.iterdir()) == []  # neither an entry nor a leftover temp folder
    counting = CountingEmbedder(embedder)
    first = build_index(DOCS, enc(counting, tmp_path), cache_dir=tmp_path)
    assert counting.calls > 0  # the next build really builds
    (tmp_path / first.fingerprint / "index.faiss").write_bytes(b"not an index")
    again = build_index(DOCS, enc(counting, tmp_path), cache_dir=tmp_path)
    assert again.info()["cached"] is False  # an unreadable entry is rebuilt and replaced
    assert (
        build_index(DOCS, enc(counting, tmp_path), cache_dir=tmp_path).info()["cached"]
        is True
    )


# ---- context budget ---------------------------------------------------------------------------


def words(text: str) -> int:
    return len(text.split())


def test_fit_passages_keeps_rank_order_within_budget() -> None:
    hits = [
        Hit("a", "A", "one two three four", 0.9),
        Hit("b", "", "five six seven", 0.8),
        Hit("c", "C", "eight", 0.7),
    ]
    # Costs with the "[i] title\n" header: a = 2 + 4 = 6 words, b = 1 + 3 = 4, c = 2 + 1 = 3.
    assert [p.doc_id for p in fit_passages(hits, words, 100)] == ["a", "b", "c"]
    assert [p.doc_id for p in fit_passages(hits, words, 10)] == ["a", "b"]
    # Rank order is kept: c would fit after a, but b does not and retrieval stops there.
    assert [p.doc_id for p in fit_passages(hits, words, 9)] == ["a"]
    passages = fit_passages(hits, words, 4)  # not even the first fits: it is cut, not dropped
    assert [(p.doc_id, p.title, p.text) for p in passages] == [("a", "A", "one two")]
    assert fit_passages(hits, words, 0) == [] and fit_passages([], words, 50) == []


def test_fit_passages_counts_generator_tokens() -> None:
    from harness.engine.models import load_tokenizer, materialize, resolve

    tok = load_tokenizer(materialize(resolve("smollm2-135m-instruct")))

    def count(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False))

    hits = [Hit(d.id, d.title, d.text, 1.0) for d in DOCS]
    for budget in (20, 60, 150, 400):
        passages = fit_passages(hits, count, budget)
        assert (
            passages
            and sum(count(f"[{i}] {p.title}\n{p.text}\n\n") for i, p in enumerate(passages, 1)) <= budget
        )
        assert [p.doc_id for p in passages] == [d.id for d in DOCS[: len(passages)]]
    assert DOCS[0].text.startswith(fit_passages(hits, count, 20)[0].text)
