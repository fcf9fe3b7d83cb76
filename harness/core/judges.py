"""Judged metrics: what a `[[judges]]` table of suite.toml or run.toml declares, and each mode's grades.

A judge is a metric like any other (value, interval, paired tests, slices, gate, history) whose
per-example rows come from a model grading the outputs, in the scoring pass after decoding
(harness.runner.judging). Grades are scored on [0, 1] so every statistic treats them alike:

- reference: the output against the target: correct 1, partial 0.5, wrong 0;
- rubric: a 1-5 score on the rubric the suite writes, scored (grade - 1) / 4;
- pairwise: two strategies' outputs side by side, asked in both orders: a win 1, a tie 0.5, a
  loss 0 (a verdict that flips with the order is a tie).

A grade that cannot be read from the judge's reply is recorded, counted, and scored as the lowest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JUDGE_MODES = ("reference", "rubric", "pairwise")
JUDGE_ANSWERS = ("auto", "choice", "constrained", "free")  # how the grade comes out of the judge model
JUDGE_KEYS = ("name", "model", "mode", "rubric", "answer", "template", "strategies", "max_new_tokens")
DEFAULT_JUDGE_MODEL = "judge"  # the [[models]] name a judge uses unless it names another (or --judge-model)
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Grades:
    """A mode's grades, worst first, and what each scores."""

    labels: tuple[str, ...]
    values: tuple[float, ...]
    ordinal: bool = True

    @property
    def lowest(self) -> str:
        return self.labels[0]

    def value(self, grade: str) -> float:
        return self.values[self.labels.index(grade)]


GRADES: dict[str, Grades] = {
    "reference": Grades(("wrong", "partial", "correct"), (0.0, 0.5, 1.0)),
    "rubric": Grades(("1", "2", "3", "4", "5"), (0.0, 0.25, 0.5, 0.75, 1.0)),
    # A and B name the places in the judge's prompt, not strategies: see harness.runner.judging.
    "pairwise": Grades(("B", "tie", "A"), (0.0, 0.5, 1.0)),
}


@dataclass(frozen=True)
class JudgeSpec:
    """One `[[judges]]` table: the metric `name`, the [[models]] entry that grades (`model`), the
    `mode`, the `rubric` (rubric mode), how the grade is read (`answer`: auto takes label
    likelihood where the judge's backend gives it, else constrained decoding, else free text),
    an optional own prompt `template`, the `strategies` it grades (pairwise: the pair; empty:
    every strategy, every pair) and the tokens a free-text grade may take."""

    name: str
    model: str = DEFAULT_JUDGE_MODEL
    mode: str = "reference"
    rubric: str = ""
    answer: str = "auto"
    template: str = ""
    strategies: tuple[str, ...] = ()
    max_new_tokens: int = 8

    @property
    def grades(self) -> Grades:
        return GRADES[self.mode]

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> JudgeSpec:
        """A checked table (see `judge_problems`) as a spec."""
        strategies = table.get("strategies", ())
        return cls(name=table["name"], model=table.get("model", DEFAULT_JUDGE_MODEL),
                   mode=table.get("mode", "reference"), rubric=table.get("rubric", ""),
                   answer=table.get("answer", "auto"), template=table.get("template", ""),
                   strategies=tuple(strategies), max_new_tokens=int(table.get("max_new_tokens", 8)))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "mode": self.mode, "rubric": self.rubric,
                "answer": self.answer, "template": self.template, "strategies": list(self.strategies),
                "max_new_tokens": self.max_new_tokens}


PLACEHOLDERS = {
    "reference": ("{input}", "{output}", "{reference}"),
    "rubric": ("{input}", "{output}"),
    "pairwise": ("{input}", "{output_a}", "{output_b}"),
}


