"""Per-example rows of sufficient statistics: what every interval, slice and paired test indexes.

They are computed once, by the scoring pass (harness.scoring.records: `rows_to_store`), and the run
record keeps the rows of every metric whose rows are numbers (`Metric.stored_rows`); afterwards they
are read back (`stored_rows`, `rows_over`), never computed again from the answer. Rows are computed
only where none can be stored: for examples that have no record (an interrupted strategy: an
invalid answer), and for metrics whose rows are the examples themselves (evaluate modules
recompute the module from the stored answers on every resample anyway).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.core.errors import HarnessError
from harness.core.runrecord import PredictionRecord
from harness.core.types import Example, Suite
from harness.scoring.metric import Aggregator
from harness.scoring.registry import get_metric


def bind_metrics(suite: Suite, *, judged: bool = True) -> dict[str, Aggregator]:
    """The suite's metrics, under the names it uses (an alias included), bound to its task and
    labels; the judged ones (graded by the judge pass, harness.runner.judging) unless `judged` is False."""
    from harness.scoring.judge_grades import judged_metric

    names = {j.name for j in suite.judges}
    return {m: (judged_metric(m) if m in names else get_metric(m, suite.path)).bind(suite.task, suite.labels)
            for m in suite.metrics if judged or m not in names}


def answer_of(pred: PredictionRecord | None) -> Any:
    """What the metrics see: no prediction, or one that failed, is an invalid answer (None)."""
    return None if pred is None else pred.scored_answer


def rows_to_store(
    bindings: Mapping[str, Aggregator], answers: Sequence[Any], examples: Sequence[Example]
) -> list[dict[str, tuple[float, ...]]]:
    """Per example, its row of every metric whose rows are numbers: what its record keeps."""
    out: list[dict[str, tuple[float, ...]]] = [{} for _ in examples]
    for name, binding in bindings.items():
        if not binding.metric.stored_rows:
            continue
        try:
            rows = np.asarray(binding.stats(answers, examples), dtype=np.float64).reshape(len(examples), -1)
        except (TypeError, ValueError):
            raise HarnessError(f"metric '{name}': its per-example statistics are not numbers, so the run record "
                               "cannot keep them; define it with stored_rows=False") from None
        for i, row in enumerate(rows.tolist()):
            out[i][name] = tuple(row)
    return out


def stored_rows(records: Sequence[PredictionRecord], name: str) -> np.ndarray | None:
    """The rows of metric `name` the records keep, one per record; None unless every record has one."""
    rows = [r.scores.get(name) for r in records]
    if not rows or any(row is None for row in rows):
        return None
    if len({len(row) for row in rows if row is not None}) > 1:
        raise HarnessError(f"the stored rows of metric '{name}' differ in length between examples")
    return np.array(rows, dtype=np.float64)


def rows_over(binding: Aggregator, name: str, examples: Sequence[Example], by_id: Mapping[str, PredictionRecord]) -> np.ndarray:
    """The rows of metric `name` over `examples`: stored with a record where there is one, computed
    for the rest (see the module docstring); `by_id` maps example ids to predictions."""
    preds = [by_id.get(e.id) for e in examples]
    kept = [(i, p) for i, p in enumerate(preds) if p is not None and name in p.scores]
    stored = stored_rows([p for _, p in kept], name)
    if stored is None:
        return binding.stats([answer_of(p) for p in preds], examples)
    if len(kept) == len(examples):
        return stored
    have = [i for i, _ in kept]
    todo = sorted(set(range(len(examples))) - set(have))
    computed = binding.stats([answer_of(preds[i]) for i in todo], [examples[i] for i in todo])
    out = np.empty((len(examples), stored.shape[1]), dtype=np.float64)
    out[have] = stored
    out[todo] = computed
    return out
