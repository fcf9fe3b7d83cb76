"""Training-seed variance (`sft:seeds=3`): the hierarchical bootstrap's point estimate and coverage,
its reduction to the plain bootstrap for one seed, and how results.json and the report carry it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.core.results import to_json
from harness.core.types import Example, GenerationConfig, Suite
from harness.scoring.results import score_results
from harness.scoring.rows import bind_metrics
from harness.scoring.seeds import _draws, hierarchical_ci, hierarchical_paired, seed_sd, seed_values
from harness.scoring.stats import bootstrap_ci, paired_bootstrap
from tests.fixtures_runs import recorded


class Mean:
    """The mean of column 0, with the vectorised form the bootstrap uses for real metrics."""

    def __call__(self, rows: np.ndarray) -> float:
        return float(np.asarray(rows)[:, 0].mean())

    def many(self, rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return counts @ rows[:, 0] / counts.sum(axis=1)


MEAN = Mean()


def col(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)[:, None]


# --------------------------------------------------------------------------- point estimate


def test_point_estimate_and_spread_by_hand() -> None:
    # seed 0 gets 2 of 3 right, seed 1 all 3: the strategy's value is (2/3 + 1) / 2 = 5/6.
    seeds = [col([1, 0, 1]), col([1, 1, 1])]
    assert seed_values(seeds, MEAN).tolist() == pytest.approx([2 / 3, 1.0])
    assert float(seed_values(seeds, MEAN).mean()) == pytest.approx(5 / 6)
    assert seed_sd([2 / 3, 1.0]) == pytest.approx(math.sqrt(1 / 18))  # ((1/6)^2 * 2 / 1) ** 0.5
    assert seed_sd([0.5]) is None and seed_sd([0.5, None]) is None
    # One resample, by hand: examples (2, 2, 1) and seeds (1, 1) -> seed 1 on rows [1, 1, 1] = 1.0;
    # examples (0, 1, 1) and seeds (0, 1) -> mean(seed 0 on [1, 0, 0], seed 1 on [1, 1, 1]) = (1/3 + 1) / 2.
    ex = np.array([[2, 2, 1], [0, 1, 1]])
    drawn = np.array([[1, 1], [0, 1]])
    assert _draws(seeds, MEAN, ex, drawn).tolist() == pytest.approx([1.0, 2 / 3])


def test_a_nonlinear_metric_is_averaged_per_seed_not_pooled() -> None:
    """Macro-F1 of each seed's answers, then the mean: not the F1 of the seeds' pooled rows."""
    suite = tiny_suite()
    f1 = bind_metrics(suite)["f1"]
    gold = [e.target for e in suite.test]
    a = f1.stats(["pos", "pos", "pos", "pos"], suite.test)  # everything positive
    b = f1.stats(list(gold), suite.test)  # all right: F1 1.0
    values = seed_values([a, b], f1)
    assert values[1] == pytest.approx(1.0) and values[0] == pytest.approx(f1(a))
    assert float(values.mean()) == pytest.approx((f1(a) + 1.0) / 2)


def test_one_seed_is_exactly_the_plain_bootstrap() -> None:
    rng = np.random.default_rng(3)
    a, b = col(list(rng.random(40))), col(list(rng.random(40)))
    assert hierarchical_ci([a], MEAN, n_resamples=500, seed=7) == bootstrap_ci(a, MEAN, n_resamples=500, seed=7)
    assert hierarchical_paired([a], [b], MEAN, n_resamples=500, seed=7) == \
        paired_bootstrap(a, b, MEAN, n_resamples=500, seed=7)


# --------------------------------------------------------------------------- coverage


def simulate(rng: np.random.Generator, seeds: int, n: int, seed_sd_: float, shift: float = 0.0) -> list[np.ndarray]:
    """Scores of one strategy: true mean 0.5 + shift, a random effect per training seed, per
    example (the same examples for every seed: the design is crossed) and per (seed, example)."""
    examples = rng.normal(0.0, 0.3, n)
    return [col(list(0.5 + shift + rng.normal(0.0, seed_sd_) + examples + rng.normal(0.0, 0.3, n)))
            for _ in range(seeds)]


@pytest.mark.parametrize("seeds", [3, 5])
def test_the_95_percent_interval_covers_the_true_mean_in_about_95_percent_of_trials(seeds: int) -> None:
    rng = np.random.default_rng(2026)
    trials, hits = 400, 0
    for trial in range(trials):
        lo, hi = hierarchical_ci(simulate(rng, seeds, 100, 0.05), MEAN, n_resamples=1000, seed=trial)
        hits += lo <= 0.5 <= hi
    assert 0.92 <= hits / trials <= 0.98


def test_resampling_seeds_is_what_keeps_the_coverage() -> None:
    """Where seeds matter, an interval over examples alone (rows: the mean over seeds) is too narrow."""
    rng = np.random.default_rng(11)
    trials, hier, flat = 300, 0, 0
    for trial in range(trials):
        scores = simulate(rng, 5, 100, 0.1)
        lo, hi = hierarchical_ci(scores, MEAN, n_resamples=1000, seed=trial)
        hier += lo <= 0.5 <= hi
        lo, hi = bootstrap_ci(np.mean(scores, axis=0), MEAN, n_resamples=1000, seed=trial)
        flat += lo <= 0.5 <= hi
    assert flat / trials < 0.82 and hier / trials >= 0.87 and hier > flat + 0.1 * trials


def test_the_paired_interval_covers_the_true_difference() -> None:
    """Two strategies on the same examples, each with its own seeds: the difference's interval."""
    rng = np.random.default_rng(5)
    trials, hits = 400, 0
    for trial in range(trials):
        examples = rng.normal(0.0, 0.3, 100)  # shared: the pairing the test exploits
        a = [col(list(0.6 + rng.normal(0, 0.05) + examples + rng.normal(0, 0.3, 100))) for _ in range(3)]
        b = [col(list(0.5 + examples + rng.normal(0, 0.3, 100)))]
        res = hierarchical_paired(a, b, MEAN, n_resamples=1000, seed=trial)
        hits += res.ci[0] <= 0.1 <= res.ci[1]
    assert 0.92 <= hits / trials <= 0.98


