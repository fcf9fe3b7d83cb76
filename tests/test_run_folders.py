"""Run folders are created atomically and never shared; refused runs leave none behind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.runner import link_latest, new_run_dir

REPO = Path(__file__).resolve().parent.parent


def test_new_run_dir_never_hands_out_a_taken_name(tmp_path: Path) -> None:
    got = [new_run_dir(tmp_path, "20260101-000000-x") for _ in range(3)]
    assert [run_id for run_id, _ in got] == ["20260101-000000-x", "20260101-000000-x-2", "20260101-000000-x-3"]
    assert all(path.is_dir() for _, path in got)


def test_two_real_runs_started_together_get_distinct_complete_folders(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "runs"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "harness", "run", "poem-sentiment", "--model", str(tiny_model_dir),
            "--strategies", "prompt", "--limit", "4", "--out", str(out)]
    procs = [subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        _, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr[-2000:]
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(runs) == 2
    for run_dir in runs:
        lines = (run_dir / "predictions.jsonl").read_text().split("\n")
        assert len([line for line in lines if line]) == 4  # each folder holds exactly its own run
        results = json.loads((run_dir / "results.json").read_text())
        assert results["run_id"] == run_dir.name
        for name in ("report.html", "report.md", "summary.csv"):
            assert (run_dir / name).is_file()
    history = [json.loads(line) for line in (out / "index.jsonl").read_text().split("\n") if line]
    assert {h["run_id"] for h in history} == {r.name for r in runs}


def test_link_latest_replaces_the_link_and_keeps_an_old_folder(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()  # a demo folder written by an older version
    (tmp_path / "demo" / "results.json").write_text("{}")
    first, second = tmp_path / "a-demo", tmp_path / "b-demo"
    first.mkdir()
    second.mkdir()
    link = link_latest(tmp_path, "demo", first)
    assert link.is_symlink() and link.resolve() == first.resolve()
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("demo-") and p.name.endswith("-old")]
    assert len(kept) == 1 and (kept[0] / "results.json").is_file()
    link_latest(tmp_path, "demo", second)
    assert link.resolve() == second.resolve() and not list(tmp_path.glob(".demo.*"))


def test_run_folder_files_follow_the_umask(tmp_path: Path) -> None:
    from harness.core.results import Recommendation, RunResults, SuiteInfo
    from harness.core.runrecord import PredictionWriter, write_results

    old = os.umask(0o022)
    try:  # the run record's own writers: results.json atomically, predictions.jsonl appended
        write_results(tmp_path, RunResults("s", "r", "", SuiteInfo("s", "qa"), {}, [], Recommendation(None, "f1")))
        PredictionWriter(tmp_path).write([])
    finally:
        os.umask(old)
    modes = {stat.S_IMODE((tmp_path / n).stat().st_mode) for n in ("results.json", "predictions.jsonl")}
    assert modes == {0o644}


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--strategies", "prompt:k=-2"], "k must be 0 or more"),
        (["--strategies", "rag:k=0"], "k must be at least 1"),
        (["--strategies", "rag:chunk_tokens=0"], "chunk_tokens must be at least 1"),
        (["--strategies", "rag:chunk_tokens=16:overlap=16"], "must be smaller than chunk_tokens"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--batch-size", "-3"], "--batch-size must be at least 1"),
        (["--gpu-hour-usd", "-1"], "--gpu-hour-usd must be a price"),
        (["--seed", "-1"], "--seed must be a whole number"),
        (["--device", "bogus"], "expected cpu, cuda, cuda:N or mps"),
        (["--model", "/"], "not a Hugging Face model folder"),
        (["--embedder", "/"], "not a Hugging Face model folder"),
        (["--model", "someone/not-cached-model"], "not in the local Hugging Face cache"),
        (["--model", "bad id with spaces"], "valid hub id"),
        (["--slice-by", "nope"], "no scored example of suite 'support-faq' has meta field 'nope'"),
    ],
)
def test_refused_runs_exit_2_in_one_line_with_no_folder(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "runs"
    assert main(["run", "support-faq", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists() or not any(out.iterdir())


def test_device_cuda_without_cuda_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["run", "poem-sentiment", "--out", str(tmp_path), "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_out_that_is_a_file_or_unwritable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["run", "poem-sentiment", "--out", str(afile)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert main(["run", "poem-sentiment", "--out", str(afile / "sub")]) == 2
    assert "cannot create the folder" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["run", "poem-sentiment", "--out", str(locked)]) == 2
        assert "not writable" in capsys.readouterr().err


@pytest.mark.parametrize(
    "config, weights, message",
    [
        ('{"peft_type": "LORA", "target_modules": 5}', b"", "'target_modules' must be a name or a list"),
        ('{"peft_type": "LORA", "r": "8"}', b"", "'r' must be a positive whole number"),
        ('{"peft_type": "LORA"}', b"\x10\x00\x00\x00\x00\x00\x00\x00{}garbage", "not a readable safetensors file"),
        ('{"peft_type": "LORA"}', b"tiny", "not a readable safetensors file"),
        ("[" * 100_000, b"", "is not valid JSON: RecursionError"),
        ('{"peft_type": "LORA", "r": ' + "9" * 5000 + "}", b"", "is not valid JSON: ValueError"),
    ],
)
def test_a_broken_adapter_folder_is_refused_before_any_model(
    config: str, weights: bytes, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(config)
    (folder / "adapter_model.safetensors").write_bytes(weights)
    assert main(["run", "poem-sentiment", "--strategies", f"adapter:path={folder}", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_history_of_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    assert main(["history", "--reports", str(tmp_path / "f")]) == 2
    assert "not a folder of runs" in capsys.readouterr().err


def test_a_prompt_only_run_needs_no_embedder(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from harness.engine import models

    missing = models.Alias("no_such_embedder_pkg", "no-such-embedder", "model", "folder")
    monkeypatch.setitem(models.ALIASES, models.DEFAULT_EMBEDDER, missing)
    out = tmp_path / "runs"
    assert main(["run", "poem-sentiment", "--model", str(tiny_model_dir), "--strategies", "prompt",
                 "--limit", "2", "--out", str(out), "--device", "cpu"]) == 0
    assert main(["run", "poem-sentiment", "--model", str(tiny_model_dir), "--strategies", "prompt:k=2:select=knn",
                 "--limit", "2", "--out", str(out), "--device", "cpu"]) == 2
    assert "pip install --no-deps no-such-embedder" in capsys.readouterr().err


def test_an_evaluate_metric_needs_trust_remote_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_suites import write_suite

    folder = write_suite(tmp_path / "suite")
    toml = (folder / "suite.toml").read_text()
    (folder / "suite.toml").write_text(toml.replace('metrics = ["accuracy"', 'metrics = ["accuracy", "evaluate:meteor"', 1))
    assert 'evaluate:meteor' in (folder / "suite.toml").read_text()
    assert main(["run", str(folder), "--out", str(tmp_path / "o")]) == 2
    assert "pass --trust-remote-code to allow it" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
