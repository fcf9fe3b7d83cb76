"""harness.scoring.ppi: prediction-powered means and paired differences of a judged metric.

Checked three ways: against ppi_py (the authors' package) on the same numbers, by hand-checkable
degenerate cases, and by simulation with a biased judge, where the PPI intervals must cover the
true mean human grade about 95% of the time and the judge-only intervals must not.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom, norm

from harness.scoring.ppi import PPIDifference, _ppi_mean, ppi_mean, ppi_paired_diff, two_sided_p, z_critical

TRIALS = 400
# Coverage of a correct 95% interval over TRIALS seeded trials falls outside this band with
# probability about 0.0012 (binomial quantiles at 0.001 each side): 0.9125 .. 0.98 at 400 trials.
BAND = (binom.ppf(0.001, TRIALS, 0.95) / TRIALS, binom.isf(0.001, TRIALS, 0.95) / TRIALS)


def test_normal_quantile_and_tail_match_scipy() -> None:
    assert z_critical(0.05) == pytest.approx(1.959963984540054, abs=1e-15)
    for alpha in (1e-6, 0.001, 0.01, 0.05, 0.1, 0.32, 0.5, 0.9):
        assert z_critical(alpha) == pytest.approx(norm.isf(alpha / 2), rel=1e-13)
    for z in (0.0, 0.3, 1.959963984540054, -2.5, 5.0, 12.0):
        assert two_sided_p(z) == pytest.approx(2 * norm.sf(abs(z)), rel=1e-12)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="alpha"):
            z_critical(bad)


def _judged(seed: int, n_all: int, n: int, slope: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """0/1 human grades, a judge in [0, 1] that is too high on average, and a random labelled subset."""
    rng = np.random.default_rng(seed)
    human = (rng.random(n_all) < 0.6).astype(np.float64)
    judge = np.clip(0.45 + slope * human + rng.normal(0.0, 0.25, n_all), 0.0, 1.0)
    return judge, human, rng.choice(n_all, n, replace=False)


def _rest(n_all: int, labelled: np.ndarray) -> np.ndarray:
    mask = np.ones(n_all, dtype=bool)
    mask[labelled] = False
    return mask


@pytest.mark.parametrize("lam", [1.0, 0.5, 0.0, 1.0 / (1 - 150 / 1000)])
def test_fixed_lambda_matches_ppi_py_on_the_labelled_rest_split(lam: float) -> None:
    ppi_py = pytest.importorskip("ppi_py")
    judge, human, s = _judged(0, 1000, 150)
    rest = judge[_rest(1000, s)]
    lam_py = lam * len(rest) / 1000  # the same estimator in ppi_py's (labelled, disjoint rest) form
    estimate, se, used = _ppi_mean(judge, judge[s], human[s], lam, ddof=0)
    assert used == lam
    assert estimate == pytest.approx(float(ppi_py.ppi_mean_pointestimate(human[s], judge[s], rest, lam=lam_py)[0]), abs=1e-13)
    lo, hi = ppi_py.ppi_mean_ci(human[s], judge[s], rest, alpha=0.05, lam=lam_py)
    z = z_critical(0.05)
    assert (estimate - z * se, estimate + z * se) == pytest.approx((float(lo[0]), float(hi[0])), abs=1e-13)
    # The public function uses sample variances: its se is ppi_py's times sqrt(k / (k - 1)) for k
    # between the two parts' sizes, so it lies in that band, no further.
    public = ppi_mean(judge, judge[s], human[s], lam=lam)
    assert public.estimate == pytest.approx(estimate, abs=1e-13)
    assert math.sqrt(850 / 849) - 1e-12 <= public.se / se <= math.sqrt(150 / 149) + 1e-12


def test_tuned_lambda_matches_ppi_py() -> None:
    ppi_py = pytest.importorskip("ppi_py")
    judge, human, s = _judged(1, 1000, 150, slope=0.2)
    rest = judge[_rest(1000, s)]
    estimate, se, lam = _ppi_mean(judge, judge[s], human[s], None, ddof=0)
    assert 0.1 < lam < 1.0  # unclipped, where the two parametrisations tune alike
    assert estimate == pytest.approx(float(ppi_py.ppi_mean_pointestimate(human[s], judge[s], rest)[0]), abs=1e-13)
    lo, hi = ppi_py.ppi_mean_ci(human[s], judge[s], rest, alpha=0.1)
    z = z_critical(0.1)
    assert (estimate - z * se, estimate + z * se) == pytest.approx((float(lo[0]), float(hi[0])), abs=1e-13)
    # The public tuned lam uses a sample covariance: ppi_py's times n / (n - 1).
    assert ppi_mean(judge, judge[s], human[s]).lam == pytest.approx(lam * 150 / 149, rel=1e-12)


@pytest.mark.parametrize(("lam", "expected"), [
    (1.0, (0.6192857142857143, 0.38134344100789963, 0.857227987563529)),
    (None, (0.6263127105672628, 0.3933014057706894, 0.8593240153638362)),
])
def test_ppi_py_figures_recorded(lam: float | None, expected: tuple[float, float, float]) -> None:
    """ppi_py 0.2.3's estimate and 95% interval on small exact data, recorded so that the check
    runs without the package (numba, statsmodels: too heavy for the dev extra). Recorded with
    ppi_mean_pointestimate / ppi_mean_ci(Y=human[s], Yhat=judge[s], Yhat_unlabeled=judge[rest],
    lam=None or 1 * 26/40), ours at ddof=0."""
    i = np.arange(40)
    judge, human = ((i * 7) % 11) / 10, (((i * 3) % 5) >= 2).astype(np.float64)
    s = i[i % 3 == 0]  # people graded every third output: 14 of 40
    estimate, se, _ = _ppi_mean(judge, judge[s], human[s], lam, ddof=0)
    z = z_critical(0.05)
    assert (estimate, estimate - z * se, estimate + z * se) == pytest.approx(expected, abs=1e-14)


def test_a_judge_that_tracks_people_narrows_the_interval() -> None:
    judge, human, s = _judged(2, 2000, 100, slope=0.6)
    tuned = ppi_mean(judge, judge[s], human[s])
    people_only = ppi_mean(judge, judge[s], human[s], lam=0.0)
    assert people_only.estimate == pytest.approx(human[s].mean())
    assert tuned.se < 0.8 * people_only.se
    assert tuned.ci[0] < tuned.estimate < tuned.ci[1]
    assert (tuned.n_labelled, tuned.n_all) == (100, 2000)
    assert tuned.judge_mean == pytest.approx(judge.mean())


def test_degenerate_inputs() -> None:
    judge, human, s = _judged(3, 50, 10)
    with pytest.raises(ValueError, match="at least 2 human-graded"):
        ppi_mean(judge, judge[:1], human[:1])
    with pytest.raises(ValueError, match="same outputs"):
        ppi_mean(judge, judge[s], human[s][:-1])
    with pytest.raises(ValueError, match="in judge_all"):
        ppi_mean(judge, judge[s] + 0.01, human[s])  # grades of outputs the judge-all set lacks
    with pytest.raises(ValueError, match="NaN"):
        ppi_mean(judge, judge[s], np.where(np.arange(10) == 3, np.nan, human[s]))
    with pytest.raises(ValueError, match="finite"):
        ppi_mean(judge, judge[s], human[s], lam=math.inf)
    # Everyone agrees on one grade: no variance, a point interval, nothing NaN.
    same = ppi_mean(np.ones(30), np.ones(5), np.ones(5))
    assert (same.estimate, same.ci, same.se, same.lam, same.judge_ci) == (1.0, (1.0, 1.0), 0.0, 0.0, (1.0, 1.0))
    # A constant judge carries no information: the estimate is people's mean, lam 0.
    flat = ppi_mean(np.full(30, 0.7), np.full(5, 0.7), np.array([0.0, 1.0, 1.0, 0.0, 1.0]))
    assert (flat.estimate, flat.lam) == (pytest.approx(0.6), 0.0)
    # Everything labelled: the judge drops out and the interval is the plain CLT one.
    every = ppi_mean(judge, judge, human, lam=1.0)
    assert every.estimate == pytest.approx(human.mean())
    assert every.se == pytest.approx(human.std(ddof=1) / math.sqrt(50))
    # One output left ungraded: still finite.
    assert math.isfinite(ppi_mean(judge, judge[:-1], human[:-1]).se)


def _bernoulli_trials(seed: int, n_all: int) -> tuple[np.ndarray, np.ndarray]:
    """TRIALS independent data sets, one a row: true grade Bernoulli(0.6), a judge too high by ~0.07."""
    rng = np.random.default_rng(seed)
    human = (rng.random((TRIALS, n_all)) < 0.6).astype(np.float64)
    judge = np.clip(0.5 + 0.3 * human + rng.normal(0.0, 0.2, human.shape), 0.0, 1.0)
    return judge, human


@pytest.mark.parametrize("lam", [None, 1.0])
def test_ppi_intervals_cover_the_true_mean_and_the_judge_alone_does_not(lam: float | None) -> None:
    n_all, n = 1000, 100
    judge, human = _bernoulli_trials(10, n_all)
    # Rows are i.i.d. outputs, so the first n of each are a uniform random subset to label.
    fits = [ppi_mean(f, f[:n], y[:n], lam=lam) for f, y in zip(judge, human, strict=True)]
    covered = np.mean([e.ci[0] <= 0.6 <= e.ci[1] for e in fits])
    judge_covered = np.mean([e.judge_ci[0] <= 0.6 <= e.judge_ci[1] for e in fits])
    assert BAND[0] <= covered <= BAND[1], covered
    assert judge_covered < 0.2, judge_covered
    # The reported se is the estimate's actual spread across trials (10% is ~3 sd of that ratio).
    spread = np.std([e.estimate for e in fits], ddof=1)
    assert np.mean([e.se for e in fits]) == pytest.approx(spread, rel=0.1)
    assert np.mean([e.estimate for e in fits]) == pytest.approx(0.6, abs=float(3 * spread / math.sqrt(TRIALS)))


# --- paired differences ---------------------------------------------------------------------


def _grade(x: np.ndarray) -> np.ndarray:
    """A 1-5 rubric grade: x rounded to the nearest integer, clipped to the scale."""
    return np.asarray(1.0 + np.sum([x >= k + 0.5 for k in range(1, 5)], axis=0, dtype=np.float64))


def _expected_grade(mu: float, sd: float) -> float:
    return 1.0 + sum(0.5 * math.erfc((k + 0.5 - mu) / (sd * math.sqrt(2))) for k in range(1, 5))


MU_A, MU_B, SD = 3.2, 3.0, math.sqrt(0.9**2 + 0.7**2)
TRUE_DIFF = _expected_grade(MU_A, SD) - _expected_grade(MU_B, SD)


def _paired_trials(seed: int, n_all: int, mu_b: float = MU_B) -> tuple[np.ndarray, ...]:
    """Strategies A and B on the same examples: human 1-5 grades sharing the example's difficulty,
    a judge that favours A's outputs and is lenient on some examples for both (correlated errors)."""
    rng = np.random.default_rng(seed)
    shape = (TRIALS, n_all)
    difficulty = rng.normal(0.0, 0.9, shape)
    ya = _grade(MU_A + difficulty + rng.normal(0.0, 0.7, shape))
    yb = _grade(mu_b + difficulty + rng.normal(0.0, 0.7, shape))
    lenient = (rng.random(shape) < 0.3).astype(np.float64)
    harsh = (rng.random(shape) < 0.1).astype(np.float64)
    fa = np.clip(ya + lenient + (rng.random(shape) < 0.35) - harsh, 1.0, 5.0)
    fb = np.clip(yb + lenient + (rng.random(shape) < 0.05) - harsh, 1.0, 5.0)
    return fa, fb, ya, yb


