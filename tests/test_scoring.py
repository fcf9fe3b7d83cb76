"""harness.scoring on small synthetic suites: per-strategy scores, comparisons, cost, recommendation."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import numpy as np
import pytest

from harness.core.results import to_json
from harness.core.types import Example, GenerationConfig, Suite
from harness.scoring import metrics as M
from harness.scoring import registry as R
from harness.scoring.compare import compare_strategies, cost_summary, score_strategy
from harness.scoring.recommend import recommend
from harness.scoring.results import strategy_result
from harness.scoring.stats import holm, mcnemar_exact
from tests.fixtures_runs import Answered as Prediction
from tests.fixtures_runs import records_of, strategy_results

LABELS = ("billing", "bug", "feature", "other")


def _suite(task: str = "classification", metrics: tuple[str, ...] = ("accuracy", "f1")) -> Suite:
    return Suite(
        name="synthetic",
        task=task,  # type: ignore[arg-type]
        instruction="",
        labels=LABELS if task == "classification" else (),
        metrics=metrics,
        generation=GenerationConfig(),
        train=(),
        test=(),
    )


def _examples(n: int = 120, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    return [
        Example(
            id=f"t{i}",
            input=f"ticket {i}",
            target=rng.choice(LABELS),
            meta={"source": "web" if i % 3 else "mail", "tier": i % 2},
        )
        for i in range(n)
    ]


def _predict(strategy: str, examples: list[Example], p_correct: float, seed: int) -> list[Prediction]:
    rng = random.Random(seed)
    out = []
    for e in examples:
        answer = e.target if rng.random() < p_correct else rng.choice([x for x in LABELS if x != e.target])
        out.append(
            Prediction(
                strategy=strategy,
                example_id=e.id,
                output=str(answer),
                answer=answer,
                latency_s=0.1 + rng.random(),
                prompt_tokens=50,
                output_tokens=3,
            )
        )
    return out


def test_score_strategy_values_intervals_invalid_and_slices() -> None:
    suite, examples = _suite(), _examples()
    preds = _predict("prompt", examples, 0.6, 1)
    preds[0] = Prediction(
        strategy="prompt",
        example_id=examples[0].id,
        output="",
        answer=None,
        latency_s=0.0,
        prompt_tokens=0,
        output_tokens=0,
        error="CUDA out of memory",
    )
    preds[1] = replace(preds[1], answer=None)  # unparseable
    del preds[2]  # missing

    res = to_json(score_strategy(suite, examples, records_of(suite, examples, preds), seed=0,
                                 slice_by=("source", "tier", "absent")))
    json.dumps(res, allow_nan=False)  # strict JSON

    answers = [None, None, None] + [p.answer for p in preds[2:]]
    assert res["n"] == 120
    assert res["errors"] == 2
    assert res["invalid_rate"] == pytest.approx(3 / 120)
    for m in ("accuracy", "f1"):
        want = R.compute(m, "classification", answers, examples, LABELS)
        assert res["metrics"][m]["value"] == want
        lo, hi = res["metrics"][m]["ci"]
        assert lo <= want <= hi and lo < hi
    assert res == to_json(score_strategy(suite, examples, records_of(suite, examples, preds), seed=0,
                                         slice_by=("source", "tier", "absent")))

    web = [i for i, e in enumerate(examples) if e.meta["source"] == "web"]
    assert res["slices"]["source"]["web"]["n"] == len(web)
    assert res["slices"]["source"]["mail"]["n"] + len(web) == 120
    assert res["slices"]["source"]["web"]["metrics"]["f1"] == pytest.approx(
        R.compute("f1", "classification", [answers[i] for i in web], [examples[i] for i in web], LABELS)
    )
    assert set(res["slices"]["tier"]) == {"0", "1"}
    assert res["slices"]["absent"] == {
        "(missing)": {
            "n": 120,
            "metrics": {"accuracy": res["metrics"]["accuracy"]["value"], "f1": res["metrics"]["f1"]["value"]},
        }
    }


def test_score_strategy_bleu_slices_are_corpus_bleu_of_the_slice() -> None:
    import sacrebleu

    suite = _suite("generation", ("bleu", "rouge_l"))
    examples = [
        Example(id=str(i), input="", target=f"the answer is number {i} today", meta={"half": i < 10})
        for i in range(20)
    ]
    preds = [
        Prediction(
            strategy="s",
            example_id=str(i),
            output="",
            answer=f"the answer is {i} today",
            latency_s=0.1,
            prompt_tokens=1,
            output_tokens=1,
        )
        for i in range(20)
    ]
    res = to_json(score_strategy(suite, examples, records_of(suite, examples, preds), seed=0, slice_by=("half",)))
    first = sacrebleu.corpus_bleu(
        [f"the answer is {i} today" for i in range(10)],
        [[f"the answer is number {i} today" for i in range(10)]],
    ).score
    assert res["slices"]["half"]["true"]["metrics"]["bleu"] == first


def test_compare_strategies_pairs_metrics_holm_and_mcnemar() -> None:
    suite, examples = _suite(), _examples(150)
    by = {
        "prompt": _predict("prompt", examples, 0.45, 1),
        "rag": _predict("rag", examples, 0.55, 2),
        "sft": _predict("sft", examples, 0.9, 3),
    }
    by["rag"] = by["rag"][:-10]  # rag lacks 10 examples: its pairs use the 140 both have
    rows = to_json(compare_strategies(suite, examples, _by(suite, examples, by), seed=0, n_resamples=500))
    json.dumps(rows, allow_nan=False)
    assert [(r["a"], r["b"], r["metric"]) for r in rows] == [
        (a, b, m)
        for a, b in (("prompt", "rag"), ("prompt", "sft"), ("rag", "sft"))
        for m in ("accuracy", "f1")
    ]
    by_key = {(r["a"], r["b"], r["metric"]): r for r in rows}
    assert by_key[("prompt", "rag", "f1")]["n"] == 140
    assert by_key[("prompt", "sft", "f1")]["n"] == 150

    ps = by_key[("prompt", "sft", "accuracy")]
    correct = {
        s: M.correct_vector("classification", [p.answer for p in by[s]], examples[: len(by[s])]) for s in by
    }
    assert ps["diff"] == pytest.approx(correct["prompt"].mean() - correct["sft"].mean())
    assert ps["mcnemar_p"] == ps["p_value"] == mcnemar_exact(correct["prompt"], correct["sft"])
    assert ps["test"] == "mcnemar_exact"
    assert ps["ci"][1] < 0 and ps["significant"]
    for m in ("accuracy", "f1"):
        group = [r for r in rows if r["metric"] == m]
        assert [r["p_holm"] for r in group] == holm([r["p_value"] for r in group])
        assert all(r["significant"] == (r["p_holm"] < 0.05) for r in group)
    assert by_key[("prompt", "sft", "f1")]["test"] == "paired_bootstrap"
    assert "mcnemar_p" not in by_key[("prompt", "sft", "f1")]


def test_exact_match_keeps_its_name_and_is_scored_as_accuracy() -> None:
    """exact_match is an alias of accuracy: the same values, under the name the suite used, and the
    same paired test (exact McNemar on per-example correctness)."""
    examples = _examples(80)
    by = {"a": _predict("a", examples, 0.5, 1), "b": _predict("b", examples, 0.8, 2)}
    alias, plain = _suite(metrics=("exact_match",)), _suite(metrics=("accuracy",))
    got = score_strategy(alias, examples, records_of(alias, examples, by["a"]), seed=0)
    want = score_strategy(plain, examples, records_of(plain, examples, by["a"]), seed=0)
    assert list(got.metrics) == ["exact_match"] and got.metrics["exact_match"] == want.metrics["accuracy"]
    rows = compare_strategies(alias, examples, _by(alias, examples, by), seed=0)
    assert rows[0].metric == "exact_match" and rows[0].test == "mcnemar_exact"
    assert rows[0].p_value == compare_strategies(plain, examples, _by(plain, examples, by), seed=0)[0].p_value


def test_recommend_formats_values_with_the_metric_format() -> None:
    strategies = strategy_results({"a": {"metrics": {"bleu": {"value": 31.4159}}}, "b": {"metrics": {"bleu": {"value": 12.0}}}})
    text = recommend(strategies, [], "bleu").text
    assert "31.4 against 12.0" in text and "+19.4" in text


def test_many_strategies_can_still_be_significant_after_holm() -> None:
    """Eight strategies give 28 pairs. A bootstrap p-value cannot go below 2 / (R + 1): with a
    fixed 1000 resamples Holm would lift every p above 0.05 however clear the difference. The
    resamples grow with the number of pairs, so a strategy right everywhere beats the rest."""
    suite, examples = _suite(metrics=("f1",)), _examples(60)
    by = {"best": _predict("best", examples, 1.0, 0)}
    by.update({f"s{k}": _predict(f"s{k}", examples, 0.3, k + 1) for k in range(7)})
    rows = to_json(compare_strategies(suite, examples, _by(suite, examples, by), seed=0, n_resamples=1000))
    assert len(rows) == 28 and {r["resamples"] for r in rows} == {22400}
    best = [r for r in rows if r["a"] == "best"]
    assert len(best) == 7 and all(r["significant"] and r["p_holm"] < 0.05 for r in best)
    assert 28 * 2 / 1001 > 0.05  # what a fixed 1000 resamples could have reached at best


def test_cost_summary() -> None:
    preds = [
        Prediction(
            strategy="s",
            example_id=str(i),
            output="",
            answer=None,
            latency_s=float(i),
            prompt_tokens=10 * i,
            output_tokens=i,
        )
        for i in range(1, 11)
    ]
    c = to_json(cost_summary(
        preds, prepare_s=3600.0, predict_s=20.0, training_tokens=5000, usd_per_hour=2.0, n_correct=4
    ))
    assert c["examples_per_s"] == 0.5
    # latency_s is each example's share of its batch's time: a cost, reported as such
    assert c["batch_share_p50_s"] == pytest.approx(5.5)
    assert c["batch_share_p95_s"] == pytest.approx(float(np.percentile(np.arange(1, 11), 95)))
    assert c["latency_p50_s"] is None and c["latency_p95_s"] is None  # local decoding serves no requests
    served = to_json(cost_summary(preds, prepare_s=0.0, predict_s=20.0, request_latencies=[0.2, 0.4, 0.3]))
    assert served["latency_p50_s"] == pytest.approx(0.3) and served["latency_p95_s"] == pytest.approx(0.39)
    assert c["prompt_tokens_per_example"] == 55.0 and c["output_tokens_per_example"] == 5.5
    assert c["training_usd"] == pytest.approx(2.0)
    assert c["usd_per_1k_requests"] == pytest.approx(2.0 * 20 / 3600 / 10 * 1000)
    assert c["usd_per_correct"] == pytest.approx((2.0 + 2.0 * 20 / 3600) / 4)
    free = to_json(cost_summary(preds, prepare_s=0.0, predict_s=20.0))
    assert (
        free["usd_per_1k_requests"] is None
        and free["training_usd"] is None
        and free["usd_per_correct"] is None
    )
    assert free["training_tokens"] == 0
    assert set(c) == {
        "prepare_s",
        "predict_s",
        "examples_per_s",
        "batch_share_p50_s",
        "batch_share_p95_s",
        "latency_p50_s",
        "latency_p95_s",
        "prompt_tokens_per_example",
        "output_tokens_per_example",
        "training_tokens",
        "usd_per_1k_requests",
        "training_usd",
        "usd_per_correct",
        "monthly_usd",
    }


def _by(suite: Suite, examples: list[Example], by: dict[str, list[Prediction]]) -> dict[str, list]:
    return {name: records_of(suite, examples, preds) for name, preds in by.items()}


def _scored(
    suite: Suite,
    examples: list[Example],
    by: dict[str, list[Prediction]],
    seconds: dict[str, tuple[float, float]],
) -> tuple[dict, list]:
    strategies = {}
    for s, preds in by.items():
        scores = score_strategy(suite, examples, records_of(suite, examples, preds), seed=0, n_resamples=300)
        cost = cost_summary(preds, prepare_s=seconds[s][0], predict_s=seconds[s][1])
        strategies[s] = strategy_result({"name": s, "kind": s, "params": {}}, scores, cost, None)
    return strategies, compare_strategies(suite, examples, _by(suite, examples, by), seed=0, n_resamples=300)


def test_recommend_a_significantly_better_strategy() -> None:
    suite, examples = _suite("classification", ("f1", "accuracy")), _examples(150)
    by = {"prompt": _predict("prompt", examples, 0.4, 1), "sft": _predict("sft", examples, 0.9, 2)}
    strategies, comps = _scored(suite, examples, by, {"prompt": (0.0, 30.0), "sft": (900.0, 30.0)})
    rec = to_json(recommend(strategies, comps, "f1"))
    assert rec["winner"] == "sft" and rec["runner_up"] == "prompt" and rec["metric"] == "f1"
    assert rec["significant"] is True
    assert rec["margin"] == pytest.approx(strategies["sft"].value("f1") - strategies["prompt"].value("f1"))
    assert rec["text"].startswith("Use sft") and "significant difference" in rec["text"]
    assert "900 s to prepare" in rec["text"]


def test_recommend_the_cheaper_strategy_when_there_is_no_significant_difference() -> None:
    suite, examples = _suite(), _examples(80)
    base = _predict("sft", examples, 0.7, 1)
    # rag: the same answers except three more correct; far from significant, but higher.
    rag = [replace(p, strategy="rag") for p in base]
    fixed = 0
    for i, (p, e) in enumerate(zip(rag, examples, strict=True)):
        if p.answer != e.target and fixed < 3:
            rag[i] = replace(p, answer=e.target)
            fixed += 1
    by = {"rag": rag, "prompt": base}
    strategies, comps = _scored(suite, examples, by, {"rag": (120.0, 60.0), "prompt": (0.0, 40.0)})
    assert strategies["rag"].value("f1") > strategies["prompt"].value("f1")
    rec = to_json(recommend(strategies, comps, "f1"))
    assert rec["winner"] == "prompt" and rec["runner_up"] == "rag"
    assert rec["significant"] is False and rec["margin"] < 0
    assert "no significant difference" in rec["text"] and rec["text"].startswith("Use prompt")

    # The same scores with the top scorer also the cheapest: it wins, said to be not significant.
    strategies["rag"] = replace(strategies["rag"], cost=cost_summary(rag, prepare_s=0.0, predict_s=10.0))
    rec = to_json(recommend(strategies, comps, "f1"))
    assert rec["winner"] == "rag" and rec["significant"] is False and rec["margin"] > 0
    assert "no significant difference" in rec["text"]


def test_recommend_edge_cases() -> None:
    assert recommend({}, [], "f1").winner is None
    one = strategy_results({"prompt": {"metrics": {"f1": {"value": 0.5, "ci": [0.4, 0.6]}}}})
    rec = recommend(one, [], "f1")
    assert rec.winner == "prompt" and rec.runner_up is None and rec.significant is False
    none_scored = strategy_results({"prompt": {"metrics": {"f1": {"value": None, "ci": [None, None]}}}})
    assert recommend(none_scored, [], "f1").winner is None
