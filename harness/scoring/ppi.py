"""Prediction-powered inference (PPI): a judge model's mean grade, corrected by people's grades.

A judge grades all N outputs of a strategy; people grade n of them, a uniformly random subset (a
stratified sample with proportional allocation is fine too: the interval is then conservative;
strata sampled out of proportion would need weights, which these functions do not take). The
judge's mean alone is biased by however far its grades sit from people's; PPI (Angelopoulos et
al., Science 2023) adds the mean human-minus-judge gap measured on the labelled subset, which
removes the bias, and keeps most of the judge's precision when its grades track people's. PPI++
(Angelopoulos, Duchi, Zrnic 2023) scales the judge by a power-tuning factor lam:

    estimate = lam * mean(judge_all) + mean(human - lam * judge_labelled)

unbiased for every fixed lam (lam = 0: people's mean alone; lam = 1: classic PPI).

Unlike ppi_py (`ppi_py.ppi_mean_ci`), which takes a labelled sample and a *disjoint* unlabelled
one, here the labelled outputs are part of judge_all. The two forms are the same estimator: with
the rest R = all minus labelled (m = N - n outputs), mean(judge_all) = (n/N) mean_S + (m/N) mean_R,
so lam here is ppi_py's lam' = lam * m / N on (labelled, rest): ppi_py's lam=1 is lam = N/m here.
The interval is ppi_py's on that split, with sample (n - 1) variances where ppi_py uses population
(n) ones. The tuned lam is ppi_py's too, clipped to [0, 1] in this parametrisation (ppi_py clips
lam'), so the two tune alike unless the judge's slope cov(Y, f)/var(f) exceeds 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

Lambdas = float | tuple[float, float] | None


@dataclass(frozen=True)
class PPIEstimate:
    estimate: float  # the prediction-powered mean
    ci: tuple[float, float]  # normal-approximation interval at level 1 - alpha
    se: float
    lam: float  # the power-tuning factor used (tuned from the data unless given)
    n_labelled: int
    n_all: int
    judge_mean: float  # the uncorrected judge-only mean over all outputs, for comparison
    judge_ci: tuple[float, float]  # its interval: right width, wrong place when the judge is biased
    alpha: float


@dataclass(frozen=True)
class PPIDifference:
    estimate: float  # mean human grade of A minus B, prediction-powered
    ci: tuple[float, float]
    se: float
    p_value: float  # two-sided, H0: difference = 0
    lam: tuple[float, float]  # (lam_a, lam_b)
    n_labelled_a: int
    n_labelled_b: int
    n_overlap: int  # examples on which both A's and B's outputs have a human grade
    n_all: int
    judge_diff: float  # the uncorrected paired judge difference, for comparison
    judge_ci: tuple[float, float]
    judge_p_value: float
    alpha: float


def z_critical(alpha: float) -> float:
    """The two-sided normal critical value z_{1 - alpha/2} (1.959963984540054 at alpha = 0.05)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    # stdlib (Wichura's AS241, ~1e-16 relative); from the lower tail, since 1 - alpha/2 would
    # round away the digits of a small alpha.
    return -NormalDist().inv_cdf(alpha / 2.0)


