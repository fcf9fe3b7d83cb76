"""The run folder's one owner: what `results.json` and `predictions.jsonl` hold, how they are
written and how they are read back (docs/results-schema.md).

`harness.runner` writes a run folder through `PredictionWriter` and `write_results` (the test
fixtures use the same code); the report, the gate and the history read it through `load_run`.
This module sits in the core layer, below scoring, so it stores numbers and never computes them:
the per-example statistics and score of a prediction are computed once by harness.scoring when
the runner records the prediction, and every reader takes them from here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from harness.core import jsonl
from harness.core.cache import write_json_atomic
from harness.core.errors import HarnessError
from harness.core.results import (
    OLDER_SCHEMAS,
    READABLE,
    SCHEMA,
    ResultsError,
    RunResults,
    SuiteInfo,
    results_from_json,
    to_json,
)
from harness.core.types import Example, Target, scored_answer

RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.jsonl"
OUTPUTS_FILE = "outputs.jsonl"  # what decoding produced, batch by batch, before the scoring pass

# What `PredictionRecord.score` means per task (harness.scoring.metrics.example_scores computes
# it): right or wrong for labels, graded where an answer can be partly right.
SCORE_NAME = {"classification": "correct", "extraction": "field F1", "qa": "token F1", "generation": "token F1"}


def graded(task: str) -> bool:
    """Whether a record's `score` can fall between 0 and 1 for this task."""
    return task != "classification"


class _Keyed(Protocol):
    @property
    def example_id(self) -> str: ...


K = TypeVar("K", bound=_Keyed)


def last_wins(items: Iterable[K]) -> dict[str, K]:
    """Items by example id, the last one for an id winning (a resumed run may write an example
    twice: the line written last counts); ordered by each id's last occurrence."""
    out: dict[str, K] = {}
    for item in items:
        key = str(item.example_id)
        out.pop(key, None)
        out[key] = item
    return out


# --------------------------------------------------------------------------- one line


@dataclass(frozen=True)
class Output:
    """What decoding produced for one (strategy, example), before any scoring: one line of
    outputs.jsonl, flushed batch by batch so nothing decoded is lost if a later step fails."""

    strategy: str
    example_id: str
    output: str
    latency_s: float  # the example's share of its decoding batch's wall time
    prompt_tokens: int
    output_tokens: int
    retrieved: tuple[str, ...] = ()
    error: str | None = None  # the request failed for good: an invalid answer, never cached
    choice_scores: tuple[float, ...] | None = None  # answer=choice: each label's score, in the suite's order

    def to_json(self) -> dict[str, Any]:
        out = {"strategy": self.strategy, "example_id": self.example_id, "output": self.output,
               "latency_s": self.latency_s, "prompt_tokens": self.prompt_tokens,
               "output_tokens": self.output_tokens, "retrieved": list(self.retrieved), "error": self.error}
        return {**out, "choice_scores": list(self.choice_scores)} if self.choice_scores is not None else out


