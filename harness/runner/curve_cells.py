"""A learning curve's grid: each cell one cached strategy turn on its train subset, the models loaded
once for all of them, one progress bar with an ETA over the whole grid."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.core.runrecord import PredictionWriter
from harness.core.types import Example, Suite
from harness.engine import modelset
from harness.engine.context import make_progress
from harness.engine.encoder import Encoder
from harness.runner.loop import strategy_turn
from harness.runner.options import RunOptions, default_batch_size


@dataclass(frozen=True)
class Cell:
    strategy: Any
    size: int | None  # None: a strategy that does not use the train split, measured once
    seed: int
    suite: Suite  # the suite with this cell's train subset

    @property
    def folder_name(self) -> str:
        from strategies.sft import safe_name

        return f"{safe_name(self.strategy.name)}/" + ("flat" if self.size is None else f"n{self.size}-s{self.seed}")


@dataclass
class CellResult:
    cell: Cell
    metrics: dict[str, float]
    rows: dict[str, list[list[float]]]  # metric -> per-example rows, in the order of the test examples
    train_s: float  # wall seconds of prepare() (training, indexing, shots): ~0 when cached
    decode_s: float
    score_s: float
    decoded: int  # generations decoded now (0: all from the cache)
    trained: bool  # an adapter was trained now (not taken from the cache)
    folder: str

    @property
    def computed(self) -> bool:
        return self.decoded > 0 or self.trained


def _score(suite: Suite, examples: list[Example], records: list[Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """Each suite metric on the cell's predictions, and its per-example rows (read from the records)."""
    import numpy as np

    from harness.scoring.rows import bind_metrics, rows_over

    by_id = {r.example_id: r for r in records}
    metrics, rows = {}, {}
    for name, binding in bind_metrics(suite).items():
        r = np.asarray(rows_over(binding, name, examples, by_id), dtype=np.float64).reshape(len(examples), -1)
        metrics[name] = float(binding(r))
        rows[name] = r.tolist()
    return metrics, rows


def run_grid(opts: RunOptions, suite: Suite, examples: list[Example], cells: list[Cell], picked: dict[str, Any],
             models: dict[str, Any], folder: Path, console: Console, *, device: str,
             encoder: Encoder | None) -> list[CellResult]:
    """Every cell in turn (see the module docstring); the weights stay loaded until the grid is done."""
    import torch

    from harness.scoring.records import recorder

    engines = modelset.engines(models, opts.batch_size or default_batch_size(device))
    done: list[CellResult] = []
    with make_progress(console, eta=True) as progress:
        task = progress.add_task("curve", total=len(cells), info="")
        for cell in cells:
            s, cell_dir = cell.strategy, folder / "cells" / cell.folder_name
            cell_dir.mkdir(parents=True, exist_ok=True)
            label = f"{s.name} " + ("(no train)" if cell.size is None else f"n={cell.size} seed={cell.seed}")
            progress.update(task, info=escape(label))
            torch.manual_seed(cell.seed)
            key = modelset.model_key(picked[s.name])
            start = time.perf_counter()
            turn = strategy_turn(opts, s, picked[s.name], models[key], engines[key], cell.suite, examples,
                                 recorder(cell.suite, PredictionWriter(cell_dir)), console, seed=cell.seed,
                                 run_dir=cell_dir, encoder=encoder)
            wall = time.perf_counter() - start
            start = time.perf_counter()
            metrics, rows = _score(cell.suite, examples, turn.predictions)
            training = turn.section.get("training") or {}
            done.append(CellResult(cell, metrics, rows, train_s=max(wall - turn.decode_s, 0.0), decode_s=turn.decode_s,
                                   score_s=time.perf_counter() - start, decoded=turn.decoded,
                                   trained=bool(training) and not training.get("cached", False),
                                   folder=str(cell_dir.relative_to(folder))))
            progress.advance(task)
        progress.update(task, info="done")
    return done
