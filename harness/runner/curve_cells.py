"""A learning curve's grid: each cell one cached strategy turn on its train subset, the models loaded
once for all of them, one progress bar with an ETA over the whole grid."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.core.runrecord import OUTPUTS_FILE, PredictionWriter
from harness.core.types import Example, Suite
from harness.engine.context import make_progress
from harness.engine.modelset import ModelSet
from harness.runner.loop import strategy_turn
from harness.runner.plan import RunPlan
from harness.runner.scoring_pass import score_pass


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


def cell_label(cell: Cell) -> str:
    return f"{cell.strategy.name} " + ("(no train)" if cell.size is None else f"n={cell.size} seed={cell.seed}")


def run_cell(plan: RunPlan, cell: Cell, models: ModelSet, cell_dir: Path, console: Console) -> CellResult:
    """One cell: its strategy's cached turn on the cell's train subset, then its scores. The one code
    path of every executor (local: this process; ray: a task, harness.runner.curve_ray)."""
    import torch

    s = cell.strategy
    cell_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cell.seed)
    start = time.perf_counter()
    turn = strategy_turn(plan, s, models.of(s.name), models.record(s.name), cell.suite, plan.examples,
                         PredictionWriter(cell_dir, OUTPUTS_FILE), console, seed=cell.seed, run_dir=cell_dir,
                         answer=plan.answers[s.name])
    wall = time.perf_counter() - start
    start = time.perf_counter()
    records = score_pass(cell.suite, plan.examples, turn.outputs, PredictionWriter(cell_dir), turn.answer)
    metrics, rows = _score(cell.suite, plan.examples, records)
    training = turn.section.get("training") or {}
    return CellResult(cell, metrics, rows, train_s=max(wall - turn.decode_s, 0.0), decode_s=turn.decode_s,
                      score_s=time.perf_counter() - start, decoded=turn.decoded,
                      trained=bool(training) and not training.get("cached", False), folder=cell_folder(cell))


def cell_folder(cell: Cell) -> str:
    """The cell's folder, relative to the curve folder."""
    return f"cells/{cell.folder_name}"


def run_grid(plan: RunPlan, cells: list[Cell], models: ModelSet, folder: Path, console: Console) -> list[CellResult]:
    """Every cell in turn, in this process (the local executor); the weights stay loaded until the grid is done."""
    done: list[CellResult] = []
    with make_progress(console, eta=True) as progress:
        task = progress.add_task("curve", total=len(cells), info="")
        for cell in cells:
            progress.update(task, info=escape(cell_label(cell)))
            done.append(run_cell(plan, cell, models, folder / cell_folder(cell), console))
            progress.advance(task)
        progress.update(task, info="done")
    return done
