"""Leakage between the test split and everything a strategy can see: train, validation, corpus.

Checked before any model work (`harness.runner.run`, `sft-harness validate`), on the scored test
examples. Kinds, each reported per split with the ids of both sides:

- `exact`: the normalised test input (casefold, punctuation stripped, whitespace collapsed) equals
  a train/validation input (for a corpus: a passage's text).
- `reordered`: the same sentences in another order (a sorted multiset of normalised sentences).
- `ngram`: a word 13-gram of the test input occurs in a train/validation input or target (the
  decontamination rule of lm-evaluation-harness). Inputs under 13 words have no 13-gram: they can
  only be caught as exact, reordered or near duplicates (`short_inputs` counts them).
- `near`: cosine similarity of the embeddings (the run's embedder, a FAISS IndexFlatIP over
  L2-normalised vectors, top-1 per test example) at or above the threshold (default 0.95).
- `passage` (qa suites with a corpus): a passage that contains the answer is expected; one that
  contains the test question (a shared 13-gram, or for a short question the whole normalised
  question) and its answer is leakage; no embedding check there (a paraphrased question with its
  answer sits close to its passage by design). Other tasks check the corpus like train (exact,
  ngram, near).

Duplicates inside the test split are found with the same kinds and reported apart
(`test_duplicates`): they weigh an example twice but leak nothing, so they do not make an example
"leaked" (the clean subset keeps them).
"""

from __future__ import annotations

import functools
import re
import sys
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.core.types import Example, Suite
from harness.engine.encoder import Encoder

NGRAM = 13
DEFAULT_THRESHOLD = 0.95
KINDS = ("exact", "reordered", "ngram", "near", "passage")
KIND_TEXT = {"exact": "exact duplicate(s)", "reordered": "reordered copy(ies)", "ngram": "13-gram overlap(s)",
             "near": "near-duplicate(s)", "passage": "passage(s) holding question and answer"}
_SENTENCE_END = re.compile(r"[.!?\n]+")


@functools.cache
def _punctuation() -> dict[int, str]:
    """Every punctuation and symbol code point -> a space (built once: ~0.3 s; translate is C speed)."""
    return {cp: " " for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp))[0] in "PS"}


