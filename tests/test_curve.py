"""Learning curves: the crossover arithmetic on hand-computed cases, the hierarchical bootstrap on a
case whose distribution is known exactly, nested stratified train subsets, sizes and the sentences."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.core.types import Example, GenerationConfig, Suite
from harness.report.sections.curve import sentences
from harness.runner.curve_data import parse_sizes, resolve_sizes, subset_suite, train_order
from harness.scoring.curve import (
    StrategyCells,
    crossover,
    crossovers,
    curve_stats,
    order_interval,
    pair_crossover,
    summary,
)

SIZES = [16.0, 32.0, 64.0, 128.0]


def mean_col0(rows: np.ndarray) -> float:
    return float(np.asarray(rows)[:, 0].mean())


def test_crossover_interpolates_in_log_size() -> None:
    a = np.array([[0.2, 0.3, 0.5, 0.6],    # behind until 32, ahead from 64: d = -0.1 at 32, +0.1 at 64
                  [0.1, 0.1, 0.1, 0.1],    # never ahead
                  [0.5, 0.5, 0.5, 0.5],    # ahead from the smallest size
                  [0.4, 0.5, 0.5, 0.5],    # level at 16 (not ahead), ahead at 32: crosses at 16 exactly
                  [0.3, 0.35, 0.7, 0.7]])  # d = -0.1, -0.05, +0.3: t = 0.05 / 0.35 of the way from 32 to 64
    b = np.full_like(a, 0.4)
    got = crossover(SIZES, a, b)
    assert got[0] == pytest.approx(32 * math.sqrt(2))  # halfway from 32 to 64 in log size: sqrt(32 * 64)
    assert got[1] == math.inf
    assert got[2] == 16
    assert got[3] == pytest.approx(16)
    assert got[4] == pytest.approx(32 * 2 ** (1 / 7))


def test_order_interval_keeps_no_crossover_as_infinite() -> None:
    values = np.array([10.0] * 90 + [math.inf] * 10)
    assert order_interval(values) == (10.0, math.inf)
    assert order_interval(np.arange(1.0, 102.0)) == (3.0, 99.0)  # ranks floor(0.025*100)=2 and ceil(97.5)=98


def _flat_rows(value: float, n: int = 20) -> np.ndarray:
    return np.full((n, 1), value)


def test_bootstrap_resamples_seeds_with_a_known_distribution() -> None:
    """Every example scores the same, so only the seed draw varies. `a` at 64 is 0.4 or 0.6 by seed
    (mean 0.5): a draw of both seeds gives a crossover at sqrt(32*64) (p = 1/2), seed 0 twice gives
    d = 0 at 64 and so 64 (p = 1/4), seed 1 twice gives d = 0.2: 32 * 2^(1/3) (p = 1/4)."""
    a_means = {0: 0.2, 1: 0.3, 3: 0.6}
    rows = {(i, j): _flat_rows(a_means[i]) for i in (0, 1, 3) for j in (0, 1)}
    rows[(2, 0)], rows[(2, 1)] = _flat_rows(0.4), _flat_rows(0.6)
    cells = {"sft": StrategyCells(rows=rows), "prompt": StrategyCells(flat=_flat_rows(0.4))}
    stats = curve_stats(cells, SIZES, 2, mean_col0, n_test=20, n_resamples=4000, seed=1)
    c = pair_crossover(stats, "sft", "prompt")
    assert c["at"] == pytest.approx(32 * math.sqrt(2))
    assert c["ci"] == [pytest.approx(32 * 2 ** (1 / 3)), pytest.approx(64.0)]
    assert c["no_crossover_share"] == 0.0
    boot = crossover(SIZES, stats.boot["sft"], stats.boot["prompt"])
    shares = Counter(np.round(boot, 3).tolist())
    assert shares[round(32 * math.sqrt(2), 3)] / 4000 == pytest.approx(0.5, abs=0.03)
    assert shares[64.0] / 4000 == pytest.approx(0.25, abs=0.03)
    points = summary(stats, "sft")
    assert points[2]["mean"] == pytest.approx(0.5) and points[2]["sd"] == pytest.approx(math.sqrt(0.02))
    assert points[2]["ci"] == [pytest.approx(0.4), pytest.approx(0.6)]
    assert summary(stats, "prompt")[0]["ci"] == [pytest.approx(0.4), pytest.approx(0.4)]
    # Oriented: the curve behind at the smallest size is the one asked about.
    assert [(x["a"], x["b"]) for x in crossovers(stats, {"sft": True, "prompt": False})] == [("sft", "prompt")]


def test_bootstrap_resamples_examples_and_counts_resamples_without_a_crossover() -> None:
    """sft ties prompt at 128 on half the examples' worth: some example draws never cross."""
    rng = np.random.default_rng(0)
    correct = (rng.random((30, 1)) < 0.5).astype(float)
    rows = {(i, 0): np.zeros((30, 1)) for i in range(3)}
    rows[(3, 0)] = correct
    prompt = np.full((30, 1), float(correct.mean()) - 0.02)
    stats = curve_stats({"sft": StrategyCells(rows=rows), "prompt": StrategyCells(flat=prompt)}, SIZES, 1, mean_col0,
                        n_test=30, n_resamples=2000)
    c = pair_crossover(stats, "sft", "prompt")
    assert c["at"] is not None and 64 < c["at"] < 128
    assert 0.1 < c["no_crossover_share"] < 0.9  # resampling examples moves sft's last point above and below
    assert c["ci"][1] is None  # the upper end lies beyond the sizes measured


