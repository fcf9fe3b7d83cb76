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
def test_bad_usage_is_one_line_exit_2(args: list[str], message: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    # In this process (test_validate_ok_and_broken runs the entry point itself): main() is what
    # `python -m harness` calls, and argparse's own usage errors leave it as SystemExit(2).
    try:
        code = main([*args, "--out", str(tmp_path)] if args[0] == "run" else args)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err


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


def test_two_demos_at_once_each_write_a_whole_folder(tmp_path: Path) -> None:
    """The `demo` command itself, twice at the same time on the real default model: two folders,
    each complete, and `demo` names one of them."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "SFT_HARNESS_CACHE": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "harness", "demo", "--suite", "poem-sentiment", "--strategies", "prompt",
            "--limit", "3", "--out", str(tmp_path / "reports")]
    procs = [subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert "latest demo:" in err
    folders = sorted(p for p in (tmp_path / "reports").iterdir() if p.is_dir() and not p.is_symlink())
    assert len(folders) == 2 and all("-demo-poem-sentiment" in f.name for f in folders)
    for f in folders:
        assert {"results.json", "predictions.jsonl", "report.html", "report.md", "summary.csv"} <= {x.name for x in f.iterdir()}
        assert json.loads((f / "results.json").read_text())["suite"]["sizes"]["scored"] == 3
    link = tmp_path / "reports" / "demo"
    assert link.is_symlink() and link.resolve() in [f.resolve() for f in folders]
    assert main(["demo", "--limit", "0"]) == 2


def test_an_internal_error_is_exit_3_with_the_traceback_saved(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A bug of ours (here: the suites listing breaks) is one line, exit 3, and the traceback in a file."""
    import harness.core.suites as suites

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(suites, "builtin_suite_names", broken)
    assert main(["suites"]) == 3
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: a bug (traceback in " in err and "please report it" in err
    saved = Path(err.split("traceback in ")[1].split(";")[0].strip())
    text = saved.read_text()
    assert "Traceback" in text and "ZeroDivisionError: a bug" in text and "builtin_suite_names" not in err
    saved.unlink()


def test_ctrl_c_during_decoding_is_exit_130_and_what_was_decoded_is_kept(tmp_path: Path, tiny_model_dir: Path) -> None:
    import signal
    import time

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "SFT_HARNESS_CACHE": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "harness", "run", "e2e-nlg", "--model", str(tiny_model_dir), "--strategies", "prompt",
            "--batch-size", "1", "--out", str(tmp_path / "runs"), "--no-leakage-check", "--device", "cpu"]
    # A terminal's Ctrl-C: the child starts with SIGINT at its default even when pytest itself runs as
    # a background job (`make test &` in a script), which inherits SIGINT ignored and then Python
    # installs no KeyboardInterrupt handler at all.
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    outputs: list[Path] = []
    while time.monotonic() < deadline and not any(p.stat().st_size for p in outputs):
        time.sleep(0.2)
        outputs = list((tmp_path / "runs").glob("*/outputs.jsonl")) if (tmp_path / "runs").exists() else []
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command again to resume" in err and "Traceback" not in err
    cached = list((tmp_path / "cache" / "predictions").glob("*.jsonl"))
    assert cached and sum(len(c.read_text().splitlines()) for c in cached) >= 1  # the batches decoded are cached