def normalize(text: str) -> str:
    """Casefolded, punctuation and symbols as spaces, whitespace collapsed (NFKC first)."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_punctuation())
    return " ".join(text.split())


def sentence_key(text: str) -> tuple[str, ...]:
    """The sorted normalised sentences: equal for two texts whose sentences are a permutation."""
    return tuple(sorted(s for p in _SENTENCE_END.split(text) if (s := normalize(p))))


def ngram_hashes(text: str, n: int = NGRAM) -> np.ndarray:
    """int64 hashes of the word n-grams of the normalised text (empty under n words)."""
    words = normalize(text).split()
    return np.fromiter((hash(" ".join(words[i : i + n])) for i in range(len(words) - n + 1)), dtype=np.int64)


@dataclass(frozen=True)
class Leak:
    kind: str
    split: str  # train | validation | corpus | test (a duplicate inside the test split)
    test_id: str
    other_id: str
    score: float | None = None  # cosine for `near`

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "split": self.split, "test_id": self.test_id, "other_id": self.other_id,
                "score": None if self.score is None else round(self.score, 4)}


@dataclass
class LeakageReport:
    n_test: int
    pairs: list[Leak] = field(default_factory=list)
    test_duplicates: list[Leak] = field(default_factory=list)
    threshold: float | None = None  # None: near-duplicates were not checked (no embedder)
    embedder: str | None = None
    short_inputs: int = 0
    seconds: float = 0.0
    embedder_loaded: bool = False  # whether the embedder's weights loaded (vectors not all cached)

    @property
    def leaked_ids(self) -> set[str]:
        return {p.test_id for p in self.pairs}

    def counts(self, pairs: Sequence[Leak] | None = None) -> dict[str, dict[str, int]]:
        """{kind: {split: number of distinct test examples}}."""
        seen: dict[str, dict[str, set[str]]] = {}
        for p in self.pairs if pairs is None else pairs:
            seen.setdefault(p.kind, {}).setdefault(p.split, set()).add(p.test_id)
        return {k: {s: len(ids) for s, ids in sorted(by.items())} for k, by in sorted(seen.items(), key=_kind_order)}

    def summary(self) -> str:
        """One line: 'N test examples leak: 3 exact duplicate(s) of train, ...' or 'no leakage ...'."""
        parts = [f"{n} {KIND_TEXT.get(k, k)} of {s}" for k, by in self.counts().items() for s, n in by.items()]
        dup = self.counts(self.test_duplicates)
        dups = sum(len({p.test_id for p in self.test_duplicates if p.kind == k}) for k in dup)
        tail = f"; {dups} duplicate(s) inside test" if dups else ""
        near = "" if self.threshold is not None else " (near-duplicates not checked)"
        if not parts:
            return f"no leakage among {self.n_test} test examples{near}{tail}"
        return f"{len(self.leaked_ids)} of {self.n_test} test examples leak: {', '.join(parts)}{near}{tail}"

    def lines(self, limit: int) -> list[str]:
        """The first `limit` pairs (leaks, then duplicates inside test), one line each."""
        return [f"  {p.kind:<9} {p.split:<10} {p.test_id} ~ {p.other_id}"
                + (f" cosine {p.score:.3f}" if p.score is not None else "")
                for p in [*self.pairs, *self.test_duplicates][: max(limit, 0)]]

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": True, "n_test": self.n_test, "n_leaked": len(self.leaked_ids),
            "leaked_ids": sorted(self.leaked_ids), "counts": self.counts(),
            "pairs": [p.to_json() for p in self.pairs],
            "test_duplicates": [p.to_json() for p in self.test_duplicates],
            "test_duplicate_counts": self.counts(self.test_duplicates),
            "thresholds": {"ngram": NGRAM, "near_cosine": self.threshold},
            "embedder": self.embedder, "short_inputs": self.short_inputs, "seconds": round(self.seconds, 3),
            "summary": self.summary(),
        }


def _kind_order(item: tuple[str, Any]) -> int:
    return KINDS.index(item[0]) if item[0] in KINDS else len(KINDS)


# --------------------------------------------------------------------------- the checks


class _Seen:
    """One split a strategy can see: ids, the texts compared whole, the texts probed by 13-grams."""

    def __init__(self, split: str, ids: list[str], whole: list[str], grams_of: list[str]):
        self.split, self.ids, self.whole = split, ids, whole
        self.exact: dict[str, int] = {}
        self.order: dict[tuple[str, ...], int] = {}
        for i, text in enumerate(whole):
            self.exact.setdefault(normalize(text), i)
            self.order.setdefault(sentence_key(text), i)
        hashes = [ngram_hashes(t) for t in grams_of]
        owners = np.repeat(np.arange(len(hashes), dtype=np.int64), [len(h) for h in hashes])
        flat = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.int64)
        sort = np.argsort(flat, kind="stable")
        self.grams, self.owners = flat[sort], owners[sort]

    def gram_owner(self, probe: np.ndarray) -> int | None:
        """The first owner of any of the probe's 13-grams, or None."""
        if not len(probe) or not len(self.grams):
            return None
        pos = np.minimum(np.searchsorted(self.grams, probe), len(self.grams) - 1)
        hit = np.flatnonzero(self.grams[pos] == probe)
        return int(self.owners[pos[hit[0]]]) if len(hit) else None


def _example_text(e: Example) -> str:
    return "\n".join([e.input, *e.references()])


def _seen_splits(suite: Suite) -> list[_Seen]:
    out = [_Seen(name, [e.id for e in split], [e.input for e in split], [_example_text(e) for e in split])
           for name, split in (("train", suite.train), ("validation", suite.validation)) if split]
    if suite.corpus and suite.task != "qa":
        texts = [d.text for d in suite.corpus]
        out.append(_Seen("corpus", [d.id for d in suite.corpus], texts, texts))
    return out


def _text_leaks(tests: Sequence[Example], seen: _Seen) -> list[Leak]:
    out = []
    for e in tests:
        if (j := seen.exact.get(normalize(e.input))) is not None:
            out.append(Leak("exact", seen.split, e.id, seen.ids[j]))
        elif (j := seen.order.get(sentence_key(e.input))) is not None:
            out.append(Leak("reordered", seen.split, e.id, seen.ids[j]))
        if (j := seen.gram_owner(ngram_hashes(e.input))) is not None:
            out.append(Leak("ngram", seen.split, e.id, seen.ids[j]))
    return out


