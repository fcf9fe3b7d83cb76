"""harness.scoring.stats: bootstrap intervals, paired bootstrap, McNemar, Holm."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy.stats import binomtest

from harness.core.types import Example
from harness.scoring import registry as R
from harness.scoring.stats import _resampled, bootstrap_ci, holm, mcnemar_exact, paired_bootstrap


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


def _rows_for_every_metric() -> list[tuple[str, str, tuple[str, ...], np.ndarray]]:
    rng = random.Random(0)
    words = "the cat sat on a mat with dog and bird over under house tree river sky".split()

    def sent() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(3, 20)))

    n = 57
    text_ex = [Example(id=str(i), input="", target=(sent(), sent())) for i in range(n)]
    hyps = [e.target[0] if i % 4 == 0 else sent() for i, e in enumerate(text_ex)]  # some exact matches
    labels = ("a", "b", "c", "d")
    cls_ex = [Example(id=str(i), input="", target=rng.choice(labels[:3])) for i in range(n)]  # "d" never gold
    cls_ans = [rng.choice([*labels, None]) for _ in range(n)]
    ext_ex = [Example(id=str(i), input="", target={"x": rng.choice("pq"), "y": rng.choice(["r", ""])}) for i in range(n)]
    ext_ans = [rng.choice([{"x": "p"}, {"x": "q", "y": "r"}, {}, None]) for _ in range(n)]
    out = []
    for m in ("f1", "bleu", "rouge_l", "chrf", "exact_match"):
        out.append((m, "generation", (), R.metric_stats(m, "generation", hyps, text_ex)))
    for m in ("accuracy", "f1"):
        out.append((m, "classification", labels, R.metric_stats(m, "classification", cls_ans, cls_ex, labels)))
        out.append((m, "extraction", (), R.metric_stats(m, "extraction", ext_ans, ext_ex)))
    return out


@pytest.mark.parametrize("name, task, labels, rows", _rows_for_every_metric(),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_vectorised_resamples_equal_the_row_by_row_aggregate(name: str, task: str, labels: tuple[str, ...],
                                                             rows: np.ndarray) -> None:
    """`Aggregator.many` (draw counts, one matrix product) gives every resample's value exactly
    as aggregating the resampled rows one by one does: the fast path is the same statistic."""
    agg = R.aggregator(name, task, labels)
    idx = np.random.default_rng(3).integers(0, len(rows), size=(300, len(rows)))
    one_by_one = np.array([agg(rows[r]) for r in idx])
    assert np.allclose(_resampled(rows, agg, idx), one_by_one, rtol=0, atol=1e-12)
    assert len(set(one_by_one.round(9))) > 5  # the resamples really differ
    # and the whole interval is the same as with a plain callable (no fast path)
    plain = lambda r: agg(r)  # noqa: E731
    assert bootstrap_ci(rows, agg, n_resamples=200, seed=1) == pytest.approx(bootstrap_ci(rows, plain, n_resamples=200, seed=1))


def test_draw_counts_in_batches_cover_every_resample(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.scoring.stats as S

    rows = np.arange(10, dtype=np.float64).reshape(-1, 1)
    agg = R.aggregator("accuracy", "qa")
    idx = np.random.default_rng(0).integers(0, 10, size=(7, 10))
    monkeypatch.setattr(S, "_COUNT_CELLS", 30)  # three resamples per batch
    assert np.allclose(_resampled(rows, agg, idx), rows[idx, 0].mean(axis=1))


def test_a_metric_without_a_vectorised_aggregate_is_resampled_row_by_row() -> None:
    """A registered metric with a custom aggregate and no `aggregate_many` (an evaluate module, a
    median) is bootstrapped by calling it on every resample; its rows may even be objects."""
    from harness.scoring.registry import Metric, MetricContext

    def stats(answers: list, examples: list, ctx: MetricContext) -> np.ndarray:
        rows = np.empty((len(answers), 1), dtype=object)
        rows[:, 0] = answers
        return rows

    def longest(rows: np.ndarray, ctx: MetricContext) -> float:
        return float(max(len(str(a)) for a in rows[:, 0]))

    agg = Metric("longest", stats, longest).bind("qa")
    assert agg.many is None
    rows = agg.stats(["a", "abc", "ab", "abcd"], [None] * 4)  # type: ignore[list-item]
    idx = np.random.default_rng(0).integers(0, 4, size=(50, 4))
    assert _resampled(rows, agg, idx).tolist() == [float(max(len(rows[i, 0]) for i in r)) for r in idx]
    lo, hi = bootstrap_ci(rows, agg, n_resamples=50, seed=0)
    assert 1.0 <= lo <= hi == 4.0
