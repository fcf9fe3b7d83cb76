"""The scoring pass: after decoding, every output becomes an answer and its per-example statistics.

Decoding records outputs only (harness.core.runrecord.Output, flushed to outputs.jsonl); this pass
turns them into `PredictionRecord`s: the answer the metrics see (harness.scoring.extract), the
rows of sufficient statistics of every suite metric and the per-example score. Each record keeps
them, so no reader (the report, the gate, the statistics of results.json) scores an answer again.
It runs after the models have decoded, so it never holds a generator's memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.core.runrecord import Output, PredictionRecord, last_wins
from harness.core.types import Example, Suite, scored_answer
from harness.scoring.extract import extract_answer
from harness.scoring.metric import Aggregator
from harness.scoring.metrics import example_scores
from harness.scoring.rows import answer_of, bind_metrics, rows_to_store


def answers_of(suite: Suite, outputs: Sequence[Output], constrained: bool = False) -> list[Any]:
    """What the metrics see of each output: the label, fields or text it gives; None when it
    failed or gives none (an invalid answer, scored as wrong). `constrained`: the outputs were
    decoded under a grammar (an object cut off by the token budget keeps its complete members)."""
    return [None if o.error is not None else
            extract_answer(o.output, suite.task, suite.labels, suite.fields, cut=constrained) for o in outputs]


def score_outputs(suite: Suite, examples: Sequence[Example], outputs: Sequence[Output],
                  constrained: bool = False) -> list[PredictionRecord]:
    """The scoring pass over one strategy's outputs (any order; each names its example)."""
    by_id = {e.id: e for e in examples}
    return make_records(suite.task, bind_metrics(suite, judged=False), outputs, answers_of(suite, outputs, constrained),
                        [by_id[o.example_id] for o in outputs])


def make_records(task: str, bindings: Mapping[str, Aggregator], outputs: Sequence[Output], answers: Sequence[Any],
                 examples: Sequence[Example]) -> list[PredictionRecord]:
    """Records of `outputs` made on `examples` (the same order) whose answers are `answers`,
    scored with the suite's metrics."""
    seen = [scored_answer(a, o.error) for a, o in zip(answers, outputs, strict=True)]
    rows = rows_to_store(bindings, seen, examples)
    scores = example_scores(task, seen, examples)
    return [PredictionRecord.of(o, e, a, r, float(s))
            for o, e, a, r, s in zip(outputs, examples, answers, rows, scores, strict=True)]


def score_sum(task: str, examples: Sequence[Example], records: Sequence[PredictionRecord]) -> float:
    """The sum of the per-example scores over `examples` (the "correct answers" that cost per correct
    answer divides by): each record's stored score; an example without a record is an invalid answer."""
    by_id = last_wins(records)
    missing = [e for e in examples if e.id not in by_id]
    stored = sum(by_id[e.id].score for e in examples if e.id in by_id)
    if not missing:
        return float(stored)
    return float(stored + np.sum(example_scores(task, [answer_of(None)] * len(missing), missing)))
