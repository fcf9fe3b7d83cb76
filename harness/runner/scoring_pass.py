"""The scoring pass of a run, after every strategy has decoded: outputs -> scored records.

The scoring itself is harness.scoring.records; here it is cached and written. A strategy's scored
records are cached under what they depend on (its outputs, the examples they were made on, the
suite's task, labels, fields and metrics, and the scoring code's version), so a rerun whose
outputs came from the prediction cache does not score them again either.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from harness import __version__
from harness.core import jsonl
from harness.core.cache import cache_root, fingerprint, write_text_atomic
from harness.core.runrecord import Output, PredictionRecord, PredictionWriter
from harness.core.types import AnswerMode, Example, Suite

SCORING_VERSION = 1  # bump when answer extraction or stored rows change meaning


def _identity(suite: Suite, examples: Sequence[Example], outputs: Sequence[Output], constrained: bool) -> str:
    from harness.scoring.rows import bind_metrics

    by_id = {e.id: e for e in examples}
    metrics = {name: f"{b.metric.stats.__module__}.{b.metric.stats.__qualname__}"
               for name, b in bind_metrics(suite, judged=False).items()}
    return fingerprint({
        "scoring": SCORING_VERSION, "harness": __version__, "task": suite.task, "labels": list(suite.labels),
        "fields": list(suite.fields), "metrics": metrics, "constrained": constrained,
        "outputs": [o.to_json() for o in outputs],
        "examples": [[e.id, e.input, e.references(), e.meta] for e in (by_id[o.example_id] for o in outputs)],
    }, length=24)


def score_pass(suite: Suite, examples: Sequence[Example], outputs: Sequence[Output],
               writer: PredictionWriter, answer: AnswerMode | None = None) -> list[PredictionRecord]:
    """Score one strategy's outputs (from the cache when nothing they depend on changed), write
    the records to the run folder and return them."""
    from harness.scoring.records import score_outputs

    constrained = answer is not None and answer.mode == "constrained"
    path = cache_root() / "scores" / f"{_identity(suite, examples, outputs, constrained)}.jsonl"
    records = _cached(path, len(outputs))
    if records is None:
        records = score_outputs(suite, examples, outputs, constrained)
        write_text_atomic(path, "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in records))
    writer.write(records)
    return records


def _cached(path: Path, n: int) -> list[PredictionRecord] | None:
    if not path.is_file():
        return None
    try:
        records = [PredictionRecord.from_json(line.value) for line in jsonl.read(path) if line.error is None]
    except ValueError:
        return None  # a damaged entry: score again
    return records if len(records) == n else None