class _WordIndex:
    """Which passages hold a word: sorted (word hash, passage) pairs, so a short question is checked
    against the few passages that hold its rarest word, not against the whole corpus."""

    def __init__(self, passages: Sequence[str]):
        sets = [set(p.split()) for p in passages]
        words = np.fromiter((hash(w) for ws in sets for w in ws), dtype=np.int64)
        owners = np.repeat(np.arange(len(sets), dtype=np.int64), [len(ws) for ws in sets])
        order = np.argsort(words, kind="stable")
        self.words, self.passages = words[order], owners[order]

    def candidates(self, question: str) -> list[int]:
        """The passages holding the question's two rarest words (each passage once, ascending)."""
        spans = []
        for word in set(question.split()):
            h = hash(word)
            spans.append((int(np.searchsorted(self.words, h, "left")), int(np.searchsorted(self.words, h, "right"))))
        spans.sort(key=lambda span: span[1] - span[0])
        found = self.passages[spans[0][0] : spans[0][1]] if spans else self.passages[:0]
        for lo, hi in spans[1:2]:
            found = np.intersect1d(found, self.passages[lo:hi])
        return sorted(set(found.tolist()))


def _passage_leaks(suite: Suite, tests: Sequence[Example]) -> list[Leak]:
    """qa: a passage (title and text) holding the question and one of its answers."""
    passages = [normalize(f"{d.title}\n{d.text}") for d in suite.corpus]
    seen = _Seen("corpus", [d.id for d in suite.corpus], [], [f"{d.title}\n{d.text}" for d in suite.corpus])
    out = []
    words: _WordIndex | None = None
    for e in tests:
        q, answers = normalize(e.input), [a for r in e.references() if (a := normalize(r))]
        if not q or not answers:
            continue
        probe = ngram_hashes(e.input)
        if len(probe):  # the passages sharing a 13-gram with the question
            pos = np.minimum(np.searchsorted(seen.grams, probe), max(len(seen.grams) - 1, 0))
            hits = pos[seen.grams[pos] == probe] if len(seen.grams) else pos[:0]
            candidates = sorted({int(seen.owners[p]) for p in hits})
        else:  # a short question: the passages holding its rarest word, then the whole question
            words = words or _WordIndex(passages)
            candidates = [j for j in words.candidates(q) if f" {q} " in f" {passages[j]} "]
        for j in candidates:
            if any(f" {a} " in f" {passages[j]} " for a in answers):
                out.append(Leak("passage", "corpus", e.id, seen.ids[j]))
                break
    return out


def _test_duplicates(tests: Sequence[Example]) -> list[Leak]:
    out: list[Leak] = []
    exact: dict[str, str] = {}
    order: dict[tuple[str, ...], str] = {}
    for e in tests:
        if (first := exact.setdefault(normalize(e.input), e.id)) != e.id:
            out.append(Leak("exact", "test", e.id, first))
        elif (first := order.setdefault(sentence_key(e.input), e.id)) != e.id:
            out.append(Leak("reordered", "test", e.id, first))
    hashes = [ngram_hashes(e.input) for e in tests]
    owners = np.repeat(np.arange(len(tests), dtype=np.int64), [len(h) for h in hashes])
    flat = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.int64)
    if len(flat):
        sort = np.lexsort((owners, flat))
        h, o = flat[sort], owners[sort]
        starts = np.r_[0, np.flatnonzero(np.diff(h)) + 1]
        first = o[np.repeat(starts, np.diff(np.r_[starts, len(h)]))]
        found = dict.fromkeys(zip(o[o != first].tolist(), first[o != first].tolist(), strict=True))
        out += [Leak("ngram", "test", tests[a].id, tests[b].id) for a, b in found]
    return out


# --------------------------------------------------------------------------- near-duplicates


