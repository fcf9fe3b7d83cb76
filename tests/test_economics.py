"""Cost at the user's traffic and break-even volumes, against hand-computed cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.results import RunResults, results_from_json, to_json
from harness.scoring.economics import break_even, economics
from tests.fixtures_runs import strategy_results


def strategy(one_off: float | None, per_1k: float | None) -> dict:
    return {"cost": {"prepare_s": 0.0, "predict_s": 0.0, "training_usd": one_off, "usd_per_1k_requests": per_1k}}


def test_break_even_by_hand() -> None:
    s, econ_typed = economics(strategy_results({"prompt": strategy(0.0, 0.50), "sft": strategy(2.0, 0.30),
                                                "rag": strategy(0.01, 0.80)}), monthly_requests=5000, usd_per_hour=1.5)
    econ = to_json(econ_typed)
    assert s["prompt"].cost.monthly_usd == pytest.approx(2.5)  # 5,000 x 0.0005
    assert s["sft"].cost.monthly_usd == pytest.approx(1.5)
    pairs = {(p["higher_one_off"], p["lower_one_off"]): p for p in econ["break_even"]}
    sft = pairs[("sft", "prompt")]
    # 2.00 USD more up front, 0.20 USD saved per 1,000 requests: 10,000 requests, 2 months at 5,000.
    assert sft["one_off_diff_usd"] == pytest.approx(2.0) and sft["per_1k_saving_usd"] == pytest.approx(0.2)
    assert sft["break_even_requests"] == pytest.approx(10_000) and sft["break_even_months"] == pytest.approx(2.0)
    assert pairs[("rag", "prompt")]["break_even_requests"] is None  # costs more up front and per request: never
    assert pairs[("sft", "rag")]["break_even_requests"] == pytest.approx(1.99 / 0.0005)
    assert econ == {**econ, "monthly_requests": 5000, "usd_per_device_hour": 1.5}


def test_break_even_edges() -> None:
    same = break_even("a", (1.0, 0.001), "b", (1.0, 0.002), None)
    assert same.break_even_requests == 0.0 and same.break_even_months is None  # a is never behind
    assert break_even("a", (1.0, 0.002), "b", (1.0, 0.001), 10).break_even_requests is None
    unpriced, econ = economics(strategy_results({"a": strategy(None, None), "b": strategy(0.0, 0.1)}),
                               monthly_requests=None, usd_per_hour=None)
    assert econ.break_even == [] and unpriced["b"].cost.monthly_usd is None


def test_a_run_reports_monthly_cost_and_break_even(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "runs"
    config = tmp_path / "run.toml"
    config.write_text('suite = "poem-sentiment"\nstrategies = "prompt,prompt:k=2"\n\n[cost]\n'
                      "device_hour_usd = 3.0\nmonthly_requests = 20000\n")
    assert main(["run", "--config", str(config), "--model", str(tiny_model_dir), "--limit", "4",
                 "--out", str(out), "--device", "cpu"]) == 0
    [run_dir] = [p for p in out.iterdir() if p.is_dir()]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["economics"]["monthly_requests"] == 20000 and len(results["economics"]["break_even"]) == 1
    assert all(s["cost"]["monthly_usd"] is not None for s in results["strategies"].values())
    # Neither strategy costs anything up front: no break-even to show, the cost table says it all.
    assert "### Break-even" not in (run_dir / "report.md").read_text()
    from harness.report.views import break_even_rows

    results["economics"]["break_even"].append({"higher_one_off": "sft", "lower_one_off": "prompt",
                                               "one_off_diff_usd": 2.0, "per_1k_saving_usd": 0.2,
                                               "break_even_requests": 10000.0, "break_even_months": 0.5})
    assert break_even_rows(results_from_json(results)) == [["sft", "prompt", "2.0000", "0.2000",
                                                           "10,000 requests (0.5 months)"]]


@pytest.mark.parametrize("body, line, message", [
    ("[cost]\ndevice_hour_usd = -1\n", 3, "'device_hour_usd' should be the price of one device hour"),
    ("[cost]\nmonthly = 5\n", 3, "unknown key 'monthly' in [cost] (did you mean 'monthly_requests'?)"),
    ("[cost]\n\nmonthly_requests = true\n", 4, "'monthly_requests' should be the expected number"),
])
def test_cost_table_mistakes_name_their_line(body: str, line: int, message: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "run.toml"
    config.write_text('suite = "poem-sentiment"\n' + body)
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{config}:{line}: {message}" in err


def test_the_strategies_worth_their_price_are_marked() -> None:
    from harness.report.sections.tradeoff import cost_axis, marked, tradeoff_chart

    def s(value: float, per_1k: float) -> dict:
        return {"metrics": {"f1": {"value": value, "ci": [value - 0.05, value + 0.05]}},
                "cost": {"prepare_s": 0.0, "predict_s": 0.0, "usd_per_1k_requests": per_1k, "batch_share_p50_s": per_1k}}

    def c(a: str, b: str, diff: float, significant: bool) -> dict:
        return {"a": a, "b": b, "metric": "f1", "n": 60, "diff": diff, "ci": [diff - 0.1, diff + 0.1],
                "p_value": 0.01 if significant else 0.5, "test": "paired_bootstrap", "resamples": 1000,
                "significant": significant}

    strategies = {"prompt": s(0.30, 0.1), "rag": s(0.32, 0.3), "sft": s(0.60, 0.2), "big": s(0.61, 5.0)}
    results = results_from_json({
        "schema": "sft-harness/results/v3", "run_id": "r", "created": "", "suite": {"name": "s", "task": "qa",
                                                                                   "metrics": ["f1"], "primary_metric": "f1"},
        "strategies": {n: to_json(x) for n, x in strategy_results(strategies).items()},
        "comparisons": [c("sft", "prompt", 0.30, True), c("rag", "sft", -0.28, True), c("rag", "prompt", 0.02, False),
                        c("big", "sft", 0.01, False)],
        "recommendation": {"winner": None, "metric": "f1"},
    })
    assert isinstance(results, RunResults)
    assert cost_axis(results) == ("usd_per_1k_requests", "USD per 1,000 requests")
    # prompt: nothing cheaper; sft: beats prompt and nothing cheaper beats it; rag: beaten by the
    # cheaper sft; big: costs more than sft but sft does not beat it significantly.
    assert marked(results, "f1", "usd_per_1k_requests") == {"prompt", "sft", "big"}
    chart = tradeoff_chart(results, {})
    assert chart.count('class="dot"') == 4 and chart.count('r="9"') == 3