def _designs(n_all: int, seed: int) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Which examples people graded, per trial: A's set and B's set. Fixed index sets are uniform
    random subsets because the examples in a row are i.i.d.; 'independent' draws B's afresh."""
    rng = np.random.default_rng(seed)
    first = np.arange(120)
    independent = np.argsort(rng.random((TRIALS, n_all)), axis=1)[:, :90]
    return {
        "independent": [(first, independent[t]) for t in range(TRIALS)],
        "same": [(first, first)] * TRIALS,
        "overlapping": [(first, np.arange(60, 160))] * TRIALS,
    }


def _fit(data: tuple[np.ndarray, ...], t: int, sets: tuple[np.ndarray, np.ndarray]) -> PPIDifference:
    fa, fb, ya, yb = (x[t] for x in data)
    ia, ib = sets
    return ppi_paired_diff(fa, fb, ia, ya[ia], ib, yb[ib])


@pytest.mark.parametrize("design", ["independent", "same", "overlapping"])
def test_paired_intervals_cover_the_true_difference(design: str) -> None:
    data = _paired_trials(20, 800)
    fits = [_fit(data, t, sets) for t, sets in enumerate(_designs(800, 21)[design])]
    covered = np.mean([e.ci[0] <= TRUE_DIFF <= e.ci[1] for e in fits])
    judge_covered = np.mean([e.judge_ci[0] <= TRUE_DIFF <= e.judge_ci[1] for e in fits])
    assert BAND[0] <= covered <= BAND[1], covered
    assert judge_covered < 0.05, judge_covered
    spread = np.std([e.estimate for e in fits], ddof=1)
    assert np.mean([e.se for e in fits]) == pytest.approx(spread, rel=0.1)
    assert fits[0].n_overlap == {"same": 120, "overlapping": 60, "independent": fits[0].n_overlap}[design]


