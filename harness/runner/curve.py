"""`sft-harness curve`: a learning curve, every strategy at several train sizes and seeds.

Everything that can be refused is checked first, by the pre-flight `run` uses (plan_run: suite,
strategies, options, output folder, device, models) and then the curve's own (sizes, seeds, the
strategies on the smallest train subset). Then the base model is loaded once for the
whole grid and every cell (strategy, size, seed) is an ordinary cached strategy turn
(harness.runner.loop.strategy_turn) on the same test examples: a cell computed before, by an
earlier curve or a killed one, costs neither training nor decoding. Results go to curve.json and
cells.jsonl (per-example rows for the bootstrap); the report is rendered from those files alone.
With `--executor ray` the cells run as Ray tasks instead (harness.runner.curve_ray), each loading
the model it decodes with; the results, the cache entries and curve.json are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.core.errors import HarnessError
from harness.core.types import Example, Suite
from harness.runner.curve_cells import Cell, CellResult, run_grid
from harness.runner.curve_data import parse_sizes, resolve_sizes, subset_suite, train_order
from harness.runner.curve_ray import RayExecutor, check_executor
from harness.runner.curve_results import write_curve
from harness.runner.estimate import say_estimate
from harness.runner.folders import new_run_dir, remove_if_empty, run_id_base
from harness.runner.options import RunOptions
from harness.runner.plan import RunPlan, plan_run

DEFAULT_SIZES = "16,32,64,128,all"
DEFAULT_SEEDS = 3
CURVE_STRATEGIES = "prompt,prompt:k=8:select=knn,sft"


@dataclass
class CurveOptions:
    run: RunOptions  # suite, strategies, model, out, limit, device, ... as for `run`
    sizes: list[int | str] = field(default_factory=lambda: parse_sizes(DEFAULT_SIZES))
    seeds: int = DEFAULT_SEEDS
    n_resamples: int = 2000
    executor: str = "local"  # local: the cells in turn in this process; ray: one Ray task each (curve_ray.py)
    address: str | None = None  # ray: a running cluster's address; None starts a local instance

    def flag(self, key: str) -> str:
        return self.run.flag(key)


@dataclass
class Plan:
    """What the grid will do, all checked: the run's plan (suite, strategies, test examples, models,
    device), the sizes (numbers, ascending), the seeds, and each seed's ordering of the train split."""

    run: RunPlan
    sizes: list[int]
    seeds: list[int]
    orders: dict[int, list[Example]]

    def cells(self) -> list[Cell]:
        """Train-free strategies once (size None, the first seed); the others at every size and seed,
        smallest size first and every strategy at a size before the next size, so the progress bar's
        ETA sees a mix of cells early and a killed curve has whole sizes done."""
        suite, strategies = self.run.suite, self.run.strategies
        out = [Cell(s, None, self.seeds[0], suite) for s in strategies if not s.uses_train()]
        for size in self.sizes:
            for seed in self.seeds:
                subset = subset_suite(suite, self.orders[seed][:size])
                out += [Cell(s, size, seed, subset) for s in strategies if s.uses_train()]
        return out


def plan_curve(opts: CurveOptions) -> Plan:
    """Every refusal before any model work: the run's own pre-flight (harness.runner.plan, the
    leakage check left out) with the curve's sizes, seeds and train subsets checked in it."""
    check_executor(opts.executor, opts.address)
    found: dict[str, Any] = {}

    def check_grid(suite: Suite, strategies: list[Any]) -> None:
        if not 1 <= opts.seeds <= 1000:
            raise HarnessError(f"{opts.flag('seeds')} must be a number of training seeds from 1 to 1000, "
                               f"got {opts.seeds}")
        sizes = resolve_sizes(opts.sizes, len(suite.train), opts.flag("sizes"))
        if not any(s.uses_train() for s in strategies):
            raise HarnessError(f"{opts.flag('strategies')}: no strategy uses the train split, so there is no curve "
                               "to draw (add sft, or prompt:k=8)")
        orders = {seed: train_order(suite.train, suite.task, seed) for seed in range(opts.seeds)}
        for s in strategies:
            if s.uses_train():
                try:  # the smallest subset is the one a strategy may refuse (k shots from fewer examples)
                    s.check(subset_suite(suite, orders[0][: sizes[0]]))
                except HarnessError as e:
                    raise HarnessError(f"{opts.flag('sizes')} {sizes[0]}: {e}") from None
        found.update(sizes=sizes, orders=orders)

    run = plan_run(opts.run, leakage=False, judges=False, also=check_grid)
    return Plan(run, found["sizes"], list(range(opts.seeds)), found["orders"])


class LocalExecutor:
    """The cells in turn in this process, the base model loaded once for the whole grid."""

    def __init__(self, plan: RunPlan):
        self.models = plan.build_models()

    def run(self, plan: RunPlan, cells: list[Cell], folder: Path, console: Console) -> tuple[list[CellResult], bool]:
        return run_grid(plan, cells, self.models, folder, console), self.models.weights_loaded

    def close(self) -> None:
        self.models.close()


def _executor(opts: CurveOptions, plan: RunPlan) -> LocalExecutor | RayExecutor:
    """The executor, ready: Ray joined (or started) before any folder is made, so a refusal leaves none."""
    if opts.executor == "ray":
        return RayExecutor(opts.address)
    return LocalExecutor(plan)


def run_curve(opts: CurveOptions, console: Console | None = None) -> Path:
    """Run the grid and write the curve folder (curve.json, cells.jsonl, cells/). Returns the folder."""
    console = console or Console(stderr=True)
    plan = plan_curve(opts)
    run, suite = plan.run, plan.run.suite
    executor = _executor(opts, run)
    try:
        run_id, folder = new_run_dir(run.out, run_id_base(suite.name, "curve"))
        cells = plan.cells()
        via = f" on Ray ({opts.address or 'a local instance'})" if opts.executor == "ray" else ""
        console.print(f"[bold]curve[/] {run_id}: suite [cyan]{escape(suite.name)}[/] ({suite.task}, "
                      f"{len(run.examples)} test examples), sizes {', '.join(map(str, plan.sizes))}, "
                      f"{len(plan.seeds)} seed(s), {len(cells)} cells{escape(via)} -> {escape(str(folder))}",
                      highlight=False)
        if isinstance(executor, LocalExecutor):  # Ray's cells run on its workers, whatever machines they are
            say_estimate([replace(run, suite=c.suite, strategies=[c.strategy]) for c in cells], executor.models,
                         console)
        try:
            done, loaded = executor.run(run, cells, folder, console)
        except BaseException:
            remove_if_empty(folder)
            raise
        write_curve(folder, suite, run.examples, run.strategies, plan.sizes, plan.seeds, done,
                    run_id=run_id, model=run.opts.model, n_resamples=opts.n_resamples, generator_loaded=loaded)
    finally:
        executor.close()
    return folder
