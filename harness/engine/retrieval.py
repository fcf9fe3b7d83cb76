"""Dense retrieval over a suite's corpus: chunking, embedding, a cached FAISS index, recall@k.

Documents are split into overlapping windows of the EMBEDDER's tokens, so no chunk is silently
truncated when it is embedded; chunk text is cut from the original string by the fast
tokenizer's character offsets, so passages read exactly as written. Vectors are L2-normalised
and searched by inner product (= cosine). Small corpora get an exact `IndexFlatIP`; past
`hnsw_threshold` chunks an `IndexHNSWFlat`, whose recall@10 against the exact index is measured
at build time and kept in `info()` so a report can show what the approximation costs.

Indexes are cached on disk keyed by (embedder, corpus content, chunking, index kind): a rerun
loads the index and embeds nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.cache import atomic_dir, cache_root, fingerprint
from harness.core.errors import HarnessError
from harness.core.types import Document
from harness.engine.encoder import Encoder, embed
from harness.engine.prompting import Passage

# Bump when the on-disk layout or the chunking rule changes: old entries are then ignored.
INDEX_FORMAT = 2  # 2: keyed on inputs only (threshold, not the chunk count), so a hit needs no chunking
# HNSW graph parameters: M=32 and efConstruction=200 give recall@10 near 0.99 on sentence
# embeddings; efSearch is raised per query to at least the number of chunks fetched.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128
RECALL_SAMPLE = 256  # chunk vectors used as queries to measure HNSW recall against flat
# A document may own many chunks; fetch this many chunks per wanted document before dedup.
OVERFETCH = 4


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    title: str
    text: str

    def embed_text(self) -> str:
        """What is embedded: the title helps matching, e.g. a question that names the topic."""
        return f"{self.title}: {self.text}" if self.title else self.text


@dataclass(frozen=True)
class Hit:
    doc_id: str
    title: str
    text: str
    score: float


def _tokens(tokenizer: Any, texts: list[str]) -> list[list[tuple[int, int]]]:
    """Character offsets of each text's tokens (no special tokens), from a fast tokenizer."""
    if not texts:
        return []
    if not getattr(tokenizer, "is_fast", False):
        raise HarnessError(
            "chunking needs a fast (Rust) tokenizer for character offsets; this embedder has none"
        )
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return [[(int(a), int(b)) for a, b in offs] for offs in enc["offset_mapping"]]


def chunk_corpus(
    docs: Sequence[Document],
    tokenizer: Any,
    *,
    chunk_tokens: int = 128,
    overlap: int = 32,
    max_tokens: int | None = None,
) -> list[Chunk]:
    """Split documents into windows of `chunk_tokens` embedder tokens, `overlap` shared between
    neighbours. `max_tokens` is what the embedder reads (its max_seq_length): windows shrink so
    that "title: text" plus the two special tokens still fits, so nothing gets truncated.
    """
    if chunk_tokens < 1:
        raise HarnessError(f"chunk_tokens must be at least 1, got {chunk_tokens}")
    if not 0 <= overlap < chunk_tokens:
        raise HarnessError(
            f"overlap must be in [0, chunk_tokens): got overlap={overlap}, chunk_tokens={chunk_tokens}"
        )
    titled = [d for d in docs if d.title]
    title_cost = dict(
        zip(
            (d.id for d in titled),
            (len(o) + 1 for o in _tokens(tokenizer, [d.title for d in titled])),
            strict=True,
        )
    )
    chunks: list[Chunk] = []
    for doc, offsets in zip(docs, _tokens(tokenizer, [d.text for d in docs]), strict=True):
        window = chunk_tokens
        if max_tokens is not None:
            # [CLS] + title + ":" + window + [SEP] must fit; keep a floor so a silly title cannot
            # shrink windows to nothing (the title's tail is then what the embedder truncates).
            window = max(min(window, max_tokens - 2 - title_cost.get(doc.id, 0)), min(chunk_tokens, 32))
        step = max(1, window - min(overlap, window - 1))
        if not offsets:  # no tokens (empty text): the title alone can still be matched
            if doc.title:
                chunks.append(Chunk(doc.id, doc.title, doc.text.strip()))
            continue
        start = 0
        while True:
            end = min(start + window, len(offsets))
            chunks.append(Chunk(doc.id, doc.title, doc.text[offsets[start][0] : offsets[end - 1][1]]))
            if end == len(offsets):
                break
            start += step
    return chunks


