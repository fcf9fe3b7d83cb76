"""People's grades of outputs: what a judge is validated against (`human.jsonl` in the suite, or
`--human FILE`; JSONL or CSV, the form `sft-harness judge-sample` writes, filled in).

One row per graded output:
- `example_id`, and `strategy` (the output of that strategy) or `output` (an output by its exact
  text, whichever strategy wrote it), and `grade`: "correct", "partial" or "wrong" (reference
  mode), a whole number 1-5 (rubric mode);
- pairwise: `example_id`, `strategies` = [A, B] (CSV: "A vs B") and `grade` "A", "B" or "tie";
- optionally `judge`: the judge the grade is for, when a suite has several of one mode.
A row with an empty grade is a sample not graded yet: skipped. Anything else wrong is one line
naming the file and line (exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.judges import GRADES
from harness.core.tables import file_rows

HUMAN_FILE = "human.jsonl"
KEYS = ("example_id", "strategy", "output", "strategies", "grade", "judge")
# A judge-sample form carries what the grader reads; those columns are not grades.
FORM_KEYS = ("input", "reference", "output_a", "output_b", "note", "sample")


@dataclass(frozen=True)
class HumanGrade:
    example_id: str
    grade: str  # a label of GRADES[mode]
    mode: str  # reference, rubric or pairwise: what the grade is
    strategy: str | None = None
    output: str | None = None
    pair: tuple[str, str] | None = None  # pairwise: (shown as A, shown as B)
    judge: str | None = None
    where: str = ""  # file:line


@dataclass(frozen=True)
class HumanGrades:
    path: Path
    grades: tuple[HumanGrade, ...]
    ungraded: int  # rows left blank


def _grade(value: Any) -> tuple[str, str] | None:
    """(mode, label) of a grade as a person wrote it, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        value = str(int(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    for mode, grades in GRADES.items():
        for label in grades.labels:
            if text == label or (mode != "pairwise" and text.casefold() == label.casefold()) \
                    or (label == "tie" and text.casefold() == "tie"):
                return mode, label
    return None


def _row(d: Any, where: str) -> HumanGrade | None:
    if not isinstance(d, dict):
        raise HarnessError(f"{where}: expected an object with example_id, strategy (or output) and grade")
    unknown = [k for k in d if k not in KEYS and k not in FORM_KEYS]
    if unknown:
        raise HarnessError(f"{where}: unknown key '{unknown[0]}'; known: {', '.join(KEYS)}")
    example_id = d.get("example_id")
    if not isinstance(example_id, str) or not example_id:
        raise HarnessError(f"{where}: 'example_id' must be the id of a test example")
    raw = d.get("grade")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None  # not graded yet
    found = _grade(raw)
    if found is None:
        raise HarnessError(f"{where}: grade {raw!r} is none of: correct, partial, wrong (reference); 1-5 (rubric); "
                           "A, B, tie (pairwise)")
    mode, label = found
    judge = d.get("judge") or None
    if judge is not None and not isinstance(judge, str):
        raise HarnessError(f"{where}: 'judge' must be a judge's name")
    if mode == "pairwise":
        pair = d.get("strategies")
        if isinstance(pair, str):
            pair = [p.strip() for p in pair.split(" vs ")]
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) and p for p in pair)
                and pair[0] != pair[1]):
            raise HarnessError(f"{where}: a pairwise grade needs 'strategies': the two strategies shown as A and B")
        return HumanGrade(example_id, label, mode, pair=(pair[0], pair[1]), judge=judge, where=where)
    strategy, output = d.get("strategy") or None, d.get("output")
    if strategy is None and not isinstance(output, str):
        raise HarnessError(f"{where}: a grade needs 'strategy' (whose output it is) or 'output' (its exact text)")
    if strategy is not None and not isinstance(strategy, str):
        raise HarnessError(f"{where}: 'strategy' must be a strategy's name")
    return HumanGrade(example_id, label, mode, strategy=strategy,
                      output=output if strategy is None else None, judge=judge, where=where)


def read_human(path: Path) -> HumanGrades:
    """Every graded row of a JSONL or CSV file (HarnessError at the first bad one)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HarnessError(f"{path}: human grades file not found") from None
    except OSError as e:
        raise HarnessError(f"{path}: cannot read the human grades ({e.strerror})") from None
    grades: list[HumanGrade] = []
    ungraded = 0
    for number, row in _rows(path, data):
        g = _row(row, f"{path}:{number}")
        if g is None:
            ungraded += 1
        else:
            grades.append(g)
    return HumanGrades(path, tuple(grades), ungraded)


def _rows(path: Path, data: bytes) -> list[tuple[int, Any]]:
    rows = file_rows(path, data, column="example_id",
                     missing_column="a CSV of grades needs a header row with example_id and grade")
    if path.suffix.lower() not in (".csv", ".tsv"):
        return rows
    out = []  # a form's row: empty cells are absent, an empty row is no row, the grade always there
    for number, row in rows:
        clean = {k: v for k, v in row.items() if v not in (None, "")}
        if clean:
            out.append((number, {**clean, "grade": row.get("grade") or ""}))
    return out
