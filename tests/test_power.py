"""Power figures, the task's primary metric, and a recommendation that is never decided on an
uninformative metric (issue: a qa suite was decided on exact match where everyone scored 0)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from harness.core.results import to_json
from harness.core.types import Example, GenerationConfig, Suite
from harness.scoring.compare import compare_strategies
from harness.scoring.power import power_figures
from harness.scoring.recommend import recommend, uninformative
from tests.fixtures_runs import strategy_results
from tests.test_scoring import _by, _examples, _predict, _scored, _suite


def test_power_figures_by_hand() -> None:
    # ci (-0.1, 0.1): se = 0.2 / (2 * 1.959964) = 0.0510214; mde = (1.959964 + 0.841621) * se = 0.142941
    p = power_figures(0.05, (-0.1, 0.1), 100)
    assert p is not None and p.mde == pytest.approx(0.142941, abs=1e-5)
    assert p.n_needed == math.ceil(100 * (0.142941 / 0.05) ** 2) == 818
    assert power_figures(0.0, (-0.1, 0.1), 100).n_needed is None  # type: ignore[union-attr]
    assert power_figures(0.1, (float("nan"), 0.2), 10) is None
    # a stricter alpha and more power need a larger difference
    assert power_figures(0.05, (-0.1, 0.1), 100, alpha=0.01, power=0.9).mde > p.mde  # type: ignore[union-attr]


def test_power_of_a_paired_comparison_matches_the_textbook_formula() -> None:
    """Per-example accuracy differences with a known spread: mde ~ 2.80 * sd(d) / sqrt(n)."""
    suite, examples = _suite("classification", ("accuracy",)), _examples(400)
    a = _predict("a", examples, 0.70, 1)
    b = _predict("b", examples, 0.70, 2)
    rows = to_json(compare_strategies(suite, examples, _by(suite, examples, {"a": a, "b": b}), seed=0, n_resamples=2000))
    [row] = [r for r in rows if r["metric"] == "accuracy"]
    assert row["significant"] is False and row["power"]["n_needed"] is not None
    correct_a = np.array([p.answer == e.target for p, e in zip(a, examples, strict=True)], dtype=float)
    correct_b = np.array([p.answer == e.target for p, e in zip(b, examples, strict=True)], dtype=float)
    textbook = 2.8016 * np.std(correct_a - correct_b) / math.sqrt(len(examples))
    assert row["power"]["mde"] == pytest.approx(textbook, rel=0.1)


def test_a_tie_says_what_the_test_set_could_detect() -> None:
    suite, examples = _suite(), _examples(80)
    base = _predict("sft", examples, 0.7, 1)
    rag = [replace(p, strategy="rag") for p in base]
    by = {"rag": rag, "prompt": base}
    strategies, comps = _scored(suite, examples, by, {"rag": (120.0, 60.0), "prompt": (0.0, 40.0)})
    text = recommend(strategies, comps, "f1").text
    assert "no significant difference" in text and "with 80 examples only differences above" in text


def test_the_primary_metric_follows_the_task() -> None:
    def suite(task: str, metrics: tuple[str, ...], golds: tuple[str, ...] = ("a", "b"), declared: str | None = None) -> Suite:
        test = tuple(Example(f"e{i}", "x", g) for i, g in enumerate(golds))
        return Suite(name="s", task=task, instruction="i", labels=("a", "b"), metrics=metrics,  # type: ignore[arg-type]
                     generation=GenerationConfig(), train=(), test=test, primary_declared=declared)

    assert suite("qa", ("accuracy", "f1", "bleu")).primary_metric == "f1"
    assert suite("extraction", ("exact_match", "f1")).primary_metric == "f1"
    assert suite("generation", ("rouge_l", "chrf")).primary_metric == "chrf"
    assert suite("classification", ("f1", "accuracy")).primary_metric == "accuracy"  # balanced
    assert suite("classification", ("accuracy", "f1"), ("a", "a", "a", "b")).primary_metric == "f1"  # imbalanced
    assert suite("qa", ("accuracy", "f1"), declared="accuracy").primary_metric == "accuracy"
    assert suite("qa", ("rouge_l",)).primary_metric == "rouge_l"


def test_an_uninformative_primary_metric_never_decides() -> None:
    strategies = strategy_results({
        "prompt": {"metrics": {"accuracy": {"value": 0.0}, "f1": {"value": 0.21}}},
        "rag": {"metrics": {"accuracy": {"value": 0.0}, "f1": {"value": 0.35}}},
    })
    assert uninformative([0.0, 0.0], "accuracy") == 0.0 and uninformative([0.21, 0.35], "f1") is None
    assert uninformative([1.0, None, 1.0], "accuracy") == 1.0 and uninformative([0.5, 0.5], "f1") is None
    rec = to_json(recommend(strategies, [], "accuracy", ("accuracy", "f1")))
    assert rec["metric"] == "f1" and rec["winner"] == "rag" and rec["uninformative"] == ["accuracy"]
    assert rec["text"].startswith("accuracy is uninformative here (every strategy scored 0.000), so this is decided on f1.")
    everything_zero = strategy_results({k: {"metrics": {"accuracy": {"value": 0.0}}} for k in ("a", "b")})
    assert recommend(everything_zero, [], "accuracy", ("accuracy",)).winner is None