# --------------------------------------------------------------------------- results.json


def tiny_suite() -> Suite:
    test = tuple(Example(f"e{i}", f"text {i}", "pos" if i % 2 else "neg") for i in range(4))
    return Suite(name="tiny", task="classification", instruction="Classify.", labels=("neg", "pos"),
                 metrics=("accuracy", "f1"), generation=GenerationConfig(max_new_tokens=4), train=test, test=test)


def records(suite: Suite, name: str, answers: list[str]) -> list[Any]:
    return recorded(suite, name, answers)


def test_results_carry_the_seeds_and_test_pairs_over_them() -> None:
    suite = tiny_suite()
    right = [e.target for e in suite.test]
    wrong_one = ["pos", "pos", "neg", "pos"]  # e0 wrong: 3 of 4
    seeds = {0: records(suite, "sft", right), 1: records(suite, "sft@seed1", ["pos"] * 4)}  # 4/4 and 2/4
    predictions = {"sft": seeds[0], "prompt": records(suite, "prompt", wrong_one)}
    sections = {n: {"name": n, "kind": n, "params": {}, "prepare_s": 1.0} for n in predictions}
    out = to_json(score_results(suite, list(suite.test), predictions, sections, seed=0, seed_records={"sft": seeds},
                                n_resamples=200))
    sft, prompt = out["strategies"]["sft"], out["strategies"]["prompt"]
    assert sft["seeds"] == [0, 1] and sft["per_seed"]["accuracy"] == [1.0, 0.5]
    assert sft["metrics"]["accuracy"]["value"] == pytest.approx(0.75)
    assert sft["seed_sd"]["accuracy"] == pytest.approx(math.sqrt(0.125))
    lo, hi = sft["metrics"]["accuracy"]["ci"]
    assert lo <= 0.75 <= hi
    assert "seeds" not in prompt and prompt["metrics"]["accuracy"]["value"] == 0.75
    pair = next(c for c in out["comparisons"] if c["metric"] == "accuracy")
    assert pair["test"] == "hierarchical_bootstrap" and "mcnemar_p" not in pair
    assert pair["diff"] == pytest.approx(0.0) and pair["seed_sd"] == {"sft": pytest.approx(math.sqrt(0.125))}
    assert "larger than the difference" in pair["seed_note"]  # a spread of 0.35 against a difference of 0
    assert 0.0 <= pair["p_holm"] <= 1.0 and pair["significant"] is False


