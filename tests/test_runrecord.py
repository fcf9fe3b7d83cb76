"""The run record (harness.core.runrecord): one owner of the run folder's format, and the promise
that per-example scores are computed once, when a prediction is recorded, and only read after."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from harness.core.errors import HarnessError
from harness.core.runrecord import (
    PREDICTIONS_FILE,
    SCHEMA,
    PredictionRecord,
    PredictionWriter,
    last_wins,
    load_run,
    read_predictions,
    write_results,
)
from harness.core.types import Example
from harness.scoring.registry import Aggregator
from harness.scoring.rows import bind_metrics, rows_over
from tests.fixtures_runs import (
    answers_with_accuracy,
    make_suite,
    qa_run,
    recorded,
    triage_examples,
    triage_run,
)


def _record(**changes: object) -> PredictionRecord:
    fields: dict[str, object] = dict(
        strategy="sft", example_id="q1", input="Where?", target=("Here.", "There."), meta={"source": "faq"},
        output=" Here. ", answer="Here.", latency_s=0.25, prompt_tokens=40, output_tokens=3, retrieved=("doc-1",),
        error=None, scores={"f1": (1.0,), "bleu": (2.0, 2.0, 2.0, 1.0, 0.0, 0.0, 2.0, 1.0, 0.0, 0.0)}, score=1.0,
    )
    fields.update(changes)
    return PredictionRecord(**fields)  # type: ignore[arg-type]


def test_a_record_survives_the_file(tmp_path: Path) -> None:
    records = [_record(), _record(example_id="q2", target={"city": "Paris"}, answer=None, error="timeout",
                                  scores={"f1": (math.nan,)}, score=0.0)]
    writer = PredictionWriter(tmp_path)
    writer.write(records[:1])
    writer.write(records[1:])
    lines = (tmp_path / PREDICTIONS_FILE).read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["scores"] == {"f1": [None]}  # strict JSON: no NaN
    back = read_predictions(tmp_path / PREDICTIONS_FILE)
    assert back[0] == records[0]
    assert math.isnan(back[1].scores["f1"][0]) and back[1].target == {"city": "Paris"}
    assert back[1].scored_answer is None and back[0].scored_answer == "Here."  # an error is an invalid answer
    assert back[0].example() == Example("q1", "Where?", ("Here.", "There."), {"source": "faq"})
    PredictionWriter(tmp_path)  # a new writer starts the file again
    assert (tmp_path / PREDICTIONS_FILE).read_bytes() == b""


def test_the_last_line_of_an_example_wins() -> None:
    a, b, c = _record(example_id="1", score=0.0), _record(example_id="2"), _record(example_id="1", score=1.0)
    assert list(last_wins([a, b, c]).values()) == [b, c]


@pytest.mark.parametrize(("line", "why"), [
    ({"strategy": "s", "example_id": "1", "scores": {}, "score": "high"}, "'score' must be a number"),
    ({"strategy": "s", "example_id": "1", "scores": {"f1": 0.5}, "score": 1}, "'scores.f1' must be a list"),
    ({"strategy": "s", "example_id": "1", "scores": {}, "score": 1, "meta": [1]}, "'meta' must be an object"),
    ({"strategy": "s", "example_id": "1", "scores": {}, "score": 1, "prompt_tokens": 1e400}, "whole number"),
    ({"strategy": "s", "example_id": "1"}, "no per-example 'scores'"),
])
def test_a_bad_line_is_named_with_its_line_number(tmp_path: Path, line: dict, why: str) -> None:
    path = tmp_path / PREDICTIONS_FILE
    path.write_text(json.dumps({"strategy": "s", "example_id": "0", "scores": {}, "score": 0}) + "\n"
                    + json.dumps(line).replace("Infinity", "1e400") + "\n")
    with pytest.raises(HarnessError, match=rf"{PREDICTIONS_FILE}:2: .*{why}"):
        read_predictions(path)


def test_write_results_stamps_the_schema(tmp_path: Path) -> None:
    from harness.core.results import Recommendation, RunResults, SuiteInfo

    (tmp_path / PREDICTIONS_FILE).write_text("")
    write_results(tmp_path, RunResults("old", "r", "", SuiteInfo("s", "qa"), {}, [], Recommendation(None, "f1")))
    assert json.loads((tmp_path / "results.json").read_text())["schema"] == SCHEMA == load_run(tmp_path).results.schema


def test_stored_rows_are_the_rows_the_metrics_compute(tmp_path: Path) -> None:
    """What the runner stored is what scoring the answer again would give, row for row, and
    results.json scored from the records equals results.json scored from plain predictions."""
    run = load_run(qa_run(tmp_path / "qa"))
    examples = [r.example() for r in run.predictions_for("sft")]
    suite = make_suite(examples, name="support-faq", task="qa", labels=(), metrics_=("f1", "bleu", "rouge_l"))
    bindings = bind_metrics(suite)
    for name in run.strategies:
        records = run.predictions_for(name)
        for m, binding in bindings.items():
            want = binding.stats([r.scored_answer for r in records], [r.example() for r in records])
            assert np.array_equal(rows_over(binding, m, examples, {r.example_id: r for r in records}), want)


def test_readers_never_score_an_answer_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports and the gate read the rows stored with each prediction: computing a metric's
    statistics from an answer fails here, and they still work."""
    from harness import gate
    from harness.report import render_all

    base = triage_run(tmp_path / "b", {"prompt": 0.5, "sft": 0.9})
    cand = triage_run(tmp_path / "c", {"prompt": 0.5, "sft": 0.6})
    qa = qa_run(tmp_path / "qa")

    def refuse(self: Aggregator, answers: object, examples: object) -> np.ndarray:
        raise AssertionError(f"{self.name} was scored again")

    def no_extraction(*args: object, **kwargs: object) -> None:
        raise AssertionError("an answer was extracted again")

    import harness.scoring.extract
    import harness.scoring.metrics

    monkeypatch.setattr(Aggregator, "stats", refuse)
    monkeypatch.setattr(harness.scoring.extract, "extract_answer", no_extraction)
    monkeypatch.setattr(harness.scoring.metrics, "example_scores", no_extraction)
    report = gate.gate(base, cand)
    assert not report.passed and report.flips[1].broke  # sft: the verdicts and the flips from stored rows and scores
    for run_dir in (base, qa):
        render_all(run_dir)


def test_records_of_a_batch_match_their_examples() -> None:
    examples = triage_examples(6)
    suite = make_suite(examples)
    answers = answers_with_accuracy(examples, 0.5, seed=1)
    records = recorded(suite, "s", answers, examples=examples)
    assert [r.score for r in records] == [float(a == e.target) for a, e in zip(answers, examples, strict=True)]
    assert [r.scores["accuracy"] for r in records] == [(r.score,) for r in records]
    assert all(len(r.scores["f1"]) == 2 for r in records)  # [gold label index, predicted label index]