@dataclass(frozen=True)
class PredictionRecord:
    """One line of predictions.jsonl: a prediction, the example it was made on (so readers need no
    suite files) and its per-example scores, computed once by the runner when it was recorded."""

    strategy: str
    example_id: str
    input: str
    target: Target
    meta: dict[str, Any] = field(hash=False)
    output: str
    answer: Any  # what the metrics saw, unless `error` is set (see `scored_answer`)
    latency_s: float  # the example's share of its decoding batch's wall time
    prompt_tokens: int
    output_tokens: int
    retrieved: tuple[str, ...]
    error: str | None
    # Per suite metric, this example's row of sufficient statistics (harness.scoring.registry);
    # absent for a metric whose rows are not numbers (`Metric.stored_rows`: evaluate modules).
    scores: dict[str, tuple[float, ...]] = field(hash=False)
    score: float  # see SCORE_NAME: what the report's per-example views compare
    choice_scores: tuple[float, ...] | None = None  # answer=choice: each label's score (suite order)

    @classmethod
    def of(cls, out: Output, example: Example, answer: Any, scores: Mapping[str, Sequence[float]],
           score: float) -> PredictionRecord:
        return cls(
            strategy=out.strategy, example_id=out.example_id, input=example.input, target=example.target,
            meta=dict(example.meta), output=out.output, answer=answer, latency_s=out.latency_s,
            prompt_tokens=out.prompt_tokens, output_tokens=out.output_tokens, retrieved=tuple(out.retrieved),
            error=out.error, scores={m: tuple(float(x) for x in row) for m, row in scores.items()},
            score=float(score), choice_scores=out.choice_scores,
        )

    @property
    def scored_answer(self) -> Any:
        return scored_answer(self.answer, self.error)

    def example(self) -> Example:
        """The example this prediction was scored on."""
        return Example(id=self.example_id, input=self.input, target=self.target, meta=dict(self.meta))

    def to_json(self) -> dict[str, Any]:
        target = self.target
        return {
            "strategy": self.strategy, "example_id": self.example_id, "input": self.input,
            "target": list(target) if isinstance(target, tuple) else target, "meta": self.meta,
            "output": self.output, "answer": self.answer, "latency_s": self.latency_s,
            "prompt_tokens": self.prompt_tokens, "output_tokens": self.output_tokens,
            "retrieved": list(self.retrieved), "error": self.error,
            # JSON has no NaN: a row value that is not finite is stored as null, read back as NaN.
            "scores": {m: [x if math.isfinite(x) else None for x in row] for m, row in self.scores.items()},
            "score": self.score if math.isfinite(self.score) else None,
            **({"choice_scores": [x if math.isfinite(x) else None for x in self.choice_scores]}
               if self.choice_scores is not None else {}),
        }

    @classmethod
    def from_json(cls, obj: Any) -> PredictionRecord:
        """A record from one parsed line; ValueError says what is wrong with it."""
        if not isinstance(obj, dict) or "strategy" not in obj or "example_id" not in obj:
            raise ValueError("expected an object with 'strategy' and 'example_id'")
        if "scores" not in obj or "score" not in obj:
            raise ValueError("no per-example 'scores' and 'score': written by an older version of sft-harness; "
                             "re-run to regenerate it")
        error = obj.get("error")
        return cls(
            strategy=str(obj["strategy"]), example_id=str(obj["example_id"]), input=_text(obj.get("input")),
            target=_target(obj.get("target")), meta=_object(obj.get("meta"), "meta"), output=_text(obj.get("output")),
            answer=obj.get("answer"), latency_s=_number(obj.get("latency_s", 0.0), "latency_s"),
            prompt_tokens=_count(obj.get("prompt_tokens"), "prompt_tokens"),
            output_tokens=_count(obj.get("output_tokens"), "output_tokens"),
            retrieved=tuple(str(d) for d in _list(obj.get("retrieved"), "retrieved")),
            error=None if error is None else str(error), scores=_scores(obj["scores"]),
            score=_number(obj["score"], "score"),
            choice_scores=None if obj.get("choice_scores") is None else
            tuple(_number(x, "choice_scores") for x in _list(obj["choice_scores"], "choice_scores")),
        )


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _target(value: Any) -> Target:
    if isinstance(value, list):
        return tuple(str(t) for t in value)
    if isinstance(value, dict):
        return value
    return _text(value)


def _object(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"'{key}' must be an object")
    return value


def _list(value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"'{key}' must be a list")
    return value


def _number(value: Any, key: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"'{key}' must be a number")
    return float(value)


def _count(value: Any, key: str) -> int:
    number = _number(0 if value is None else value, key)
    if not math.isfinite(number):
        raise ValueError(f"'{key}' must be a whole number")
    return int(number)


def _scores(value: Any) -> dict[str, tuple[float, ...]]:
    out = {}
    for metric, row in _object(value, "scores").items():
        out[str(metric)] = tuple(_number(x, f"scores.{metric}") for x in _list(row, f"scores.{metric}"))
    return out


# --------------------------------------------------------------------------- writing


