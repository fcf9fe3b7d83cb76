"""Scoring a prediction once, when it is recorded: its run record (harness.core.runrecord) keeps the
per-example rows of every suite metric and its per-example score, so that no reader (the report,
the gate, the scoring of results.json itself) has to score the answer again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from harness.core.runrecord import PredictionRecord, PredictionWriter, last_wins
from harness.core.types import Example, Prediction, Suite
from harness.scoring.metrics import example_scores
from harness.scoring.registry import Aggregator
from harness.scoring.rows import Predicted, answer_of, bind_metrics, rows_to_store

# Records a batch of predictions made on these examples: scores them, appends them to the run
# folder, returns the records.
Record = Callable[[list[Prediction], list[Example]], list[PredictionRecord]]


def recorder(suite: Suite, writer: PredictionWriter) -> Record:
    """What the runner (and the test fixtures) record each decoded batch with: every prediction is
    scored once here and appended to the run folder with its scores."""
    bindings = bind_metrics(suite)

    def record(predictions: list[Prediction], examples: list[Example]) -> list[PredictionRecord]:
        records = make_records(suite.task, bindings, predictions, examples)
        writer.write(records)
        return records

    return record


def make_records(
    task: str, bindings: Mapping[str, Aggregator], predictions: Sequence[Prediction], examples: Sequence[Example]
) -> list[PredictionRecord]:
    """Records of predictions made on `examples` (the same order), scored with the suite's metrics."""
    answers = [p.scored_answer for p in predictions]
    rows = rows_to_store(bindings, answers, examples)
    scores = example_scores(task, answers, examples)
    return [PredictionRecord.of(p, e, r, float(s)) for p, e, r, s in zip(predictions, examples, rows, scores, strict=True)]


def score_sum(task: str, examples: Sequence[Example], predictions: Sequence[Predicted]) -> float:
    """The sum of the per-example scores over `examples` (the "correct answers" that cost per correct
    answer divides by): a record's stored score, computed for an example without one."""
    by_id = last_wins(predictions)
    todo = [i for i, e in enumerate(examples) if not isinstance(by_id.get(e.id), PredictionRecord)]
    scores = np.zeros(len(examples), dtype=np.float64)
    for i, e in enumerate(examples):
        record = by_id.get(e.id)
        if isinstance(record, PredictionRecord):
            scores[i] = record.score
    if todo:
        scores[todo] = example_scores(task, [answer_of(by_id.get(examples[i].id)) for i in todo],
                                      [examples[i] for i in todo])
    return float(scores.sum())