def judge_problems(table: Any) -> list[tuple[str | None, str]]:
    """Every problem of one [[judges]] table as (the key it is about or None, message)."""
    if not isinstance(table, dict):
        return [(None, "'judges' should be [[judges]] tables")]
    out: list[tuple[str | None, str]] = []
    for key in table:
        if key not in JUDGE_KEYS:
            from harness.core.text import did_you_mean

            out.append((key, f"unknown key '{key}' in a [[judges]] table{did_you_mean(key, JUDGE_KEYS)}; "
                             f"known: {', '.join(JUDGE_KEYS)}"))
    name = table.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        out.append(("name" if "name" in table else None,
                    "a [[judges]] table needs a 'name' (the metric's name: a letter, then letters, digits, "
                    f"'_', '.' or '-'), got {name!r}"))
    for key in ("model", "rubric", "template"):
        if key in table and not isinstance(table[key], str):
            out.append((key, f"'{key}' should be a string, got {table[key]!r}"))
    if "model" in table and isinstance(table["model"], str) and not table["model"].strip():
        out.append(("model", "'model' should name a [[models]] entry"))
    mode = table.get("mode", "reference")
    if mode not in JUDGE_MODES:
        out.append(("mode", f"'mode' should be one of {', '.join(JUDGE_MODES)}, got {mode!r}"))
    if table.get("answer", "auto") not in JUDGE_ANSWERS:
        out.append(("answer", f"'answer' should be one of {', '.join(JUDGE_ANSWERS)}, got {table['answer']!r}"))
    if mode == "rubric" and not (isinstance(table.get("rubric"), str) and table["rubric"].strip()):
        out.append(("rubric" if "rubric" in table else "mode", "a rubric judge needs a 'rubric': what a 1 and a 5 mean"))
    strategies = table.get("strategies", [])
    if not isinstance(strategies, list) or not all(isinstance(s, str) and s for s in strategies):
        out.append(("strategies", f"'strategies' should be a list of strategy names, got {strategies!r}"))
    elif mode == "pairwise" and strategies and len(strategies) != 2:
        out.append(("strategies", f"a pairwise judge compares two strategies, got {len(strategies)}"))
    elif len(set(strategies)) != len(strategies):
        out.append(("strategies", "'strategies' names a strategy twice"))
    tokens = table.get("max_new_tokens", 8)
    if not isinstance(tokens, int) or isinstance(tokens, bool) or not 1 <= tokens <= 4096:
        out.append(("max_new_tokens", f"'max_new_tokens' should be a whole number from 1 to 4096, got {tokens!r}"))
    template = table.get("template", "")
    if isinstance(template, str) and template and mode in PLACEHOLDERS:
        missing = [p for p in PLACEHOLDERS[mode] if p not in template]
        if missing:
            out.append(("template", f"a {mode} judge's template must contain {', '.join(missing)}"))
    return out


def duplicate_names(specs: list[JudgeSpec]) -> list[tuple[int, str]]:
    """(entry, message) for every judge whose name an earlier one took."""
    seen: dict[str, int] = {}
    out = []
    for i, spec in enumerate(specs):
        if spec.name in seen:
            out.append((i, f"judge '{spec.name}' is declared twice ([[judges]] entry {seen[spec.name] + 1})"))
        seen.setdefault(spec.name, i)
    return out


JUDGEMENTS_FILE = "judgements.jsonl"  # in the run folder: every grade, the judge's reply with it


@dataclass(frozen=True)
class Judgement:
    """One grade of one output (pairwise: of one order of a pair): what the judge replied, the
    grade read from it (None: unparsable, or `error`: the request failed, or `invalid`: the output
    was an invalid answer and was not sent), its score and what it cost."""

    judge: str
    strategy: str
    example_id: str
    reply: str
    grade: str | None
    value: float
    error: str | None = None
    invalid: bool = False
    opponent: str | None = None  # pairwise: the other strategy
    shown_first: bool | None = None  # pairwise: whether `strategy`'s answer was A
    prompt_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return {k: v for k, v in out.items() if v is not None and not (k == "invalid" and not v)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Judgement:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)
