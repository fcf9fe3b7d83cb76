"""`sft-harness curve`: a learning curve, every strategy at several train sizes and seeds.

Everything that can be refused is checked first (suite, strategies on every subset, sizes, seeds,
options, output folder, device, models), as `run` does. Then the base model is loaded once for the
whole grid and every cell (strategy, size, seed) is an ordinary cached strategy turn
(harness.runner.loop.strategy_turn) on the same test examples: a cell computed before, by an
earlier curve or a killed one, costs neither training nor decoding. Results go to curve.json and
cells.jsonl (per-example rows for the bootstrap); the report is rendered from those files alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.core.errors import HarnessError, SuiteError
from harness.core.suites import load_suite
from harness.core.types import Example, Suite
from harness.engine import modelset
from harness.engine.leakage import run_encoder
from harness.engine.models import DEFAULT_EMBEDDER, check_model_ref, load_generator, pick_device
from harness.runner.curve_cells import Cell, run_grid
from harness.runner.curve_data import parse_sizes, resolve_sizes, subset_suite, train_order
from harness.runner.curve_results import write_curve
from harness.runner.folders import check_out_dir, new_run_dir, remove_if_empty, run_id_base
from harness.runner.loop import _build_strategies
from harness.runner.options import RunOptions, check_options

DEFAULT_SIZES = "16,32,64,128,all"
DEFAULT_SEEDS = 3
CURVE_STRATEGIES = "prompt,prompt:k=8:select=knn,sft"


@dataclass
class CurveOptions:
    run: RunOptions  # suite, strategies, model, out, limit, device, ... as for `run`
    sizes: list[int | str] = field(default_factory=lambda: parse_sizes(DEFAULT_SIZES))
    seeds: int = DEFAULT_SEEDS
    n_resamples: int = 2000

    def flag(self, key: str) -> str:
        return self.run.flag(key)


@dataclass
class Plan:
    """What the grid will do, all checked: the suite, the strategies, the test examples, the sizes
    (numbers, ascending), the seeds, and each seed's ordering of the train split."""

    suite: Suite
    strategies: list[Any]
    examples: list[Example]
    sizes: list[int]
    seeds: list[int]
    orders: dict[int, list[Example]]
    picked: dict[str, Any]

    def cells(self) -> list[Cell]:
        """Train-free strategies once (size None, the first seed); the others at every size and seed,
        smallest size first and every strategy at a size before the next size, so the progress bar's
        ETA sees a mix of cells early and a killed curve has whole sizes done."""
        out = [Cell(s, None, self.seeds[0], self.suite) for s in self.strategies if not s.uses_train()]
        for size in self.sizes:
            for seed in self.seeds:
                subset = subset_suite(self.suite, self.orders[seed][:size])
                out += [Cell(s, size, seed, subset) for s in self.strategies if s.uses_train()]
        return out


def _load(opts: RunOptions) -> Suite:
    from harness.scoring.registry import check_metric, load_suite_metrics, require_trust

    try:
        suite = load_suite(opts.suite, known_metrics=check_metric)
    except SuiteError:
        raise
    except HarnessError as e:
        raise HarnessError(f"{opts.sources['suite']}: {e}" if "suite" in opts.sources else str(e)) from None
    for name in suite.metrics:
        require_trust(name, opts.trust_remote_code)
    load_suite_metrics(suite)
    return suite


def plan_curve(opts: CurveOptions) -> Plan:
    """Every refusal before any model work (see the module docstring)."""
    ro = opts.run
    suite = _load(ro)
    strategies = _build_strategies(ro)
    picked = modelset.strategy_models(ro.model, ro.models, ro.sources, strategies)
    if not 1 <= opts.seeds <= 1000:
        raise HarnessError(f"{opts.flag('seeds')} must be a number of training seeds from 1 to 1000, got {opts.seeds}")
    sizes = resolve_sizes(opts.sizes, len(suite.train), opts.flag("sizes"))
    if not any(s.uses_train() for s in strategies):
        raise HarnessError(f"{ro.flag('strategies')}: no strategy uses the train split, so there is no curve to draw "
                           "(add sft, or prompt:k=8)")
    seeds = list(range(opts.seeds))
    orders = {seed: train_order(suite.train, suite.task, seed) for seed in seeds}
    for s in strategies:
        where = ro.sources.get(f"strategy {s.name}") or ro.sources.get("strategies")
        try:
            s.check(suite)
        except HarnessError as e:
            raise HarnessError(f"{where}: {e}" if where else str(e)) from None
        if s.uses_train():
            try:  # the smallest subset is the one a strategy may refuse (k shots from fewer examples)
                s.check(subset_suite(suite, orders[0][: sizes[0]]))
            except HarnessError as e:
                raise HarnessError(f"{opts.flag('sizes')} {sizes[0]}: {e}") from None
    examples = list(suite.test[: ro.limit] if ro.limit else suite.test)
    check_options(ro, suite, examples)
    return Plan(suite, strategies, examples, sizes, seeds, orders, picked)


def run_curve(opts: CurveOptions, console: Console | None = None) -> Path:
    """Run the grid and write the curve folder (curve.json, cells.jsonl, cells/). Returns the folder."""
    console = console or Console(stderr=True)
    ro = opts.run
    plan = plan_curve(opts)
    out = check_out_dir(Path(ro.out), ro.flag("out"))
    device = pick_device(ro.device, ro.flag("device"))
    for s in plan.strategies:
        s.check_device(device)
    modelset.check_model_refs(plan.picked, ro.flag("model"), ro.sources)
    if needs_embedder := ro.embedder != DEFAULT_EMBEDDER or any(s.needs_embedder() for s in plan.strategies):
        check_model_ref(ro.embedder, ro.flag("embedder"))
    encoder = run_encoder(ro.embedder, trust_remote_code=ro.trust_remote_code, optional=not needs_embedder)
    models = modelset.build_models(plan.picked, load_generator, device=device, trust_remote_code=ro.trust_remote_code)
    run_id, folder = new_run_dir(out, run_id_base(plan.suite.name, "curve"))
    cells = plan.cells()
    console.print(f"[bold]curve[/] {run_id}: suite [cyan]{escape(plan.suite.name)}[/] ({plan.suite.task}, "
                  f"{len(plan.examples)} test examples), sizes {', '.join(map(str, plan.sizes))}, "
                  f"{len(plan.seeds)} seed(s), {len(cells)} cells -> {escape(str(folder))}", highlight=False)
    try:
        done = run_grid(ro, plan.suite, plan.examples, cells, plan.picked, models, folder, console,
                        device=device, encoder=encoder)
    except BaseException:
        remove_if_empty(folder)
        raise
    write_curve(folder, plan.suite, plan.examples, plan.strategies, plan.sizes, plan.seeds, done,
                run_id=run_id, model=ro.model, n_resamples=opts.n_resamples,
                generator_loaded=modelset.weights_loaded(models))
    return folder