def two_sided_p(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal; erfc keeps precision far in the tail."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def _grades(x: np.ndarray, name: str, at_least: int = 1) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if len(a) < at_least:
        raise ValueError(f"{name} needs at least {at_least} grades, got {len(a)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has NaN or infinite grades")
    return a


def _is_sub_multiset(part: np.ndarray, whole: np.ndarray) -> bool:
    values, counts = np.unique(whole, return_counts=True)
    sub_values, sub_counts = np.unique(part, return_counts=True)
    pos = np.minimum(np.searchsorted(values, sub_values), len(values) - 1)
    return bool(np.all(values[pos] == sub_values) and np.all(counts[pos] >= sub_counts))


def _interval(center: float, se: float, alpha: float) -> tuple[float, float]:
    half = z_critical(alpha) * se
    return (center - half, center + half)


def _plain_mean(x: np.ndarray, alpha: float) -> tuple[float, tuple[float, float], float]:
    """Mean, its CLT interval and se (sample sd / sqrt(n))."""
    mean = float(x.mean())
    se = float(x.std(ddof=1)) / math.sqrt(len(x)) if len(x) > 1 else 0.0
    return mean, _interval(mean, se, alpha), se


def mean_interval(x: np.ndarray, alpha: float = 0.05) -> tuple[float, tuple[float, float], float]:
    """A plain mean with its normal (1 - alpha) interval and se: the judge-only interval PPI's is
    shown beside (the same approximation, so the two differ only by the correction)."""
    return _plain_mean(_grades(x, "x"), alpha)


def _cov(x: np.ndarray, y: np.ndarray, ddof: int) -> float:
    return float(np.dot(x - x.mean(), y - y.mean())) / (len(x) - ddof)


def _tuned_lambda(judge_all: np.ndarray, judge_labelled: np.ndarray, human: np.ndarray, ddof: int) -> float:
    """PPI++'s variance-optimal lam for a mean, cov(human, judge) / var(judge), clipped to [0, 1].

    Here (labelled inside all) the variance is var(Y)/N + (1 - n/N) var(Y - lam f)/n, minimised at
    the regression slope cov(Y, f)/var(f) whatever N is. As in ppi_py, the covariance comes from
    the labelled pairs and the judge's variance from all N grades (sample variance).
    """
    var_f = float(judge_all.var(ddof=1))
    if var_f == 0.0:
        return 0.0  # a constant judge carries no information; every lam gives the same estimate
    return float(np.clip(_cov(human, judge_labelled, ddof) / var_f, 0.0, 1.0))


def _rest_variance(judge_all: np.ndarray, judge_labelled: np.ndarray, ddof: int) -> float:
    """Variance of the judge's grades on the outputs nobody graded, from sums (no indices needed)."""
    n_all, n = len(judge_all), len(judge_labelled)
    m = n_all - n
    if m - ddof < 1:  # too few ungraded outputs for a variance: their weight lam*m/N is ~1/N anyway
        return float(judge_all.var(ddof=1))
    rest_mean = (judge_all.sum() - judge_labelled.sum()) / m
    # Centred on the rest's own mean, so the difference of the two sums is exact up to rounding.
    ss = float(np.sum((judge_all - rest_mean) ** 2) - np.sum((judge_labelled - rest_mean) ** 2))
    return max(ss, 0.0) / (m - ddof)


def _ppi_mean(judge_all: np.ndarray, judge_labelled: np.ndarray, human: np.ndarray, lam: float | None,
              ddof: int) -> tuple[float, float, float]:
    """(estimate, se, lam); ddof=0 reproduces ppi_py's population variances exactly (tests)."""
    n_all, n = len(judge_all), len(judge_labelled)
    if lam is None:
        lam = _tuned_lambda(judge_all, judge_labelled, human, ddof)
    estimate = lam * float(judge_all.mean()) + float(np.mean(human - lam * judge_labelled))
    # The variance on the (labelled, rest) split, where the two parts are independent samples.
    lam_rest = lam * (n_all - n) / n_all
    imputed = lam_rest**2 * _rest_variance(judge_all, judge_labelled, ddof) / (n_all - n) if n_all > n else 0.0
    rectifier = float(np.var(human - lam_rest * judge_labelled, ddof=ddof)) / n
    return estimate, math.sqrt(imputed + rectifier), float(lam)


def ppi_mean(judge_all: np.ndarray, judge_labelled: np.ndarray, human: np.ndarray, *,
             alpha: float = 0.05, lam: float | None = None) -> PPIEstimate:
    """Prediction-powered mean human grade of one strategy, with a normal (1 - alpha) interval.

    judge_all: the judge's grades of all N outputs. judge_labelled, human: the judge's and people's
    grades of the same n outputs, which are among those N and were sampled uniformly at random
    (the interval's assumption; it cannot be checked, but grades absent from judge_all are refused).
    lam: None tunes it (PPI++, clipped to [0, 1]); 1 is classic PPI; any fixed value is unbiased.
    """
    f_all = _grades(judge_all, "judge_all")
    f_lab = _grades(judge_labelled, "judge_labelled")
    y = _grades(human, "human")
    if len(y) != len(f_lab):
        raise ValueError(f"human ({len(y)}) and judge_labelled ({len(f_lab)}) must grade the same outputs")
    if len(y) < 2:
        raise ValueError(f"PPI needs at least 2 human-graded outputs for a variance, got {len(y)}")
    if len(f_lab) > len(f_all) or not _is_sub_multiset(f_lab, f_all):
        raise ValueError("judge_labelled must be the judge's grades of outputs that are in judge_all")
    if lam is not None and not math.isfinite(lam):
        raise ValueError(f"lam must be finite, got {lam}")
    estimate, se, used = _ppi_mean(f_all, f_lab, y, lam, ddof=1)
    judge_mean, judge_ci, _ = _plain_mean(f_all, alpha)
    return PPIEstimate(estimate, _interval(estimate, se, alpha), se, used, len(y), len(f_all),
                       judge_mean, judge_ci, alpha)


def _labelled(index: np.ndarray, human: np.ndarray, n_all: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    idx = np.asarray(index)
    if idx.ndim != 1 or (len(idx) and not np.issubdtype(idx.dtype, np.integer)):
        raise ValueError(f"labelled_{name} must be a 1-D array of integer example indices")
    y = _grades(human, f"human_{name}")
    if len(idx) != len(y):
        raise ValueError(f"labelled_{name} ({len(idx)}) and human_{name} ({len(y)}) differ in length")
    if len(y) < 2:
        raise ValueError(f"PPI needs at least 2 human-graded outputs of {name}, got {len(y)}")
    if idx.min() < 0 or idx.max() >= n_all or len(np.unique(idx)) != len(idx):
        raise ValueError(f"labelled_{name} must hold distinct indices in [0, {n_all})")
    return idx.astype(np.intp), y


class _Paired:
    """The paired problem: judge grades of A and B on all N examples, people's on index subsets."""

    def __init__(self, fa: np.ndarray, fb: np.ndarray, ia: np.ndarray, ya: np.ndarray,
                 ib: np.ndarray, yb: np.ndarray) -> None:
        self.fa, self.fb, self.ya, self.yb = fa, fb, ya, yb
        self.n_all, self.na, self.nb = len(fa), len(ia), len(ib)
        # Both judges' grades at A's and at B's labelled examples, sliced once: tuning lam
        # evaluates the variance several times.
        self.fa_a, self.fb_a, self.fa_b, self.fb_b = fa[ia], fb[ia], fa[ib], fb[ib]
        # Positions within ia and ib of the examples that people graded for both strategies.
        _, self.pos_a, self.pos_b = np.intersect1d(ia, ib, assume_unique=True, return_indices=True)

    def estimate(self, la: float, lb: float) -> float:
        return float(la * self.fa.mean() - lb * self.fb.mean()
                     + np.mean(self.ya - la * self.fa_a) - np.mean(self.yb - lb * self.fb_b))

    def variance(self, la: float, lb: float) -> float:
        """Plug-in variance of estimate(la, lb); see ppi_paired_diff. Exactly quadratic in (la, lb)."""
        n_all, na, nb, k = self.n_all, self.na, self.nb, len(self.pos_a)
        ra, rb = self.ya - la * self.fa_a, self.yb - lb * self.fb_b
        v = float(np.var(la * self.fa - lb * self.fb, ddof=1)) / n_all
        v += float(ra.var(ddof=1)) / na + float(rb.var(ddof=1)) / nb
        v += 2.0 * (_cov(la * self.fa_a - lb * self.fb_a, ra, 1) - _cov(la * self.fa_b - lb * self.fb_b, rb, 1)) / n_all
        if k:
            # Centred on each rectifier's mean over its own labelled set, so one shared example is
            # enough; the divisor makes it unbiased, and is k - 1 when both sets are the same.
            divisor = k * ((1 - 1 / na) * (1 - 1 / nb) + (k - 1) / (na * nb))
            cov_ab = float(np.dot(ra[self.pos_a] - ra.mean(), rb[self.pos_b] - rb.mean())) / divisor
            v -= 2.0 * k * cov_ab / (na * nb)
        return v


def _box_argmin(v: Callable[[float, float], float]) -> tuple[float, float]:
    """Minimise a quadratic v(la, lb) over [0, 1]^2 exactly: stationary point, edges, corners.

    The coefficients are read off v itself, so the tuned lams minimise the very variance that the
    interval reports (PPI++ power tuning, with [0, 1] as the constraint rather than a clip).
    """
    c = v(0.0, 0.0)
    h11 = (v(1.0, 0.0) + v(-1.0, 0.0)) / 2 - c  # v = h11 la^2 + 2 h12 la lb + h22 lb^2 - 2 q.l + c
    h22 = (v(0.0, 1.0) + v(0.0, -1.0)) / 2 - c
    q1, q2 = (v(-1.0, 0.0) - v(1.0, 0.0)) / 4, (v(0.0, -1.0) - v(0.0, 1.0)) / 4
    h12 = (v(1.0, 1.0) - h11 - h22 + 2 * q1 + 2 * q2 - c) / 2

    def quadratic(point: tuple[float, float]) -> float:
        la, lb = point
        return h11 * la * la + 2 * h12 * la * lb + h22 * lb * lb - 2 * (q1 * la + q2 * lb) + c

    def best(q: float, h: float, cross: float, other: float) -> float:  # 1-D argmin on [0, 1]
        return float(np.clip((q - cross * other) / h, 0.0, 1.0)) if h > 0 else 0.0

    candidates = [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]
    candidates += [(best(q1, h11, h12, lb), lb) for lb in (0.0, 1.0)]
    candidates += [(la, best(q2, h22, h12, la)) for la in (0.0, 1.0)]
    det = h11 * h22 - h12 * h12
    if h11 > 0 and det > 1e-12 * h11 * h22:  # positive definite: the interior minimum, if inside
        la, lb = (q1 * h22 - q2 * h12) / det, (q2 * h11 - q1 * h12) / det
        if 0.0 <= la <= 1.0 and 0.0 <= lb <= 1.0:
            candidates.append((la, lb))
    return min(candidates, key=quadratic)


def _lambdas(problem: _Paired, lam: Lambdas) -> tuple[float, float]:
    if lam is None:
        return _box_argmin(problem.variance)
    pair = (float(lam), float(lam)) if isinstance(lam, int | float) else (float(lam[0]), float(lam[1]))
    if not all(math.isfinite(x) for x in pair):
        raise ValueError(f"lam must be finite, got {lam}")
    return pair


def ppi_paired_diff(judge_a_all: np.ndarray, judge_b_all: np.ndarray, labelled_a: np.ndarray,
                    human_a: np.ndarray, labelled_b: np.ndarray, human_b: np.ndarray, *,
                    alpha: float = 0.05, lam: Lambdas = None) -> PPIDifference:
    """Prediction-powered difference of two strategies' mean human grades on the same N examples.

    judge_x_all[i]: the judge's grade of strategy x's output on example i. labelled_x: indices of
    the examples whose x-output people graded, human_x their grades (A and B may be graded on
    different, overlapping or the same examples). With r_x = human_x - lam_x * judge_x:

        estimate = lam_a mean(f_a) - lam_b mean(f_b) + mean_{S_a}(r_a) - mean_{S_b}(r_b)

    i.e. each strategy's PPI++ mean, differenced. Assumptions: the N examples are a random sample;
    each S_x is a uniform random subset of the examples, and the pair (S_a, S_b) is drawn without
    regard to the grades (independently, or the same set for both, or any exchangeable design);
    not, say, only the outputs the judge graded low. Conditioning on the overlap size k = |S_a & S_b|, with g = lam_a f_a - lam_b f_b:

        var = var(g)/N + var(r_a)/n_a + var(r_b)/n_b + 2 [cov(g, r_a) - cov(g, r_b)] / N
              - 2 k cov(r_a, r_b) / (n_a n_b)

    (the judge part, paired over all N examples; each rectifier; their covariance through the
    labelled examples being among the N; and the pairing of the rectifiers on the k examples graded
    for both). Every term is estimable: cov(g, r_x) on S_x, cov(r_a, r_b) on the overlap. The plug-in
    variance is clamped at 0. lam: None tunes (lam_a, lam_b) in [0, 1]^2 to minimise it; a number
    or a pair fixes them (1: classic PPI). p-value: two-sided normal test of estimate / se.
    """
    fa, fb = _grades(judge_a_all, "judge_a_all", 2), _grades(judge_b_all, "judge_b_all", 2)
    if len(fa) != len(fb):
        raise ValueError(f"paired judge grades differ in length: {len(fa)} vs {len(fb)}")
    ia, ya = _labelled(labelled_a, human_a, len(fa), "a")
    ib, yb = _labelled(labelled_b, human_b, len(fa), "b")
    problem = _Paired(fa, fb, ia, ya, ib, yb)
    la, lb = _lambdas(problem, lam)
    estimate = problem.estimate(la, lb)
    se = math.sqrt(max(problem.variance(la, lb), 0.0))
    p = two_sided_p(estimate / se) if se > 0 else float(estimate == 0.0)
    judge_diff, judge_ci, judge_se = _plain_mean(fa - fb, alpha)
    judge_p = two_sided_p(judge_diff / judge_se) if judge_se > 0 else float(judge_diff == 0.0)
    return PPIDifference(estimate, _interval(estimate, se, alpha), se, p, (la, lb), len(ia), len(ib),
                         len(problem.pos_a), len(fa), judge_diff, judge_ci, judge_p, alpha)