def _top1(base: np.ndarray, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return scores, ids


def near_pairs(base: np.ndarray, queries: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """(query index, base index, cosine) of each query whose nearest base vector reaches the threshold."""
    if not len(base) or not len(queries):
        return []
    scores, ids = _top1(base, queries)
    return [(int(i), int(ids[i, 0]), float(scores[i, 0])) for i in np.flatnonzero(scores[:, 0] >= threshold - 1e-6)]


def _near_leaks(suite: Suite, tests: Sequence[Example], encoder: Any, threshold: float) -> tuple[list[Leak], list[Leak]]:
    test_vecs = encoder.encode([e.input for e in tests])
    leaks = []
    sides: list[tuple[str, list[str], list[str]]] = [
        (name, [e.id for e in split], [e.input for e in split])
        for name, split in (("train", suite.train), ("validation", suite.validation)) if split]
    # A qa corpus is meant to hold the answers (a paraphrased question with its answer is close to
    # its passage in embedding space): there the passage rule decides, not the embedding.
    if suite.corpus and suite.task != "qa":
        sides.append(("corpus", [d.id for d in suite.corpus], [d.text for d in suite.corpus]))
    for name, ids, texts in sides:
        for i, j, score in near_pairs(encoder.encode(texts), test_vecs, threshold):
            leaks.append(Leak("near", name, tests[i].id, ids[j], score))
    dups = []
    if len(tests) > 1:
        scores, nearest = _top1(test_vecs, test_vecs, k=2)
        pairs = set()
        for i in range(len(tests)):
            for s, j in zip(scores[i].tolist(), nearest[i].tolist(), strict=True):
                if j != i and j >= 0 and s >= threshold - 1e-6 and (min(i, j), max(i, j)) not in pairs:
                    pairs.add((min(i, j), max(i, j)))
                    dups.append(Leak("near", "test", tests[max(i, j)].id, tests[min(i, j)].id, float(s)))
    return leaks, dups


def check_leakage(
    suite: Suite,
    examples: Sequence[Example] | None = None,
    *,
    encoder: Any = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> LeakageReport:
    """Leakage of `examples` (default: the whole test split) into what a strategy can see.

    `encoder`: a `harness.engine.encoder.Encoder` (anything with `encode(texts)` -> L2-normalised
    float32 rows and a `name`); None skips the near-duplicate check (`threshold` is then None)."""
    start = time.perf_counter()
    tests = list(suite.test if examples is None else examples)
    pairs = [leak for seen in _seen_splits(suite) for leak in _text_leaks(tests, seen)]
    if suite.corpus and suite.task == "qa":
        pairs += _passage_leaks(suite, tests)
    dups = _test_duplicates(tests)
    if encoder is not None:
        near, near_dups = _near_leaks(suite, tests, encoder, threshold)
        pairs += near
        dups += near_dups
    return LeakageReport(
        n_test=len(tests), pairs=pairs, test_duplicates=dups,
        threshold=threshold if encoder is not None else None,
        embedder=getattr(encoder, "name", None) if encoder is not None else None,
        short_inputs=sum(1 for e in tests if len(normalize(e.input).split()) < NGRAM),
        seconds=time.perf_counter() - start,
        embedder_loaded=bool(getattr(encoder, "loaded", False)),
    )


def failure_message(report: LeakageReport) -> str:
    """The one line `--fail-on-leakage` stops a run with."""
    return f"{report.summary()}; see `sft-harness validate SUITE` (or run without --fail-on-leakage)"


def run_encoder(embedder: str, *, trust_remote_code: bool = False, optional: bool = False) -> Encoder | None:
    """The run's one embedder, shared by the leakage check and the strategies (it loads only for
    vectors not cached yet). `optional` (no strategy embeds): when it is not installed, None, and
    the leakage check skips near-duplicates and says so."""
    from harness.core.errors import HarnessError

    try:
        return Encoder(embedder, trust_remote_code=trust_remote_code)
    except HarnessError:
        if not optional:
            raise
        return None


def check_run_leakage(
    suite: Suite,
    examples: Sequence[Example],
    *,
    encoder: Encoder | None,
    threshold: float = DEFAULT_THRESHOLD,
    fail: bool = False,
) -> LeakageReport:
    """The runner's check; `fail`: any leak is a HarnessError (exit 2) before any model work."""
    from harness.core.errors import HarnessError

    report = check_leakage(suite, examples, encoder=encoder, threshold=threshold)
    if fail and report.pairs:
        raise HarnessError(failure_message(report))
    return report


def check_validate_leakage(suite: Suite, embedder: str | None, threshold: float = DEFAULT_THRESHOLD) -> LeakageReport:
    """`sft-harness validate`'s check: text checks only, near-duplicates too when `embedder` is given."""
    from harness.core.errors import HarnessError
    from harness.engine.encoder import Encoder

    if not 0 < threshold <= 1:  # NaN included
        raise HarnessError(f"--leakage-threshold must be a cosine above 0 and at most 1, got {threshold}")
    return check_leakage(suite, encoder=Encoder(embedder) if embedder else None, threshold=threshold)