def test_paired_p_value_holds_its_level_where_the_judge_alone_finds_a_false_difference() -> None:
    data = _paired_trials(30, 800, mu_b=MU_A)  # no true difference; the judge still favours A
    fits = [_fit(data, t, sets) for t, sets in enumerate(_designs(800, 31)["overlapping"])]
    rejected = np.mean([e.p_value < 0.05 for e in fits])
    assert 1 - BAND[1] <= rejected <= 1 - BAND[0], rejected
    assert np.mean([e.judge_p_value < 0.05 for e in fits]) > 0.95


def test_paired_estimate_is_the_difference_of_the_two_means() -> None:
    data = _paired_trials(40, 800)
    fa, fb, ya, yb = (x[0] for x in data)
    ia, ib = np.arange(100), np.arange(50, 200)
    for lam in [(1.0, 1.0), (0.3, 0.8), (0.0, 0.0)]:
        diff = ppi_paired_diff(fa, fb, ia, ya[ia], ib, yb[ib], lam=lam)
        a = ppi_mean(fa, fa[ia], ya[ia], lam=lam[0]).estimate
        b = ppi_mean(fb, fb[ib], yb[ib], lam=lam[1]).estimate
        assert diff.estimate == pytest.approx(a - b, abs=1e-12)
        assert diff.lam == lam
    assert ppi_paired_diff(fa, fb, ia, ya[ia], ib, yb[ib]).judge_diff == pytest.approx(np.mean(fa - fb))


