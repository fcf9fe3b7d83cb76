"""Hugging Face `evaluate` modules as metrics: `evaluate:NAME_OR_PATH[#KEY]` in a suite's `metrics`.

- NAME: a module on the Hub (`evaluate:meteor`, `evaluate:someone/their_metric`), loaded with
  `evaluate.load` and cached by it; offline, only a module loaded once before is available.
- PATH (starts with ./ or ../): a metric script folder inside the suite folder, relative to it
  (`evaluate:./metrics/my_metric` loads `metrics/my_metric/my_metric.py`).
- KEY: which entry of the dict the module returns is the value; by default the entry named like
  the module, else the only entry.

The module sees answers as predictions (an invalid answer is '') and the references: one string
per example, or a list per example when some example of the set has several. A module is a black
box over the whole corpus, so it has no per-example sufficient statistics: its rows are the
examples themselves, and every bootstrap resample recomputes the module on the resampled
examples. That is slow, so resamples are capped at MAX_RESAMPLES and the result says so.
Loading a module runs its Python code, as a strategy plugin does: use modules you trust.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import HarnessError, MissingPackageError
from harness.core.metricref import EVALUATE_PREFIX, form_problem, is_local_metric, split_evaluate_metric
from harness.core.types import Example
from harness.scoring.extract import answer_text
from harness.scoring.metric import Metric, MetricContext

MAX_RESAMPLES = 200
# Values where lower is better, among common evaluate modules (the module itself does not say).
LOWER_IS_BETTER = frozenset({"wer", "cer", "ter", "mae", "mse", "perplexity"})
_TRUE = ("1", "true", "yes", "on")


def availability_problem(name: str) -> str | None:
    """What stops `name` from loading, found without loading it (no network): for validation."""
    import importlib.util

    if problem := form_problem(name):
        return problem
    if importlib.util.find_spec("evaluate") is None:
        return f"metric '{name}' needs the evaluate package: run `pip install 'evaluate>=0.4'`"
    return None


def display_only(name: str) -> Metric:
    """The metric as tables show it, without loading the module (reports, the gate's output)."""
    return _metric(name, _not_loaded)


def evaluate_metric(name: str, suite_dir: Path | None) -> Metric:
    """The metric `name`, its module loaded now (errors are one-line HarnessErrors)."""
    target, _ = split_evaluate_metric(name)
    if is_local_metric(target):
        if suite_dir is None:
            raise HarnessError(f"metric '{name}': a metric folder is relative to its suite, and no suite folder is known")
        return _loaded(name, str((Path(suite_dir) / target).resolve()))
    return _loaded(name, target)


@lru_cache(maxsize=64)
def _loaded(name: str, where: str) -> Metric:
    module = _load_module(name, where)
    _, key = split_evaluate_metric(name)
    names = {Path(where).stem, str(getattr(module, "name", "") or "")}

    def aggregate(rows: np.ndarray, ctx: MetricContext) -> float:
        return _compute(module, name, key, names, rows)

    return _metric(name, aggregate)


def _metric(name: str, aggregate: Any) -> Metric:
    target, key = split_evaluate_metric(name)
    base = (key or Path(target.rstrip("/")).stem).lower()
    return Metric(name, _rows, aggregate, None, scale=None, higher_is_better=base not in LOWER_IS_BETTER,
                  format_spec=".4g", max_resamples=MAX_RESAMPLES, stored_rows=False, description=f"Hugging Face evaluate module {target}")


def _not_loaded(rows: np.ndarray, ctx: MetricContext) -> float:
    raise HarnessError("internal: a display-only evaluate metric cannot be computed")


def _import_evaluate() -> Any:
    try:
        import evaluate
    except ImportError:
        raise MissingPackageError("the evaluate package (for evaluate: metrics)", "pip install 'evaluate>=0.4'") from None
    return evaluate


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _TRUE
               for v in ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE", "HF_DATASETS_OFFLINE"))


def _load_module(name: str, where: str) -> Any:
    evaluate = _import_evaluate()
    local = Path(where).is_absolute()
    if not local and _shadowed(where):  # evaluate.load would take ./NAME of the working directory
        raise HarnessError(f"metric '{name}': ./{where} in the working directory would be loaded instead of the Hub "
                           f"module; write {EVALUATE_PREFIX}./FOLDER for a folder of the suite, or run elsewhere")
    try:
        # Kept in memory: the bootstrap computes the module hundreds of times.
        return evaluate.load(where, keep_in_memory=True)
    except Exception as e:
        why = _one_line(e)
    if local:
        raise HarnessError(f"metric '{name}': the metric script in {where} does not load: {why}")
    how = ("run once with a network (evaluate caches the module), or copy the module's script folder into "
           f"the suite and write {EVALUATE_PREFIX}./FOLDER")
    if _offline():
        raise HarnessError(f"metric '{name}': the evaluate module '{where}' is not in the local cache and "
                           f"HF_HUB_OFFLINE is set; {how}")
    raise HarnessError(f"metric '{name}': evaluate.load('{where}') failed ({why}); {how}")


def _shadowed(target: str) -> bool:
    path = Path(target)
    return path.is_file() if path.suffix == ".py" else (path / f"{path.name}.py").is_file()


def _rows(answers: Sequence[Any], examples: Sequence[Example], ctx: MetricContext) -> np.ndarray:
    """[prediction, reference(s)] per example, as objects: the bootstrap indexes them like any rows."""
    refs = [tuple(r for r in e.references() if r is not None) or ("",) for e in examples]
    several = any(len(r) > 1 for r in refs)
    rows = np.empty((len(examples), 2), dtype=object)
    for i, (a, r) in enumerate(zip(answers, refs, strict=True)):
        rows[i, 0] = answer_text(a)
        rows[i, 1] = list(r) if several else r[0]
    return rows


def _compute(module: Any, name: str, key: str | None, names: set[str], rows: np.ndarray) -> float:
    try:
        out = module.compute(predictions=[str(p) for p in rows[:, 0]], references=list(rows[:, 1]))
    except Exception as e:
        raise HarnessError(f"metric '{name}': the evaluate module failed: {_one_line(e)}") from e
    if not isinstance(out, dict) or not out:
        raise HarnessError(f"metric '{name}': the evaluate module returned {type(out).__name__}, not a dict of values")
    if key is None:
        named = [k for k in out if k in names]
        key = named[0] if named else next(iter(out)) if len(out) == 1 else None
    if key is None or key not in out:
        pick = "" if key is None else f"no '{key}' among them; "
        raise HarnessError(f"metric '{name}': the module returned {', '.join(map(str, out))}: {pick}"
                           f"name the value with {EVALUATE_PREFIX}{split_evaluate_metric(name)[0]}#KEY")
    value = out[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise HarnessError(f"metric '{name}': the value '{key}' is a {type(value).__name__}, not a number; "
                           f"pick another with {EVALUATE_PREFIX}{split_evaluate_metric(name)[0]}#KEY")
    return float(value) if math.isfinite(float(value)) else math.nan


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__
