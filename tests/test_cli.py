"""The command line, end to end. `run` uses the REAL default model on a few examples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main

REPO = Path(__file__).resolve().parent.parent


def sft_harness(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd or REPO, env=env)


def test_suites_lists_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["suites"]) == 0
    text = capsys.readouterr().out
    for name in ("support-faq", "banking-intents", "poem-sentiment", "snips-slots", "e2e-nlg"):
        assert name in text


def test_validate_ok_and_broken(tmp_path: Path) -> None:
    ok = sft_harness("validate", "poem-sentiment")
    assert ok.returncode == 0 and "ok poem-sentiment" in ok.stdout
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "suite.toml").write_text('name = "bad"\ntask = "qa"\ninstruction = "x"\nmetrics = ["f1"]\n[splits]\ntrain = "train.jsonl"\ntest = "test.jsonl"\n')
    (bad / "train.jsonl").write_text('{"id": "a", "input": "q", "target": "a"}\n{nope\n')
    (bad / "test.jsonl").write_text('{"id": "a", "input": "q", "target": "a"}\n')
    res = sft_harness("validate", str(bad))
    assert res.returncode == 2
    assert f"{bad / 'train.jsonl'}:2: bad JSON" in res.stdout
    assert f"{bad / 'test.jsonl'}:1: duplicate id 'a' (first at train.jsonl:1)" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr
    # `run` refuses the same suite the same way, before loading any model.
    res = sft_harness("run", str(bad), "--out", str(tmp_path / "runs"))
    assert res.returncode == 2 and "bad JSON" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "poem-sentiment", "--strategies", "promt"], "did you mean 'prompt'"),
        (["run", "poem-sentiment", "--strategies", "prompt:kk=3"], "has no option 'kk' (did you mean 'k'?)"),
        (["run", "poem-sentiment", "--strategies", "prompt:select=nn"], "did you mean 'knn'"),
        (["run", "poem-sentiment", "--strategies", "prompt:k=two"], "should be a whole number"),
        (["run", "poem-sentment"], "did you mean 'poem-sentiment'"),
        (["run", "poem-sentiment", "--limit", "0"], "--limit must be a positive"),
        (["gate"], "error:"),
    ],
)
def test_bad_usage_is_one_line_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    res = sft_harness(*args, "--out", str(tmp_path)) if args[0] == "run" else sft_harness(*args)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_run_end_to_end_with_the_real_default_model(tmp_path: Path) -> None:
    res = sft_harness("run", "banking-intents", "--strategies", "prompt,prompt:k=2:select=knn", "--limit", "6",
                      "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    runs = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(runs) == 1
    run_dir = runs[0]
    lines = (run_dir / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 12
    preds = [json.loads(line) for line in lines]
    assert {p["strategy"] for p in preds} == {"prompt", "prompt:k=2:select=knn"}
    assert all(p["output"] and p["prompt_tokens"] > 0 and p["output_tokens"] > 0 for p in preds)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["schema"] == "sft-harness/results/v3"
    # every line carries its per-example statistics and score, computed when it was recorded
    assert all(set(p["scores"]) == {"accuracy", "f1"} and p["score"] in (0.0, 1.0) for p in preds)
    assert results["suite"]["name"] == "banking-intents" and results["model"]["name"] == "smollm2-135m-instruct"
    for name in ("prompt", "prompt:k=2:select=knn"):
        m = results["strategies"][name]["metrics"]["accuracy"]
        assert m["ci"][0] <= m["value"] <= m["ci"][1]
    # few-shot prompts are longer than zero-shot ones
    by = {n: [p["prompt_tokens"] for p in preds if p["strategy"] == n] for n in ("prompt", "prompt:k=2:select=knn")}
    assert min(by["prompt:k=2:select=knn"]) > max(by["prompt"])
    for f in ("report.md", "report.html", "summary.csv"):
        assert (run_dir / f).is_file()
    assert (tmp_path / "index.jsonl").is_file()

    # An unchanged rerun hits the prediction cache: identical outputs.
    res2 = sft_harness("run", "banking-intents", "--strategies", "prompt,prompt:k=2:select=knn", "--limit", "6",
                       "--out", str(tmp_path))
    assert res2.returncode == 0, res2.stderr[-3000:]
    second = sorted(p for p in tmp_path.iterdir() if p.is_dir() and p != run_dir)[0]
    again = [json.loads(line) for line in (second / "predictions.jsonl").read_text().splitlines()]
    key = lambda p: (p["strategy"], p["example_id"])  # noqa: E731
    assert sorted((key(p), p["output"], p["latency_s"]) for p in again) == sorted((key(p), p["output"], p["latency_s"]) for p in preds)
    # `report` re-renders from the files alone
    (run_dir / "report.md").unlink()
    res3 = sft_harness("report", str(run_dir))
    assert res3.returncode == 0 and (run_dir / "report.md").is_file()
