"""Decoding writes outputs; a scoring pass after it makes the records, and is cached: a rerun whose
outputs came from the prediction cache does not score them again unless what scoring depends on changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.runrecord import OUTPUTS_FILE, PREDICTIONS_FILE
from harness.runner import RunOptions, run


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_outputs_then_records_and_a_cached_scoring_pass(tmp_path: Path, tiny_model_dir: Path, cache: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    opts = RunOptions(suite="poem-sentiment", strategies="prompt,prompt:k=2", model=str(tiny_model_dir), limit=5,
                      out=tmp_path / "runs", device="cpu", leakage_check=False)
    first = run(opts)
    outputs, records = lines(first / OUTPUTS_FILE), lines(first / PREDICTIONS_FILE)
    assert len(outputs) == len(records) == 10
    assert {(o["strategy"], o["example_id"], o["output"]) for o in outputs} == \
        {(r["strategy"], r["example_id"], r["output"]) for r in records}
    assert all("answer" not in o and "scores" not in o for o in outputs)  # decoding does not score
    assert all("scores" in r and "answer" in r for r in records)

    import harness.scoring.records as scoring

    def no_scoring(*args: object, **kwargs: object) -> None:
        raise AssertionError("scored again")

    monkeypatch.setattr(scoring, "score_outputs", no_scoring)
    again = run(opts)  # outputs from the prediction cache, records from the score cache
    assert lines(again / PREDICTIONS_FILE) == records
    assert json.loads((again / "results.json").read_text())["work"]["generator_loaded"] is False

    # What scoring depends on changed (the suite's metrics): scored again.
    suite = tmp_path / "poem"
    shutil.copytree(Path("suites/poem-sentiment"), suite)
    (suite / "suite.toml").write_text((suite / "suite.toml").read_text().replace('metrics = ["accuracy", "f1"]',
                                                                                'metrics = ["accuracy"]'))
    with pytest.raises(AssertionError, match="scored again"):
        run(RunOptions(**{**vars(opts), "suite": str(suite)}))


def test_a_v2_results_json_is_still_read(tmp_path: Path, cache: Path, tiny_model_dir: Path) -> None:
    """v3 made results.json typed without moving a key: a v2 run folder still renders and gates."""
    opts = RunOptions(suite="poem-sentiment", strategies="prompt", model=str(tiny_model_dir), limit=3,
                      out=tmp_path / "runs", device="cpu", leakage_check=False)
    run_dir = run(opts)
    path = run_dir / "results.json"
    data = json.loads(path.read_text())
    assert data["schema"] == "sft-harness/results/v3"
    path.write_text(json.dumps({**data, "schema": "sft-harness/results/v2"}))
    assert main(["report", str(run_dir)]) == 0
    assert main(["gate", str(run_dir), str(run_dir)]) == 0