def _curve(crossings: list[dict[str, object]]) -> dict[str, object]:
    return {"sizes": [16, 32, 64, 128], "crossovers": crossings}


def test_sentences_say_where_and_whether() -> None:
    over = {"a": "sft", "b": "prompt:k=8", "at": 47.6, "from_start": False, "ci": [32.0, 96.0],
            "no_crossover_share": 0.0, "resamples": 2000}
    never = {"a": "sft", "b": "prompt", "at": None, "from_start": False, "ci": [90.0, None],
             "no_crossover_share": 0.8, "resamples": 2000}
    flat = {"a": "prompt", "b": "prompt:k=8", "at": None, "from_start": False, "ci": [None, None],
            "no_crossover_share": 1.0, "resamples": 2000}
    got = sentences({**_curve([over, never, flat]), "curves": {"prompt": {"uses_train": False}}})
    assert got[2] == "prompt:k=8 stays ahead of prompt at every size measured (16-128 examples)."
    assert got[0] == ("sft overtakes prompt:k=8 at about 48 examples (95% CI 32-96); below that, prompt:k=8 is "
                      "as good or better.")
    assert got[1] == "sft does not overtake prompt within the sizes measured (16-128 examples) (it does in 20% of resamples)."


def _ex(i: int, label: str) -> Example:
    return Example(id=f"e{i}", input=f"text {i}", target=label)


def _suite(train: list[Example], task: str = "classification") -> Suite:
    labels = tuple(sorted({str(e.target) for e in train}))
    return Suite(name="s", task=task, instruction="x", labels=labels, metrics=("accuracy",),  # type: ignore[arg-type]
                 generation=GenerationConfig(), train=tuple(train), test=(), sha256="abc", part_sha256={"train": "t"})


def test_orderings_are_nested_stratified_seeded_permutations() -> None:
    # Imbalanced: 40 of label a, 5 each of b..e.
    train = [_ex(i, "a") for i in range(40)] + [_ex(40 + i, lab) for i, lab in enumerate("bcde" * 5)]
    order = train_order(train, "classification", seed=3)
    assert sorted(e.id for e in order) == sorted(e.id for e in train)  # a permutation
    assert {str(e.target) for e in order[:5]} == set("abcde")  # 5 examples already cover all 5 labels
    assert Counter(str(e.target) for e in order[:20]) == Counter({lab: 4 for lab in "abcde"})
    assert order == train_order(train, "classification", seed=3)
    assert order != train_order(train, "classification", seed=4)
    plain = train_order(train, "qa", seed=3)
    assert sorted(e.id for e in plain) == sorted(e.id for e in train) and plain != train
    # Nested by construction: size n is the first n of the one ordering of its seed.
    suite = _suite(train)
    small, large = subset_suite(suite, order[:8]), subset_suite(suite, order[:16])
    assert set(small.train) <= set(large.train) and len(small.train) == 8
    assert len({small.sha256, large.sha256, suite.sha256}) == 3  # shot caches must not mix subsets
    assert subset_suite(suite, order[:8]).sha256 == small.sha256


def test_sizes_parse_and_resolve() -> None:
    assert parse_sizes("16, 32,all,16") == [16, 32, "all"]
    assert parse_sizes([8, "all"]) == [8, "all"]
    assert resolve_sizes([64, "all", 16], 100) == [16, 64, 100]
    assert resolve_sizes([100, "all"], 100) == [100]
    with pytest.raises(HarnessError, match=r"--sizes: 128 is more than the 100 train examples"):
        resolve_sizes([16, 128], 100)
    with pytest.raises(HarnessError, match="not a train size"):
        parse_sizes("16,lots")
    with pytest.raises(HarnessError, match="at least 1"):
        parse_sizes("0,16")