class PredictionWriter:
    """Appends records to a run's predictions.jsonl (or outputs to outputs.jsonl), one batch at a
    time: each batch is one write, flushed and fsynced (harness.core.jsonl.append), so a crash
    loses at most the batch in flight. `extra` is added to every line (control_predictions.jsonl
    names the control suite and the model on each)."""

    def __init__(self, run_dir: Path, name: str = PREDICTIONS_FILE, *, extra: Mapping[str, Any] | None = None,
                 fresh: bool = True) -> None:
        self.path = Path(run_dir) / name
        self.extra = dict(extra or {})
        if fresh:
            self.path.write_bytes(b"")  # a run folder is never shared: its file starts empty

    def write(self, records: Sequence[PredictionRecord | Output]) -> None:
        jsonl.append(self.path, [{**r.to_json(), **self.extra} for r in records])


def write_results(run_dir: Path, results: RunResults) -> Path:
    """Write results.json atomically from its records (harness.core.results)."""
    path = Path(run_dir) / RESULTS_FILE
    write_json_atomic(path, to_json(replace(results, schema=SCHEMA)))
    return path


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RunRecord:
    """A finished run folder: results.json as its records, predictions.jsonl as records."""

    dir: Path
    results: RunResults
    predictions: tuple[PredictionRecord, ...]

    @property
    def strategies(self) -> list[str]:
        return list(self.results.strategies)

    @property
    def suite(self) -> SuiteInfo:
        return self.results.suite

    @property
    def task(self) -> str:
        return self.suite.task

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.suite.labels)

    def predictions_for(self, strategy: str) -> list[PredictionRecord]:
        """The strategy's records, one per example, the last line of an example winning."""
        return list(last_wins(r for r in self.predictions if r.strategy == strategy).values())


def load_run(run_dir: Path) -> RunRecord:
    """Read a run folder; every problem is a one-line HarnessError that names the file (and line)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"{run_dir}: no such run folder (expected reports/<run-id> with {RESULTS_FILE})")
    results = read_results(run_dir / RESULTS_FILE)
    return RunRecord(run_dir, results, tuple(read_predictions(run_dir / PREDICTIONS_FILE)))


def read_results(path: Path) -> RunResults:
    """results.json as its records; a file that is not JSON, of another schema, or with a value of
    the wrong type anywhere is one line naming the file and the value's JSON path."""
    if not path.is_file():
        raise HarnessError(f"{path}: not found; is {path.parent} a run folder written by `sft-harness run`?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise HarnessError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); re-run to regenerate it") from None
    except (OSError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: cannot be read ({e})") from None
    except (ValueError, RecursionError):  # nested too deeply, or a number of thousands of digits
        raise HarnessError(f"{path}: not valid JSON (nested too deeply or a number too long); re-run to "
                           "regenerate it") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: expected a JSON object, got {type(data).__name__}")
    schema = data.get("schema")
    if schema in OLDER_SCHEMAS:
        raise HarnessError(f"{path}: written by an older version of sft-harness (schema {schema}); re-run the "
                           "comparison to regenerate the run folder")
    if schema not in READABLE:
        raise HarnessError(f"{path}: schema is {schema!r}, expected {SCHEMA!r}")
    try:
        return results_from_json(data)
    except ResultsError as e:
        raise HarnessError(f"{path}: {e}; re-run to regenerate it") from None


def read_predictions(path: Path) -> list[PredictionRecord]:
    if not path.is_file():
        raise HarnessError(f"{path}: not found; the run folder is incomplete (re-run to regenerate it)")
    records = []
    for line in jsonl.read(path):
        if line.error is not None:
            why = line.error
            why = f"not valid JSON ({why.removeprefix('bad JSON: ')})" if why.startswith("bad JSON") else why
            raise HarnessError(f"{path}:{line.number}: {why}")
        try:
            records.append(PredictionRecord.from_json(line.value))
        except ValueError as e:
            raise HarnessError(f"{path}:{line.number}: {e}") from None
    return records
