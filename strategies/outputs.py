"""`outputs`: score outputs produced elsewhere (a production model's logs, another team's system).

`outputs:path=answers.jsonl` reads one line per test example, `{"id": ..., "output": ...}` (or a
CSV with `id` and `output` columns; `example_id` is taken for `id`), and optionally the cost of
producing it: `latency_s`, `prompt_tokens`, `output_tokens`, `usd`. The outputs are scored and
paired with the other strategies exactly like generated ones, through the same scoring pass. A
test example the file has no output for is an invalid answer, counted and listed in results.json;
an id the suite does not have, a duplicate id or a bad line is refused in one line naming the
file and line, before any model work. No model decodes for this strategy, in any answer mode:
the answers are given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness.core.cache import sha256_file
from harness.core.errors import HarnessError
from harness.core.runrecord import Output
from harness.core.tables import file_rows
from harness.core.types import AnswerMode, Example, Prompt, Suite
from harness.engine.context import Prepared, StrategyContext

from .base import Strategy

COST_FIELDS = ("latency_s", "prompt_tokens", "output_tokens", "usd")
KNOWN = ("id", "example_id", "output", *COST_FIELDS)
MISSING = "no output for this example in the outputs file"
LISTED = 20  # missing ids listed in results.json (the count is always there)


@dataclass(frozen=True)
class GivenOutput:
    example_id: str
    output: str
    line: int
    latency_s: float = 0.0
    prompt_tokens: int = 0
    output_tokens: int = 0
    usd: float | None = None


def _number(value: Any, key: str, where: str, whole: bool) -> float:
    if isinstance(value, str) and value.strip():
        try:
            value = float(value)
        except ValueError:
            pass
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    if not ok or (whole and float(value) != int(value)):
        raise HarnessError(f"{where}: '{key}' must be {'a whole number' if whole else 'a number'} of 0 or more, "
                           f"got {value!r}")
    return float(value)


def _row(d: Any, where: str) -> GivenOutput:
    if not isinstance(d, dict):
        raise HarnessError(f"{where}: expected an object with 'id' and 'output'")
    unknown = [k for k in d if k not in KNOWN]
    if unknown:
        raise HarnessError(f"{where}: unknown key '{unknown[0]}'; known: {', '.join(KNOWN)}")
    example_id = d.get("id", d.get("example_id"))
    if isinstance(example_id, int) and not isinstance(example_id, bool):
        example_id = str(example_id)
    if not isinstance(example_id, str) or not example_id:
        raise HarnessError(f"{where}: 'id' must be the id of a test example")
    output = d.get("output")
    if not isinstance(output, str):
        raise HarnessError(f"{where}: 'output' must be the output's text, got {type(output).__name__}")
    cost = {k: _number(d[k], k, where, k.endswith("tokens")) for k in COST_FIELDS
            if d.get(k) not in (None, "")}
    return GivenOutput(example_id, output, int(where.rsplit(":", 1)[1]), cost.get("latency_s", 0.0),
                       int(cost.get("prompt_tokens", 0)), int(cost.get("output_tokens", 0)), cost.get("usd"))


def read_outputs(path: Path) -> list[GivenOutput]:
    """Every line of a JSONL or CSV outputs file (HarnessError at the first bad one)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HarnessError(f"outputs: {path}: no such file") from None
    except OSError as e:
        raise HarnessError(f"outputs: {path}: cannot read it ({e.strerror})") from None
    rows = file_rows(path, data, column="output", missing_column="the header needs 'id' and 'output' columns")
    out: list[GivenOutput] = []
    seen: dict[str, int] = {}
    for number, d in rows:
        given = _row(d, f"{path}:{number}")
        if given.example_id in seen:
            raise HarnessError(f"{path}:{number}: id '{given.example_id}' is given twice (first at line "
                               f"{seen[given.example_id]})")
        seen[given.example_id] = number
        out.append(given)
    if not out:
        raise HarnessError(f"{path}: no outputs in the file")
    return out


class OutputsStrategy(Strategy):
    kind = "outputs"
    options: ClassVar[dict[str, Any]] = {"path": ""}

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        if not self.params["path"]:
            raise HarnessError("strategy 'outputs' needs path=FILE (JSONL or CSV of id and output)")
        self.path = Path(str(self.params["path"])).expanduser().resolve()
        self.given = {g.example_id: g for g in read_outputs(self.path)}  # bad input stops the run now
        self.missing: list[str] = []

    def answer_mode(self, default: AnswerMode) -> AnswerMode:
        if self.answer.get("answer", "free") != "free":
            raise HarnessError(f"strategy '{self.name}': its outputs are given, so no answer mode applies "
                               "(answer=free only)")
        return AnswerMode()  # whatever the run's --answer: nothing is decoded here

    def uses_train(self) -> bool:
        return False

    def check(self, suite: Suite) -> None:
        ids = {e.id for e in suite.test}
        for g in self.given.values():
            if g.example_id not in ids:
                raise HarnessError(f"{self.path}:{g.line}: id '{g.example_id}' is no test example of suite "
                                   f"'{suite.name}'")

    def prepare(self, suite: Suite, ctx: StrategyContext) -> Prepared:
        self.suite = suite
        return Prepared(artifacts={"outputs": sha256_file(self.path)})

    def prompts(self, examples: Sequence[Example]) -> list[Prompt]:
        raise HarnessError(f"strategy '{self.name}': its outputs are given; nothing is decoded")

    def given_outputs(self, examples: Sequence[Example]) -> list[Output]:
        """The file's outputs for `examples`, in their order; an example without one is an invalid answer."""
        self.missing = [e.id for e in examples if e.id not in self.given]
        self.usd = [self.given[e.id].usd for e in examples if e.id in self.given]
        return [Output(self.name, e.id, g.output, g.latency_s, g.prompt_tokens, g.output_tokens)
                if (g := self.given.get(e.id)) is not None else Output(self.name, e.id, "", 0.0, 0, 0, error=MISSING)
                for e in examples]

    def details(self) -> dict[str, Any]:
        usd = getattr(self, "usd", [])
        return {"outputs": {"path": str(self.path), "sha256": sha256_file(self.path), "given": len(self.given),
                            "missing": len(self.missing), "missing_ids": self.missing[:LISTED],
                            "usd": sum(u for u in usd if u is not None) if usd and all(u is not None for u in usd)
                            else None}}
