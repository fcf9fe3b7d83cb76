"""curve.json and cells.jsonl from a finished grid: per cell its metrics, per strategy and size the
mean, sd over seeds and bootstrap interval of the decision metric, and the crossovers."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness.core import jsonl
from harness.core.cache import write_json_atomic
from harness.core.types import Example, Suite
from harness.runner.curve_cells import CellResult

SCHEMA = "sft-harness/curve/v1"
CURVE_FILE, CELLS_FILE = "curve.json", "cells.jsonl"


def decision_metric(suite: Suite, done: Sequence[CellResult]) -> tuple[str, str | None]:
    """The suite's primary metric, as the run's recommendation uses it: when every cell scores the
    same extreme value on it, it cannot tell strategies apart, and the next informative metric decides."""
    from harness.scoring.recommend import uninformative

    primary = suite.primary_metric
    stuck = uninformative((d.metrics.get(primary) for d in done), primary)
    if stuck is None:
        return primary, None
    other = next((m for m in suite.metrics if m != primary and uninformative((d.metrics.get(m) for d in done), m) is None),
                 None)
    note = f"{primary} is uninformative here (every cell scored {stuck:g})"
    return (other, f"{note}: the curve uses {other}") if other else (primary, f"{note}, and so is every other metric")


def _stats(suite: Suite, metric: str, strategies: Sequence[Any], sizes: Sequence[int], seeds: Sequence[int],
           done: Sequence[CellResult], n_test: int, n_resamples: int) -> tuple[Any, list[dict[str, Any]]]:
    from harness.scoring.curve import StrategyCells, crossovers, curve_stats
    from harness.scoring.rows import bind_metrics

    aggregate = bind_metrics(suite)[metric]
    cells: dict[str, StrategyCells] = {}
    for s in strategies:
        mine = [d for d in done if d.cell.strategy.name == s.name]
        if not s.uses_train():
            cells[s.name] = StrategyCells(flat=np.asarray(mine[0].rows[metric]))
        else:
            cells[s.name] = StrategyCells(rows={(sizes.index(d.cell.size), seeds.index(d.cell.seed)):
                                                np.asarray(d.rows[metric]) for d in mine if d.cell.size is not None})
    stats = curve_stats(cells, [float(x) for x in sizes], len(seeds), aggregate, n_test=n_test,
                        n_resamples=n_resamples, seed=0)
    flipped = stats if aggregate.metric.higher_is_better else _negated(stats)
    return stats, crossovers(flipped, {s.name: s.uses_train() for s in strategies})


def _negated(stats: Any) -> Any:
    """A lower-is-better metric: 'overtakes' means 'falls below', so cross the negated curves."""
    from harness.scoring.curve import CurveStats

    return CurveStats(stats.sizes, {k: -v for k, v in stats.point.items()},
                      {k: -v for k, v in stats.seed_values.items()}, {k: -v for k, v in stats.boot.items()})


def _cell_json(d: CellResult) -> dict[str, Any]:
    return {"strategy": d.cell.strategy.name, "size": d.cell.size, "seed": d.cell.seed,
            "n_train": len(d.cell.suite.train), "metrics": d.metrics, "folder": d.folder,
            "work": {"train_s": round(d.train_s, 3), "decode_s": round(d.decode_s, 3), "score_s": round(d.score_s, 3),
                     "decoded": d.decoded, "trained": d.trained, "computed": d.computed}}


def write_curve(folder: Path, suite: Suite, examples: Sequence[Example], strategies: Sequence[Any],
                sizes: Sequence[int], seeds: Sequence[int], done: Sequence[CellResult], *, run_id: str, model: str,
                n_resamples: int, generator_loaded: bool) -> Path:
    """Write cells.jsonl (per-example rows) and curve.json; returns curve.json's path."""
    from harness.scoring.curve import summary

    jsonl.append(folder / CELLS_FILE, [{"strategy": d.cell.strategy.name, "size": d.cell.size, "seed": d.cell.seed,
                                        "rows": d.rows} for d in done])
    start = time.perf_counter()
    metric, note = decision_metric(suite, done)
    stats, crossings = _stats(suite, metric, strategies, list(sizes), list(seeds), done, len(examples), n_resamples)
    stats_s = time.perf_counter() - start
    curves = {s.name: {"kind": s.kind, "params": s.params, "uses_train": s.uses_train(),
                       "points": summary(stats, s.name)} for s in strategies}
    work = {"cells": len(done), "computed_cells": sum(d.computed for d in done),
            "train_s": sum(d.train_s for d in done), "decode_s": sum(d.decode_s for d in done),
            "score_s": sum(d.score_s for d in done) + stats_s, "bootstrap_s": stats_s,
            "generator_loaded": generator_loaded}
    body = {
        "schema": SCHEMA, "run_id": run_id, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "suite": {"name": suite.name, "task": suite.task, "sha256": suite.sha256, "n_train": len(suite.train),
                  "n_test": len(examples), "primary_metric": suite.primary_metric, "metrics": list(suite.metrics)},
        "model": model, "metric": metric, "metric_note": note, "sizes": list(sizes), "seeds": list(seeds),
        "test_ids": [e.id for e in examples],
        "bootstrap": {"resamples": n_resamples, "confidence": 0.95, "seed": 0,
                      "resampled": "test examples and training seeds"},
        "cells": [_cell_json(d) for d in done], "curves": curves, "crossovers": crossings, "work": work,
    }
    path = folder / CURVE_FILE
    write_json_atomic(path, body)
    return path
