"""Benchmark: vectorised bootstrap resamples against the row-by-row aggregate.

Scores every metric of the five built-in suites' shapes on random data: token F1 (a mean),
BLEU and chrF (sacrebleu statistics), macro-F1 (label counts). Prints resamples/s of both paths
for each and, last, `speedup: N.NNx` (total time row by row over vectorised).

    .venv/bin/python bench/stats.py [--n 200] [--resamples 2000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.core.types import Example  # noqa: E402
from harness.scoring import registry as R  # noqa: E402
from harness.scoring.stats import _indices, _resampled  # noqa: E402


def rows(n: int) -> list[tuple[str, Any, np.ndarray]]:
    rng = random.Random(0)
    words = "the cat sat on a mat with dog and bird over under house tree river sky".split()

    def sent() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(5, 25)))

    text = [Example(id=str(i), input="", target=(sent(), sent())) for i in range(n)]
    hyps = [sent() for _ in range(n)]
    labels = tuple(f"label{k}" for k in range(12))
    cls = [Example(id=str(i), input="", target=rng.choice(labels)) for i in range(n)]
    answers = [rng.choice(labels) for _ in range(n)]
    out = [(f"{m} (generation)", R.aggregator(m, "generation"), R.metric_stats(m, "generation", hyps, text))
           for m in ("f1", "bleu", "chrf")]
    out.append(("f1 (classification, 12 labels)", R.aggregator("f1", "classification", labels),
                R.metric_stats("f1", "classification", answers, cls, labels)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="examples")
    ap.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args()
    idx = _indices(args.n, args.resamples, seed=0)
    total_plain = total_fast = 0.0
    print(f"{args.resamples} bootstrap resamples of {args.n} examples")
    for name, agg, stats in rows(args.n):
        plain = lambda r, agg=agg: agg(r)  # noqa: E731  (a plain callable: no vectorised path)
        start = time.perf_counter()
        slow = _resampled(stats, plain, idx)
        t_plain = time.perf_counter() - start
        start = time.perf_counter()
        fast = _resampled(stats, agg, idx)
        t_fast = time.perf_counter() - start
        assert np.allclose(slow, fast, rtol=0, atol=1e-9), name
        total_plain += t_plain
        total_fast += t_fast
        print(f"  {name:32s} row by row {args.resamples / t_plain:10,.0f}/s   vectorised "
              f"{args.resamples / t_fast:10,.0f}/s   {t_plain / t_fast:6.1f}x")
    print(f"speedup: {total_plain / total_fast:.2f}x")


if __name__ == "__main__":
    main()
