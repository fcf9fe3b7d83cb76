"""harness.stats: bootstrap intervals, paired bootstrap, McNemar, Holm."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from scipy.stats import binomtest

from harness import metrics as M
from harness.stats import bootstrap_ci, holm, mcnemar_exact, paired_bootstrap
from harness.types import Example


def _mean(rows: np.ndarray) -> float:
    return float(rows[:, 0].mean())


def _bernoulli(p: float, n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(np.float64).reshape(-1, 1)


def test_bootstrap_ci_contains_the_value_and_is_seeded() -> None:
    rows = _bernoulli(0.6, 200, 1)
    ci = bootstrap_ci(rows, _mean, seed=3)
    assert ci[0] <= _mean(rows) <= ci[1]
    assert ci[0] < ci[1]
    assert bootstrap_ci(rows, _mean, seed=3) == ci
    assert bootstrap_ci(rows, _mean, seed=4) != ci


def test_bootstrap_ci_matches_the_normal_approximation_for_a_mean() -> None:
    rows = _bernoulli(0.5, 400, 2)
    lo, hi = bootstrap_ci(rows, _mean, n_resamples=4000, seed=0)
    p = _mean(rows)
    half = 1.96 * np.sqrt(p * (1 - p) / len(rows))
    assert (hi - lo) == pytest.approx(2 * half, rel=0.15)
    assert (lo + hi) / 2 == pytest.approx(p, abs=0.01)


def test_bootstrap_ci_narrows_with_more_data() -> None:
    small = bootstrap_ci(_bernoulli(0.5, 50, 0), _mean, seed=0)
    large = bootstrap_ci(_bernoulli(0.5, 2000, 0), _mean, seed=0)
    assert (large[1] - large[0]) < (small[1] - small[0]) / 4


def test_bootstrap_ci_is_widened_to_contain_a_point_estimate_outside_the_percentiles() -> None:
    # The number of distinct rows: every resample has fewer than the full data (about 63%),
    # so the plain percentile interval lies entirely below the point estimate.
    rows = np.arange(100, dtype=np.float64).reshape(-1, 1)

    def distinct(r: np.ndarray) -> float:
        return float(len(np.unique(r[:, 0])))

    lo, hi = bootstrap_ci(rows, distinct, seed=0)
    assert hi == 100.0
    assert lo < 70.0


def test_bootstrap_ci_confidence_controls_the_width() -> None:
    rows = _bernoulli(0.5, 300, 5)
    w90 = np.subtract(*bootstrap_ci(rows, _mean, confidence=0.90)[::-1])
    w99 = np.subtract(*bootstrap_ci(rows, _mean, confidence=0.99)[::-1])
    assert w99 > w90 > 0
    with pytest.raises(ValueError):
        bootstrap_ci(rows, _mean, confidence=1.5)


def test_paired_bootstrap_finds_a_real_difference() -> None:
    a = _bernoulli(0.8, 200, 1)
    b = _bernoulli(0.5, 200, 2)
    res = paired_bootstrap(a, b, _mean, seed=0)
    assert res.diff == pytest.approx(_mean(a) - _mean(b))
    assert res.ci[0] > 0
    assert res.p_value == pytest.approx(2 / 1001)  # every resample is on the same side
    flipped = paired_bootstrap(b, a, _mean, seed=0)
    assert flipped.diff == pytest.approx(-res.diff)
    assert flipped.p_value == res.p_value


def test_paired_bootstrap_on_identical_inputs_is_not_significant() -> None:
    a = _bernoulli(0.7, 150, 3)
    res = paired_bootstrap(a, a.copy(), _mean, seed=0)
    assert res.diff == 0.0
    assert res.ci == (0.0, 0.0)
    assert res.p_value == 1.0


def test_paired_bootstrap_uses_the_same_rows_for_both_sides() -> None:
    # b = a shifted by a constant: a paired resample sees exactly that constant every time;
    # unpaired resamples would scatter.
    a = np.random.default_rng(0).random((100, 1))
    res = paired_bootstrap(a, a - 0.1, _mean, seed=1)
    assert res.ci[0] == pytest.approx(0.1) and res.ci[1] == pytest.approx(0.1)


def test_paired_bootstrap_is_seeded_and_calibrated_under_the_null() -> None:
    a, b = _bernoulli(0.6, 120, 8), _bernoulli(0.6, 120, 9)
    assert paired_bootstrap(a, b, _mean, seed=4) == paired_bootstrap(a, b, _mean, seed=4)
    # Same distribution: a 5% test rejects rarely.
    rejections = sum(
        paired_bootstrap(
            _bernoulli(0.6, 80, s), _bernoulli(0.6, 80, 1000 + s), _mean, n_resamples=300, seed=s
        ).p_value
        < 0.05
        for s in range(60)
    )
    assert rejections <= 9


def test_paired_bootstrap_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError):
        paired_bootstrap(np.zeros((3, 1)), np.zeros((4, 1)), _mean)


@pytest.mark.parametrize("seed", range(8))
def test_mcnemar_equals_scipy_binomtest(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    a = rng.random(n) < rng.uniform(0.3, 0.9)
    b = rng.random(n) < rng.uniform(0.3, 0.9)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    want = binomtest(only_a, only_a + only_b, 0.5, alternative="two-sided").pvalue
    assert mcnemar_exact(a, b) == pytest.approx(want, rel=1e-9)


def test_mcnemar_edge_cases() -> None:
    same = np.array([True, False, True])
    assert mcnemar_exact(same, same) == 1.0
    assert mcnemar_exact(np.array([True] * 6), np.array([False] * 6)) == pytest.approx(2 / 64)
    assert mcnemar_exact(np.array([True, False]), np.array([False, True])) == 1.0


def test_holm_by_hand() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    assert holm([0.02]) == [0.02]
    assert holm([]) == []


def test_bleu_bootstrap_is_fast() -> None:
    rng = random.Random(0)
    words = "the cat sat on a mat with dog and bird over under house tree river sky".split()

    def sent() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(8, 25)))

    examples = [Example(id=str(i), input="", target=(sent(), sent())) for i in range(100)]
    rows = M.metric_stats("bleu", "generation", [sent() for _ in range(100)], examples)
    agg = M.aggregator("bleu", "generation")
    start = time.perf_counter()
    lo, hi = bootstrap_ci(rows, agg, n_resamples=1000, seed=0)
    elapsed = time.perf_counter() - start
    assert lo <= agg(rows) <= hi
    assert elapsed < 1.0, f"1000 BLEU resamples took {elapsed:.2f}s"