def test_without_seed_records_nothing_changes() -> None:
    suite = tiny_suite()
    predictions = {"a": records(suite, "a", [e.target for e in suite.test]), "b": records(suite, "b", ["pos"] * 4)}
    sections = {n: {"name": n, "kind": n, "params": {}, "prepare_s": 1.0} for n in predictions}
    plain = to_json(score_results(suite, list(suite.test), predictions, sections, seed=0, n_resamples=200))
    again = to_json(score_results(suite, list(suite.test), predictions, sections, seed=0, n_resamples=200, seed_records={}))
    assert plain == again
    assert not {"seeds", "per_seed", "seed_sd"} & set(plain["strategies"]["a"])
    assert all("seed_note" not in c and c["test"] != "hierarchical_bootstrap" for c in plain["comparisons"])


def test_the_recommendation_warns_when_the_spread_exceeds_the_difference() -> None:
    from dataclasses import replace

    from harness.core.results import Comparison, Recommendation
    from harness.scoring.seeds import seed_advice

    advice = Recommendation("sft", "accuracy", runner_up="prompt", text="Use sft.")
    rows = [Comparison("prompt", "sft", "accuracy", 4, -0.02, (-0.1, 0.06), 0.5, "hierarchical_bootstrap", 200,
                       seed_note="the training-seed spread of sft (sd 0.04 over 3 seeds) is larger than the "
                                 "difference (0.02 accuracy)")]
    warned = seed_advice(advice, rows)
    assert warned.text.startswith("Use sft. Caution: the training-seed spread of sft") and warned.seed_note
    assert seed_advice(advice, [replace(rows[0], metric="f1")]) == advice


# --------------------------------------------------------------------------- the option


def test_the_seeds_option() -> None:
    from strategies import build, from_spec

    assert from_spec("sft")[0].params["seeds"] == 1
    assert from_spec("sft:seeds=3")[0].training_seeds(10) == (10, 11, 12)
    assert from_spec("sft:seeds=1+5+9")[0].training_seeds(10) == (1, 5, 9)
    assert build("sft", {"seeds": [4, 2]}).training_seeds(0) == (4, 2)  # from TOML
    assert from_spec("sft+rag:seeds=2")[0].training_seeds(0) == (0, 1)
    for bad in ("0", "x", "1+1", "-2+3", True, [1.5], []):
        with pytest.raises(HarnessError, match="seeds"):
            build("sft", {"seeds": bad})


def test_seeds_stay_out_of_the_prediction_cache_key() -> None:
    """`sft` keys its cached predictions as before the option existed; `sft:seeds=3`'s first seed shares them."""
    from types import SimpleNamespace

    from harness.engine.context import Prepared
    from harness.runner import prediction_identity
    from strategies import from_spec
    from strategies.sft import TRAIN_OPTIONS

    suite, model = tiny_suite(), SimpleNamespace(identity=lambda: "weights")
    prepared = Prepared(artifacts={"adapter": "key"})
    plain, three = (prediction_identity(s, prepared, model, suite) for s in from_spec("sft,sft:seeds=3"))
    assert plain == three and "seeds" not in plain["strategy"]["params"]
    assert set(plain["strategy"]["params"]) <= set(TRAIN_OPTIONS)  # what sft's options were before `seeds`
