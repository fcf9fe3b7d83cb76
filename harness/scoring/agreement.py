"""How a judge model's grades agree with people's on the same outputs.

Exact agreement, Cohen's kappa (agreement beyond chance; weighted for ordinal grades such as 1-5
rubric scores or wrong/partial/correct, where grading 4 for a 5 is a smaller miss than 1), the
confusion matrix, and which way the judge errs (too lenient or too harsh), which says whether a
correction such as harness.scoring.ppi is needed and in which direction.

Grades are any hashable values; `labels` lists every possible grade, in order from worst to best
where the grades are ordinal (kappa's weights use positions in that list, as sklearn does). A grade
missing from `labels` is an error, not silently dropped (sklearn drops it): it means the judge
produced something off the scale, which a report should not hide.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Weights = Literal["linear", "quadratic"] | None


def _codes(grades: Sequence[Hashable] | np.ndarray, labels: Sequence[Hashable], name: str) -> np.ndarray:
    """Each grade's position in labels."""
    values = np.asarray(grades)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
    if len(values) == 0:
        raise ValueError(f"{name} is empty: agreement needs at least one graded output")
    index = {label: i for i, label in enumerate(labels)}
    if len(index) != len(labels) or not labels:
        raise ValueError(f"labels must be distinct and non-empty, got {list(labels)}")
    # One dict look-up per distinct grade, not per grade.
    distinct, inverse = np.unique(values, return_inverse=True)
    try:
        codes = np.array([index[v.item() if isinstance(v, np.generic) else v] for v in distinct], dtype=np.intp)
    except KeyError as missing:
        raise ValueError(f"{name} has grade {missing.args[0]!r}, not among labels {list(labels)}") from None
    return codes[inverse.reshape(-1)]


def _paired_codes(a: Sequence[Hashable] | np.ndarray, b: Sequence[Hashable] | np.ndarray,
                  labels: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    ca, cb = _codes(a, labels, "a"), _codes(b, labels, "b")
    if len(ca) != len(cb):
        raise ValueError(f"the two raters graded different numbers of outputs: {len(ca)} vs {len(cb)}")
    return ca, cb


def confusion(a: Sequence[Hashable] | np.ndarray, b: Sequence[Hashable] | np.ndarray,
              labels: Sequence[Hashable]) -> np.ndarray:
    """counts[i, j] = number of outputs graded labels[i] by a and labels[j] by b (sklearn's layout
    for confusion_matrix(a, b)). Labels nobody used get rows and columns of zeros."""
    ca, cb = _paired_codes(a, b, labels)
    k = len(labels)
    return np.bincount(ca * k + cb, minlength=k * k).reshape(k, k)


def agreement_rate(a: Sequence[Hashable] | np.ndarray, b: Sequence[Hashable] | np.ndarray) -> float:
    """Fraction of outputs that both raters graded the same."""
    va, vb = np.asarray(a), np.asarray(b)
    if va.ndim != 1 or va.shape != vb.shape:
        raise ValueError(f"the raters' grades must be 1-D and of one length, got {va.shape} and {vb.shape}")
    if len(va) == 0:
        raise ValueError("no graded outputs: agreement needs at least one")
    return float(np.mean(va == vb))


def _weight_matrix(k: int, weights: Weights) -> np.ndarray:
    distance = np.abs(np.subtract.outer(np.arange(k), np.arange(k))).astype(np.float64)
    if weights is None:
        return (distance > 0).astype(np.float64)
    if weights == "linear":
        return distance
    if weights == "quadratic":
        return distance**2
    raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")


def kappa_from_confusion(counts: np.ndarray, weights: Weights = None) -> float:
    """kappa = 1 - sum(w * observed) / sum(w * expected), expected from the two raters' margins.

    NaN where it is undefined, as sklearn's cohen_kappa_score (replace_undefined_by=nan): both
    raters gave every output one and the same grade, so no disagreement was expected by chance.
    The agreement rate (1.0 there) still says how they agreed.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        raise ValueError("no graded outputs: kappa needs at least one")
    observed = counts / total
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    w = _weight_matrix(len(counts), weights)
    chance = float(np.sum(w * expected))
    if chance == 0.0:  # a sum of non-negative terms: exactly zero, not merely small
        return math.nan
    return 1.0 - float(np.sum(w * observed)) / chance


def cohen_kappa(a: Sequence[Hashable] | np.ndarray, b: Sequence[Hashable] | np.ndarray,
                labels: Sequence[Hashable], weights: Weights = None) -> float:
    """Cohen's kappa of two raters on the same outputs; "linear"/"quadratic" weight a miss by its
    distance in `labels` (ordinal grades). Equals sklearn.metrics.cohen_kappa_score(a, b,
    labels=labels, weights=weights), including NaN where it is undefined."""
    return kappa_from_confusion(confusion(a, b, labels), weights)


@dataclass(frozen=True)
class Agreement:
    """A judge against people on the same n outputs."""

    n: int
    labels: tuple[Hashable, ...]
    rate: float  # fraction graded the same
    kappa: float  # unweighted Cohen's kappa (NaN where undefined, see kappa_from_confusion)
    weighted_kappa: float | None  # with `weights`, for ordinal grades; None for nominal ones
    weights: str | None
    confusion: tuple[tuple[int, ...], ...]  # [human grade][judge grade], in labels' order
    # Which way the judge errs (ordinal grades only, else None): the mean of judge minus human, in
    # grade units where the labels are numbers and in label positions otherwise, and the counts
    # of outputs it graded above / below people.
    mean_diff: float | None
    too_high: int | None
    too_low: int | None

    @property
    def matrix(self) -> np.ndarray:
        return np.array(self.confusion, dtype=np.int64)


def _numeric(labels: Sequence[Hashable]) -> bool:
    return all(isinstance(x, numbers.Real) for x in labels)


def judge_agreement(judge: Sequence[Hashable] | np.ndarray, human: Sequence[Hashable] | np.ndarray,
                    labels: Sequence[Hashable], *, ordinal: bool = True,
                    weights: Weights = "quadratic") -> Agreement:
    """Summarise a judge's grades against people's grades of the same outputs (same order).

    ordinal: the labels run from worst to best (numeric labels must then increase), so kappa is
    also weighted by `weights` (quadratic by default, the usual choice for rubric scores) and the
    judge's over- and under-grading is counted. ordinal=False: nominal grades, unweighted only.
    """
    cj, ch = _paired_codes(judge, human, labels)
    counts = confusion(human, judge, labels)
    kappa = kappa_from_confusion(counts)
    if not ordinal:
        return Agreement(len(cj), tuple(labels), float(np.mean(cj == ch)), kappa, None, None,
                         _as_tuples(counts), None, None, None)
    if _numeric(labels) and not np.all(np.diff(np.asarray(labels, dtype=np.float64)) > 0):
        raise ValueError(f"ordinal numeric labels must increase, got {list(labels)}")
    scale = np.asarray(labels, dtype=np.float64) if _numeric(labels) else np.arange(len(labels), dtype=np.float64)
    return Agreement(
        n=len(cj), labels=tuple(labels), rate=float(np.mean(cj == ch)), kappa=kappa,
        weighted_kappa=kappa_from_confusion(counts, weights), weights=weights, confusion=_as_tuples(counts),
        mean_diff=float(np.mean(scale[cj] - scale[ch])),
        too_high=int(np.count_nonzero(cj > ch)), too_low=int(np.count_nonzero(cj < ch)),
    )


def _as_tuples(counts: np.ndarray) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(x) for x in row) for row in counts)
