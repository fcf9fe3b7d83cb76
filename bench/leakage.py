"""Benchmark: the cost of the leakage check (harness.engine.leakage).

1. Every built-in suite with the real embedder, cold (an empty embedding cache: the embedder loads
   and embeds every text) and warm (vectors cached, as on every later run).
2. A synthetic suite of N train and N test examples (random-word sentences, 8-30 words; 10 exact
   copies and 10 13-gram overlaps planted, which the summary must find): the text
   checks (exact, reordered, 13-gram) measured on the full N; the embedding part measured on
   --embed-n texts and extrapolated linearly to 2N texts; the FAISS IndexFlatIP top-1 search
   measured on N x N random unit vectors of the embedder's width (384).
3. A synthetic qa suite: N short questions against N passages, 10 passages holding a question and
   its answer (the passage rule).

    .venv/bin/python bench/leakage.py [--n 100000] [--embed-n 2000] [--skip-suites]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from harness.cli import _quiet_libraries  # noqa: E402
from harness.core.suites import builtin_suite_names, load_suite  # noqa: E402
from harness.core.types import Document, Example, GenerationConfig, Suite  # noqa: E402
from harness.engine.encoder import Encoder  # noqa: E402
from harness.engine.leakage import check_leakage, near_pairs  # noqa: E402


def suites() -> None:
    with tempfile.TemporaryDirectory() as cache:
        for name in builtin_suite_names():
            suite = load_suite(name)
            cold = check_leakage(suite, encoder=Encoder("all-minilm-l6-v2", cache_dir=Path(cache)))
            warm = check_leakage(suite, encoder=Encoder("all-minilm-l6-v2", cache_dir=Path(cache)))
            text = check_leakage(suite)
            n = suite.sizes()
            print(f"{name:<16} test {n['test']:>4} train {n['train']:>4} valid {n['validation']:>3} corpus "
                  f"{n['corpus']:>4}: cold {cold.seconds:6.2f} s, warm {warm.seconds:5.2f} s, text checks only "
                  f"{text.seconds:5.3f} s | {warm.summary()}")


def synthetic(n: int, seed: int = 0) -> Suite:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20000)]

    def sentence() -> str:
        return " ".join(rng.choices(vocab, k=rng.randint(8, 30))) + "."

    train = tuple(Example(f"tr{i}", sentence(), "a") for i in range(n))
    test = [Example(f"te{i}", sentence(), "a") for i in range(n)]
    long = [e for e in train[10:] if len(e.input.split()) >= 14][:10]
    for i in range(10):  # planted: 10 verbatim copies (shouted), 10 copies of 13 words inside a longer text
        test[i] = Example(f"te{i}", train[i].input.upper(), "a")
        test[10 + i] = Example(f"te{10 + i}", f"so {' '.join(long[i].input.split()[:13])} and more", "a")
    return Suite(name="synthetic", task="classification", instruction="", labels=("a",), metrics=("accuracy",),
                 generation=GenerationConfig(), train=train, test=tuple(test))


def qa_corpus(n: int, seed: int = 1) -> Suite:
    """n short questions (6-10 words) with 5-word answers and n passages of 40-80 words; in 10 of
    the passages the question and its answer are planted."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20000)]

    def words(lo: int, hi: int) -> str:
        return " ".join(rng.choices(vocab, k=rng.randint(lo, hi)))

    test = tuple(Example(f"q{i}", words(6, 10) + "?", words(5, 5)) for i in range(n))
    corpus = [Document(f"d{i}", words(40, 80)) for i in range(n)]
    for i in range(10):
        corpus[i] = Document(f"d{i}", f"{words(10, 20)} {test[i].input} {test[i].target} {words(10, 20)}")
    return Suite(name="synthetic-qa", task="qa", instruction="", labels=(), metrics=("f1",),
                 generation=GenerationConfig(), train=(), test=test, corpus=tuple(corpus))


def big(n: int, embed_n: int) -> None:
    qa = qa_corpus(n)
    start = time.perf_counter()
    report = check_leakage(qa)
    print(f"synthetic qa, {n} short questions x {n} passages: passage rule {time.perf_counter() - start:.1f} s "
          f"({report.summary()})")
    suite = synthetic(n)
    start = time.perf_counter()
    report = check_leakage(suite)
    print(f"synthetic {n} train x {n} test: exact + reordered + 13-gram {time.perf_counter() - start:.1f} s "
          f"({report.summary()})")
    texts = [e.input for e in suite.test[:embed_n]]
    with tempfile.TemporaryDirectory() as cache:
        encoder = Encoder("all-minilm-l6-v2", cache_dir=Path(cache))
        encoder.encode(texts[:8])  # load the model outside the timing
        start = time.perf_counter()
        encoder.encode(texts)
        per_text = (time.perf_counter() - start) / len(texts)
    print(f"embedding: {1 / per_text:.0f} texts/s on {len(texts)} texts -> {2 * n} texts (test + train) "
          f"~{2 * n * per_text / 60:.1f} min cold (cached on every later run)")
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((n, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    start = time.perf_counter()
    near_pairs(vecs, vecs[::-1].copy(), 0.95)
    print(f"FAISS IndexFlatIP top-1: {n} queries x {n} vectors (dim 384) {time.perf_counter() - start:.1f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--embed-n", type=int, default=2000)
    p.add_argument("--skip-suites", action="store_true")
    args = p.parse_args()
    _quiet_libraries()
    if not args.skip_suites:
        suites()
    big(args.n, args.embed_n)


if __name__ == "__main__":
    main()
