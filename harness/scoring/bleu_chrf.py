"""BLEU and chrF as sacrebleu computes them, from per-example rows that any resample can sum.

BLEU reads each segment's n-gram statistics from sacrebleu's public API; chrF is ported (sacrebleu
exposes no per-segment chrF statistics). Both aggregate summed rows with sacrebleu's own float
operations, so a corpus score is bit-identical to `corpus_bleu` / `corpus_chrf` (the tests hold
them to it), and `_bleu_many` / `_chrf_scores` score thousands of bootstrap resamples at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from harness.core.errors import MissingPackageError
from harness.core.types import Example
from harness.scoring.extract import answer_text, references
from harness.scoring.metric import MetricContext

# --------------------------------------------------------------------------- bleu (sacrebleu)


@lru_cache(maxsize=1)
def _bleu() -> Any:
    try:
        from sacrebleu.metrics import BLEU
    except ImportError:
        raise MissingPackageError("sacrebleu (for the bleu metric)", "pip install 'sacrebleu>=2.4'") from None
    # The settings of sacrebleu.corpus_bleu: 13a, exp smoothing, order 4 (`_bleu_many` relies on them).
    return BLEU()


def bleu_rows(answers: Sequence[Any], examples: Sequence[Example], ctx: MetricContext) -> np.ndarray:
    """[sys_len, ref_len, correct_1..4, total_1..4] per example: the statistics sacrebleu's corpus
    BLEU sums, read from the (public) score of each segment on its own, all its references used."""
    bleu = _bleu()
    rows = []
    for a, e in zip(answers, examples, strict=True):
        s = bleu.corpus_score([answer_text(a)], [[r] for r in references(e)])
        rows.append([s.sys_len, s.ref_len, *s.counts, *s.totals])
    return np.array(rows, dtype=np.float64).reshape(-1, 10)


def bleu_aggregate(rows: np.ndarray, ctx: MetricContext) -> float:
    from sacrebleu.metrics import BLEU

    # Integer counts, as sacrebleu sums them, so the score is bit-identical to its corpus score.
    s = [int(round(x)) for x in rows.sum(axis=0)]
    return float(BLEU.compute_bleu(s[2:6], s[6:10], s[0], s[1], smooth_method="exp").score)


_LOG_ZERO = -9999999999.0  # sacrebleu.utils.my_log(0)


def _bleu_many(sums: np.ndarray) -> np.ndarray:
    """sacrebleu's BLEU.compute_bleu, vectorised over resamples, for the settings `_bleu()` uses
    (exp smoothing, order 4, no effective order); rows = [sys_len, ref_len, correct_1..4, total_1..4]."""
    sys_len, ref_len = sums[:, 0], sums[:, 1]
    correct, total = sums[:, 2:6], sums[:, 6:10]
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(sys_len < ref_len, np.where(sys_len > 0, np.exp(1 - ref_len / sys_len), 0.0), 1.0)
        precisions = np.zeros_like(correct)
        smooth = np.ones(len(sums))
        alive = np.ones(len(sums), dtype=bool)  # sacrebleu stops at the first order with no n-grams
        for k in range(4):
            alive &= total[:, k] != 0
            zero = alive & (correct[:, k] == 0)
            smooth = np.where(zero, smooth * 2, smooth)
            precisions[:, k] = np.where(
                ~alive, 0.0, np.where(zero, 100.0 / (smooth * total[:, k]), 100.0 * correct[:, k] / total[:, k])
            )
        logs = np.where(precisions == 0.0, _LOG_ZERO, np.log(np.where(precisions == 0.0, 1.0, precisions)))
        score = bp * np.exp(logs.sum(axis=1) / 4)
    return np.where(correct.sum(axis=1) > 0, score, 0.0)


# --------------------------------------------------------------------------- chrF (sacrebleu's, ported)

# sacrebleu's CHRF() defaults, as corpus_chrf uses them: character 1..6-grams with whitespace
# removed, no word n-grams, beta 2, no lowercasing, effective-order averaging (no eps smoothing).
_CHRF_ORDER, _CHRF_BETA = 6, 2


def _char_ngrams(text: str) -> list[Counter[str]]:
    line = "".join(text.split())
    return [Counter(line[i : i + n] for i in range(len(line) - n + 1)) for n in range(1, _CHRF_ORDER + 1)]


def _chrf_segment(hyp: str, refs: Sequence[str]) -> list[int]:
    """[hyp, ref, match] n-gram counts per order against the reference with the best chrF (the
    first of equals), as sacrebleu's CHRF picks it."""
    hyp_grams = _char_ngrams(hyp)
    candidates = []
    for ref in refs:
        row: list[int] = []
        for h, r in zip(hyp_grams, _char_ngrams(ref), strict=True):
            match = sum(min(count, r[g]) for g, count in h.items() if g in r)
            row += [sum(h.values()) if r else 0, sum(r.values()), match]
        candidates.append(row)
    best = _chrf_scores(np.array(candidates, dtype=np.float64))
    return candidates[int(np.argmax(best))]


def _chrf_scores(sums: np.ndarray) -> np.ndarray:
    """sacrebleu's CHRF._compute_f_score on each row of summed statistics, with the same float
    operations in the same order (so the values are bit-identical)."""
    factor = _CHRF_BETA**2
    avg_prec, avg_rec, effective = np.zeros(len(sums)), np.zeros(len(sums)), np.zeros(len(sums))
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(_CHRF_ORDER):
            n_hyp, n_ref, n_match = sums[:, 3 * i], sums[:, 3 * i + 1], sums[:, 3 * i + 2]
            both = (n_hyp > 0) & (n_ref > 0)
            avg_prec = np.where(both, avg_prec + n_match / n_hyp, avg_prec)
            avg_rec = np.where(both, avg_rec + n_match / n_ref, avg_rec)
            effective += both
        avg_prec = np.where(effective > 0, avg_prec / effective, 0.0)
        avg_rec = np.where(effective > 0, avg_rec / effective, 0.0)
        score = (1 + factor) * avg_prec * avg_rec / ((factor * avg_prec) + avg_rec)
    return np.where(avg_prec + avg_rec != 0, 100 * score, 0.0)


def chrf_rows(answers: Sequence[Any], examples: Sequence[Example], ctx: MetricContext) -> np.ndarray:
    rows = [_chrf_segment(answer_text(a), references(e)) for a, e in zip(answers, examples, strict=True)]
    return np.array(rows, dtype=np.float64).reshape(-1, 3 * _CHRF_ORDER)


def chrf_aggregate(rows: np.ndarray, ctx: MetricContext) -> float:
    return float(_chrf_scores(np.rint(rows.sum(axis=0))[None, :])[0])



def bleu_resamples(rows: np.ndarray, counts: np.ndarray, ctx: MetricContext) -> np.ndarray:
    return _bleu_many(np.rint(counts @ rows))


def chrf_resamples(rows: np.ndarray, counts: np.ndarray, ctx: MetricContext) -> np.ndarray:
    return _chrf_scores(np.rint(counts @ rows))