def test_labelling_the_same_examples_is_the_mean_of_the_differences() -> None:
    """Both graded on the same set with lam = 1: PPI of the per-example difference (ppi_mean's
    split-form variance and the paired moment form estimate the same variance)."""
    data = _paired_trials(50, 1000)
    fa, fb, ya, yb = (x[0] for x in data)
    s = np.arange(300)
    diff = ppi_paired_diff(fa, fb, s, ya[s], s, yb[s], lam=1.0)
    single = ppi_mean(fa - fb, (fa - fb)[s], ya[s] - yb[s], lam=1.0)
    assert diff.estimate == pytest.approx(single.estimate, abs=1e-12)
    assert diff.se == pytest.approx(single.se, rel=0.05)


@pytest.mark.parametrize("lam", [(1.0, 1.0), (0.4, 0.9), None])
def test_everything_labelled_is_the_plain_paired_mean(lam: tuple[float, float] | None) -> None:
    """People graded every output of both: the judge cancels out of the estimate, and every part
    of the variance (judge, rectifiers, their covariances) must add up to var(ya - yb) / N."""
    data = _paired_trials(70, 300)
    fa, fb, ya, yb = (x[0] for x in data)
    s = np.arange(300)
    diff = ppi_paired_diff(fa, fb, s, ya, s, yb, lam=lam)
    assert diff.estimate == pytest.approx(np.mean(ya - yb), abs=1e-12)
    assert diff.se == pytest.approx(np.std(ya - yb, ddof=1) / math.sqrt(300), rel=1e-9)


def test_tuned_lambdas_minimise_the_reported_variance() -> None:
    data = _paired_trials(60, 600)
    fa, fb, ya, yb = (x[0] for x in data)
    ia, ib = np.arange(80), np.arange(40, 140)
    tuned = ppi_paired_diff(fa, fb, ia, ya[ia], ib, yb[ib])
    grid = np.linspace(0.0, 1.0, 21)
    ses = [ppi_paired_diff(fa, fb, ia, ya[ia], ib, yb[ib], lam=(a, b)).se for a in grid for b in grid]
    assert all(0.0 <= x <= 1.0 for x in tuned.lam)
    assert tuned.se <= min(ses) + 1e-12
    assert tuned.se < ppi_paired_diff(fa, fb, ia, ya[ia], ib, yb[ib], lam=0.0).se


def test_paired_degenerate_inputs() -> None:
    f = np.linspace(1, 5, 20)
    with pytest.raises(ValueError, match="differ in length"):
        ppi_paired_diff(f, f[:-1], np.arange(3), f[:3], np.arange(3), f[:3])
    with pytest.raises(ValueError, match="at least 2 human-graded outputs of b"):
        ppi_paired_diff(f, f, np.arange(3), f[:3], np.arange(1), f[:1])
    with pytest.raises(ValueError, match="distinct indices"):
        ppi_paired_diff(f, f, np.array([0, 0, 1]), f[:3], np.arange(3), f[:3])
    with pytest.raises(ValueError, match="distinct indices"):
        ppi_paired_diff(f, f, np.array([0, 1, 20]), f[:3], np.arange(3), f[:3])
    with pytest.raises(ValueError, match="integer"):
        ppi_paired_diff(f, f, np.array([0.0, 1.0]), f[:2], np.arange(2), f[:2])
    # Identical strategies graded identically: zero difference, zero se, p = 1, nothing NaN.
    same = ppi_paired_diff(f, f, np.arange(5), f[:5], np.arange(5), f[:5])
    assert (same.estimate, same.p_value, same.judge_p_value, same.judge_ci) == (0.0, 1.0, 1.0, (0.0, 0.0))
    assert same.se == pytest.approx(0.0, abs=1e-7)  # zero but for rounding in the quadratic form
