"""harness.scoring.agreement: a judge's grades against people's (kappa, confusion, direction)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from harness.scoring.agreement import (
    Agreement,
    agreement_rate,
    cohen_kappa,
    confusion,
    judge_agreement,
    kappa_from_confusion,
)


def _sklearn_kappa(a: object, b: object, labels: list, weights: str | None) -> float:
    with warnings.catch_warnings():  # it warns where kappa is undefined; the value is what we compare
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(a, b, labels=labels, weights=weights))


def test_kappa_by_hand() -> None:
    # sklearn's docstring example: 0.6875.
    y1 = ["negative", "positive", "negative", "neutral", "positive"]
    y2 = ["negative", "positive", "negative", "neutral", "negative"]
    assert cohen_kappa(y1, y2, ["negative", "neutral", "positive"]) == pytest.approx(0.6875, abs=1e-15)
    # counts [[1,1,0],[0,1,0],[0,1,0]]: margins a (.5,.25,.25), b (.25,.75,0); observed weighted
    # disagreement .5 in all three; expected .6875 (unweighted), .75 (linear), .875 (quadratic).
    a, b = [1, 1, 2, 3], [1, 2, 2, 2]
    assert confusion(a, b, [1, 2, 3]).tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    assert cohen_kappa(a, b, [1, 2, 3]) == pytest.approx(3 / 11, abs=1e-15)
    assert cohen_kappa(a, b, [1, 2, 3], "linear") == pytest.approx(1 / 3, abs=1e-15)
    assert cohen_kappa(a, b, [1, 2, 3], "quadratic") == pytest.approx(3 / 7, abs=1e-15)
    assert cohen_kappa([1, 2, 3, 1], [1, 2, 3, 1], [1, 2, 3]) == 1.0
    assert agreement_rate(a, b) == 0.5
    assert agreement_rate([1, 2], [1.0, 2.0]) == 1.0


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kappa_matches_sklearn_on_random_grades(weights: str | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    human = rng.integers(1, 6, 300)
    judge = np.clip(human + rng.choice([-2, -1, 0, 0, 0, 1, 1], 300), 1, 5)
    labels = [1, 2, 3, 4, 5, 6]  # 6 is on the scale but nobody gave it
    ours = cohen_kappa(judge, human, labels, weights)  # type: ignore[arg-type]
    assert ours == pytest.approx(_sklearn_kappa(judge, human, labels, weights), abs=1e-12)
    assert 0.2 < ours < 1.0
    assert np.array_equal(confusion(judge, human, labels), confusion_matrix(judge, human, labels=labels))
    # String grades, labels in an order of our choosing: weights follow the list's positions.
    names = np.array(["e", "d", "c", "b", "a"])
    order = ["e", "d", "c", "b", "a"]
    assert cohen_kappa(names[judge - 1], names[human - 1], order, weights) == pytest.approx(ours, abs=1e-12)  # type: ignore[arg-type]
    assert cohen_kappa(names[judge - 1], names[human - 1], order, weights) == pytest.approx(  # type: ignore[arg-type]
        _sklearn_kappa(names[judge - 1], names[human - 1], order, weights), abs=1e-12)


def test_undefined_and_degenerate_kappa_as_sklearn() -> None:
    # Both raters gave every output the same single grade: no disagreement expected by chance.
    assert math.isnan(cohen_kappa([3, 3, 3], [3, 3, 3], [1, 2, 3, 4, 5]))
    assert math.isnan(_sklearn_kappa([3, 3, 3], [3, 3, 3], [1, 2, 3, 4, 5], None))
    assert math.isnan(cohen_kappa([3, 3], [3, 3], [1, 2, 3], "quadratic"))
    # Each constant but different: defined, and no better than chance.
    assert cohen_kappa([2, 2, 2], [3, 3, 3], [1, 2, 3]) == 0.0 == _sklearn_kappa([2, 2, 2], [3, 3, 3], [1, 2, 3], None)
    # One rater constant, the other not: 0 as well.
    assert cohen_kappa([1, 1, 2], [1, 1, 1], [1, 2]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="empty"):
        cohen_kappa([], [], [1, 2])
    with pytest.raises(ValueError, match="at least one"):
        agreement_rate([], [])
    with pytest.raises(ValueError, match="at least one"):
        kappa_from_confusion(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"grade 7, not among labels"):
        cohen_kappa([1, 7], [1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="grade 'great'"):
        confusion(["good", "bad"], ["good", "great"], ["bad", "good"])
    with pytest.raises(ValueError, match="different numbers"):
        confusion([1, 2], [1], [1, 2])
    with pytest.raises(ValueError, match="distinct"):
        cohen_kappa([1, 2], [1, 2], [1, 2, 2])
    with pytest.raises(ValueError, match="weights"):
        cohen_kappa([1, 2], [1, 2], [1, 2], "cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN|not among labels"):
        cohen_kappa([1.0, math.nan], [1.0, 2.0], [1.0, 2.0])


def test_a_lenient_judge_is_seen_grading_too_high() -> None:
    rng = np.random.default_rng(5)
    human = rng.integers(1, 6, 400)
    bump = rng.random(400) < 0.3
    judge = np.minimum(human + bump, 5)
    labels = [1, 2, 3, 4, 5]
    a = judge_agreement(judge, human, labels)
    raised = int(np.count_nonzero(judge > human))
    assert isinstance(a, Agreement) and a.n == 400 and a.labels == (1, 2, 3, 4, 5)
    assert (a.too_high, a.too_low) == (raised, 0) and 80 < raised < 130
    assert a.mean_diff == pytest.approx(raised / 400)
    assert a.rate == pytest.approx(1 - raised / 400)
    assert a.kappa == pytest.approx(_sklearn_kappa(human, judge, labels, None), abs=1e-12)
    assert a.weights == "quadratic"
    assert a.weighted_kappa == pytest.approx(_sklearn_kappa(human, judge, labels, "quadratic"), abs=1e-12)
    assert a.weighted_kappa is not None and a.weighted_kappa > a.kappa  # one-step misses cost little under quadratic weights
    # Rows are people's grades, columns the judge's: all mass on or above the diagonal.
    assert np.array_equal(a.matrix, confusion_matrix(human, judge, labels=labels))
    assert not np.tril(a.matrix, -1).any() and np.triu(a.matrix, 1).sum() == raised
    linear = judge_agreement(judge, human, labels, weights="linear")
    assert linear.weighted_kappa == pytest.approx(_sklearn_kappa(human, judge, labels, "linear"), abs=1e-12)


def test_direction_in_grade_units_or_label_positions() -> None:
    # Numeric labels: the judge's excess in the grade's own units (half a point here).
    halves = judge_agreement([1.0, 0.5, 0.0, 0.5], [0.5, 0.5, 0.5, 0.0], [0.0, 0.5, 1.0])
    assert halves.mean_diff == pytest.approx((0.5 + 0.0 - 0.5 + 0.5) / 4)
    assert (halves.too_high, halves.too_low) == (2, 1)
    # Named ordinal grades, worst to best: in positions, and a harsh judge comes out negative.
    scale = ["wrong", "partial", "correct"]
    harsh = judge_agreement(["wrong", "partial", "partial", "wrong"], ["partial", "correct", "partial", "correct"], scale)
    assert harsh.mean_diff == pytest.approx(-(1 + 1 + 0 + 2) / 4)
    assert (harsh.too_high, harsh.too_low) == (0, 3)
    assert harsh.confusion == ((0, 0, 0), (1, 1, 0), (1, 1, 0))
    # Nominal grades: unweighted kappa only, no direction.
    nominal = judge_agreement(["cat", "dog", "dog"], ["cat", "dog", "cat"], ["dog", "cat"], ordinal=False)
    assert (nominal.weighted_kappa, nominal.weights, nominal.mean_diff, nominal.too_high, nominal.too_low) == (
        None, None, None, None, None)
    assert nominal.kappa == pytest.approx(_sklearn_kappa(["cat", "dog", "cat"], ["cat", "dog", "dog"], ["dog", "cat"], None))
    # Everyone gave one grade: kappa NaN (undefined), but the agreement is reported as total.
    flat = judge_agreement([4, 4, 4], [4, 4, 4], [1, 2, 3, 4, 5])
    assert math.isnan(flat.kappa) and flat.weighted_kappa is not None and math.isnan(flat.weighted_kappa)
    assert (flat.rate, flat.mean_diff, flat.too_high, flat.too_low) == (1.0, 0.0, 0, 0)
    with pytest.raises(ValueError, match="must increase"):
        judge_agreement([1, 2], [2, 1], [3, 2, 1])
    with pytest.raises(ValueError, match="empty"):
        judge_agreement([], [], [1, 2])