class RetrievalIndex:
    """A FAISS index over chunks; `search` returns the best chunk of each of the top-k documents."""

    def __init__(self, index: Any, chunks: list[Chunk], encoder: Encoder, meta: dict[str, Any]):
        self.index = index
        self.chunks = chunks
        self.encoder = encoder
        self.meta = meta  # info() content, persisted with the index
        self.fingerprint: str = meta.get("fingerprint", "")
        self._max_chunks_per_doc = max(1, int(meta.get("max_chunks_per_doc", 1)))

    @property
    def kind(self) -> str:
        return str(self.meta["kind"])

    def info(self) -> dict[str, Any]:
        return dict(self.meta)

    def _raw_search(self, vecs: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "hnsw":
            return self.index.search(vecs, fetch, params=_hnsw_params(fetch))
        return self.index.search(vecs, fetch)

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        if not queries:
            return []
        if k < 1 or not self.chunks:
            return [[] for _ in queries]
        vecs = self.encoder.encode(list(queries))  # cached: a rerun embeds nothing
        total = len(self.chunks)
        fetch = min(total, k * min(OVERFETCH, self._max_chunks_per_doc))
        results: list[list[Hit] | None] = [None] * len(queries)
        todo = list(range(len(queries)))
        while todo:  # normally one pass; widened only for queries whose chunks crowd into few docs
            scores, ids = self._raw_search(vecs[todo], fetch)
            retry = []
            for row, qi in enumerate(todo):
                hits = self._dedupe(scores[row], ids[row], k)
                if len(hits) < k and fetch < total:
                    retry.append(qi)
                else:
                    results[qi] = hits
            todo, fetch = retry, min(total, fetch * 4)
        return [r or [] for r in results]

    def _dedupe(self, scores: np.ndarray, ids: np.ndarray, k: int) -> list[Hit]:
        hits: list[Hit] = []
        seen: set[str] = set()
        for score, i in zip(scores, ids, strict=True):
            if i < 0:  # FAISS pads with -1 when fewer results exist
                continue
            c = self.chunks[int(i)]
            if c.doc_id in seen:
                continue
            seen.add(c.doc_id)
            hits.append(Hit(c.doc_id, c.title, c.text, float(score)))
            if len(hits) == k:
                break
        return hits


def corpus_sha256(docs: Sequence[Document]) -> str:
    h = hashlib.sha256()
    for d in docs:
        h.update(json.dumps([d.id, d.title, d.text], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def _hnsw_params(fetch: int) -> Any:
    """Per-call HNSW search parameters: efSearch must be at least the number of results fetched."""
    import faiss

    params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # real, but missing from faiss's stubs
    params.efSearch = max(HNSW_EF_SEARCH, fetch)
    return params


def _hnsw_recall(flat: Any, hnsw: Any, vecs: np.ndarray, k: int = 10, seed: int = 0) -> tuple[float, int]:
    """Mean overlap of HNSW's top-k with the exact top-k, on a seeded sample of chunk vectors."""

    rng = np.random.default_rng(seed)
    n = min(RECALL_SAMPLE, len(vecs))
    sample = vecs[np.sort(rng.choice(len(vecs), size=n, replace=False))]
    k = min(k, len(vecs))
    _, exact = flat.search(sample, k)
    _, approx = hnsw.search(sample, k, params=_hnsw_params(k))
    overlap = [len(set(e.tolist()) & set(a.tolist())) / k for e, a in zip(exact, approx, strict=True)]
    return float(np.mean(overlap)), n


def build_index(
    docs: Sequence[Document],
    encoder: Encoder,
    *,
    chunk_tokens: int = 128,
    overlap: int = 32,
    hnsw_threshold: int = 20000,
    cache_dir: Path | None = None,
    progress: Any = None,
) -> RetrievalIndex:
    """Chunk, embed and index `docs`, or load the same index from the cache.

    The key is computed from the inputs alone (corpus, embedder weights, chunking, threshold), so a
    cached index loads without chunking the corpus or loading the embedder.
    """
    max_tokens = encoder.max_seq_length()
    key = {
        "format": INDEX_FORMAT,
        "embedder": encoder.name,
        "weights": encoder.identity,
        "corpus": corpus_sha256(docs),
        "chunk_tokens": chunk_tokens,
        "overlap": overlap,
        "max_tokens": max_tokens,
        "hnsw_threshold": hnsw_threshold,
        "hnsw": [HNSW_M, HNSW_EF_CONSTRUCTION],
    }
    fp = fingerprint(key)
    entry = (cache_dir if cache_dir is not None else cache_root() / "indexes") / fp
    loaded = _load(entry, encoder)
    if loaded is not None:
        return loaded
    if entry.exists():  # unreadable (e.g. written by an incompatible faiss): replace it
        shutil.rmtree(entry, ignore_errors=True)
    chunks = chunk_corpus(
        docs, encoder.model.tokenizer, chunk_tokens=chunk_tokens, overlap=overlap, max_tokens=max_tokens
    )
    kind = "hnsw" if len(chunks) > hnsw_threshold else "flat"
    return _build(entry, fp, chunks, encoder, kind, chunk_tokens, overlap, progress)


def _build(entry: Path, fp: str, chunks: list[Chunk], encoder: Encoder, kind: str, chunk_tokens: int,
           overlap: int, progress: Any) -> RetrievalIndex:
    import faiss

    t0 = time.perf_counter()
    per_doc: dict[str, int] = {}
    for c in chunks:
        per_doc[c.doc_id] = per_doc.get(c.doc_id, 0) + 1
    meta: dict[str, Any] = {
        "fingerprint": fp,
        "kind": kind,
        "embedder": encoder.name,
        "chunks": len(chunks),
        "documents": len(per_doc),
        "chunk_tokens": chunk_tokens,
        "overlap": overlap,
        "max_chunks_per_doc": max(per_doc.values(), default=1),
    }
    with atomic_dir(entry) as tmp:  # any error in here leaves no cache entry behind
        vecs = embed(encoder.model, [c.embed_text() for c in chunks], progress=progress)
        dim = int(vecs.shape[1])
        flat = faiss.IndexFlatIP(dim)
        flat.add(vecs)
        index: Any = flat
        if kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            hnsw.hnsw.efSearch = HNSW_EF_SEARCH
            # One thread: faiss inserts in parallel in a thread-dependent order, which changes the
            # graph; built single-threaded (fixed level RNG) the same corpus gives the same index.
            # Embedding dominates the build anyway.
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                hnsw.add(vecs)
            finally:
                faiss.omp_set_num_threads(threads)
            meta["recall_vs_flat"], meta["recall_sample"] = _hnsw_recall(flat, hnsw, vecs)
            index = hnsw
            meta["ef_search"] = HNSW_EF_SEARCH
        meta["dim"] = dim
        meta["build_s"] = round(time.perf_counter() - t0, 3)
        faiss.write_index(index, str(tmp / "index.faiss"))
        (tmp / "chunks.json").write_text(
            json.dumps([asdict(c) for c in chunks], ensure_ascii=False), encoding="utf-8"
        )
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    meta["cached"] = False
    return RetrievalIndex(index, chunks, encoder, meta)


def _load(entry: Path, encoder: Encoder) -> RetrievalIndex | None:
    """The cached index at `entry`, or None when absent or unreadable (then it is rebuilt)."""
    import faiss

    if not (entry / "meta.json").exists():
        return None
    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        chunks = [Chunk(**c) for c in json.loads((entry / "chunks.json").read_text(encoding="utf-8"))]
        index = faiss.read_index(str(entry / "index.faiss"))
    except (OSError, ValueError, TypeError, RuntimeError):
        return None
    if index.ntotal != len(chunks):
        return None
    meta["cached"] = True
    return RetrievalIndex(index, chunks, encoder, meta)


def recall_at_k(hits: Sequence[Sequence[Hit]], gold: Sequence[Sequence[str]], k: int) -> float | None:
    """Share of examples (those with gold doc ids) whose top-k hits include a gold document."""
    found = total = 0
    for example_hits, example_gold in zip(hits, gold, strict=True):
        if not example_gold:
            continue
        total += 1
        found += any(h.doc_id in set(example_gold) for h in example_hits[:k])
    return found / total if total else None


def _passage_cost(hit: Hit, count_tokens: Callable[[str], int], number: int) -> int:
    # Mirrors how prompting.user_message renders a passage: "[i] title\ntext" plus a blank line.
    head = f"[{number}] {hit.title}\n" if hit.title else f"[{number}] "
    return count_tokens(head + hit.text + "\n\n")


def _truncate(hit: Hit, count_tokens: Callable[[str], int], budget: int, number: int) -> Hit | None:
    """The longest prefix of the hit's text that fits: cut at a word end, or mid-word if must be."""

    def longest(cuts: list[int]) -> int:  # binary search: cuts are increasing, cost is monotone
        lo, hi = 0, len(cuts)  # invariant: cuts[:lo] all fit
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _passage_cost(replace(hit, text=hit.text[: cuts[mid - 1]]), count_tokens, number) <= budget:
                lo = mid
            else:
                hi = mid - 1
        return cuts[lo - 1] if lo else 0

    end = longest([m.end() for m in re.finditer(r"\S+", hit.text)]) or longest(
        list(range(1, len(hit.text) + 1))
    )
    return replace(hit, text=hit.text[:end]) if end else None


def fit_passages(
    hits: Sequence[Hit], count_tokens: Callable[[str], int], budget_tokens: int
) -> list[Passage]:
    """Hits in rank order while they fit `budget_tokens` of the GENERATOR's tokens.

    If not even the first fits, it is cut to fit rather than leaving the prompt with nothing.
    """
    out: list[Passage] = []
    used = 0
    for i, hit in enumerate(hits, 1):
        cost = _passage_cost(hit, count_tokens, i)
        if used + cost <= budget_tokens:
            out.append(Passage(hit.doc_id, hit.text, hit.title))
            used += cost
            continue
        if not out and budget_tokens > 0:
            cut = _truncate(hit, count_tokens, budget_tokens, i)
            if cut is not None:
                out.append(Passage(cut.doc_id, cut.text, cut.title))
        break
    return out
