"""Rows of a table (CSV, TSV, JSON lines, Parquet, a dataset) -> Drafts, and the cell helpers the
chat layouts share. A converter returns a Draft, or a Bad saying why the row is no example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness.core.errors import HarnessError
from harness.core.importing.rows import Draft, RawTarget, Record
from harness.core.suites.problems import _json_type, _show
from harness.core.text import did_you_mean

# Column names tried, in order, when a table's --input / --target is not given.
INPUT_NAMES = ("input", "text", "question", "prompt", "sentence", "query", "utterance", "source", "document")
TARGET_NAMES = ("target", "label", "output", "answer", "intent", "category", "class", "response", "completion",
                "summary")


@dataclass(frozen=True)
class Bad:
    """Why a row (or one of its cells) cannot be used."""

    why: str


@dataclass(frozen=True)
class Columns:
    """Which fields of a row are what (--input a,b --target c --meta d,e --id f)."""

    input: tuple[str, ...] = ()
    target: str | None = None
    meta: tuple[str, ...] = ()
    id: str | None = None


def _names(names: list[str]) -> str:
    return ", ".join(_show(n, 40) for n in names[:30]) + (", ..." if len(names) > 30 else "")


def guess_columns(columns: Columns, names: list[str], where: str) -> tuple[Columns, str | None]:
    """--input / --target filled from the usual names when not given, and the note that says so."""
    if columns.input and columns.target:
        return columns, None
    lower = {n.casefold(): n for n in names}
    inp = columns.input or tuple(lower[c] for c in INPUT_NAMES if c in lower)[:1]
    tgt = columns.target or next((lower[c] for c in TARGET_NAMES if c in lower and lower[c] not in inp), None)
    if not inp or not tgt:
        missing = " and ".join(o for o, v in (("--input", inp), ("--target", tgt)) if not v)
        raise HarnessError(f"{where}: which columns are the input and the target? pass {missing} (columns: {_names(names)})")
    note = f"columns: input {', '.join(inp)}, target {tgt} (by their names; --input / --target choose others)"
    return Columns(inp, tgt, columns.meta, columns.id), note


def check_columns(columns: Columns, names: list[str], where: str, shape: str) -> None:
    """Every column the options name is in the first row (else a typo: stop before reading on)."""
    if shape != "columns" and (columns.input or columns.target):
        raise HarnessError(f"--input and --target choose the columns of a table; {shape} rows say "
                           "themselves which text is the input and which the answer")
    wanted = [*columns.input, *([columns.target] if columns.target else []), *columns.meta,
              *([columns.id] if columns.id else [])]
    for col in wanted:
        if col not in names:
            raise HarnessError(f"{where}: no column '{_show(col)}'{did_you_mean(col, names)}; columns: {_names(names)}")


def cell_text(value: Any, what: str) -> str | None | Bad:
    """A cell as text (numbers and booleans written out); None when absent or blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return Bad(f"{what} must be text, got {_json_type(value)}")


def cell_target(value: Any) -> RawTarget | Bad:
    """Text, several references (a list of texts) or an object of fields (extraction)."""
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, str) and v.strip() for v in value):
            return tuple(v.strip() for v in value)
        return Bad("target must be text, a list of texts or an object of fields")
    text = cell_text(value, "target")
    return Bad("empty target") if text is None else text


def meta_and_id(obj: dict[str, Any], columns: Columns) -> tuple[dict[str, Any], str | None] | Bad:
    """The --meta columns (one value each: they name slices) and the --id column of a row."""
    meta: dict[str, Any] = {}
    for col in columns.meta:
        if col not in obj:
            return Bad(f"missing column '{_show(col)}'")
        value = obj[col]
        if isinstance(value, list | dict):
            return Bad(f"meta column '{_show(col)}' must hold one value (it names a slice), got {_json_type(value)}")
        meta[col] = None if isinstance(value, float) and not math.isfinite(value) else value
    if columns.id is None:
        return meta, None
    got = cell_text(obj.get(columns.id), f"id column '{_show(columns.id)}'")
    if got is None:
        return Bad(f"empty id (column '{_show(columns.id)}')")
    return got if isinstance(got, Bad) else (meta, got)


def from_columns(record: Record, columns: Columns) -> Draft | Bad:
    obj = record.value
    parts = []
    for col in columns.input:
        if col not in obj:
            return Bad(f"missing column '{_show(col)}'")
        text = cell_text(obj[col], f"input column '{_show(col)}'")
        if isinstance(text, Bad):
            return text
        if text is not None:
            parts.append(f"{col}: {text}" if len(columns.input) > 1 else text)
    if not parts:
        return Bad("empty input")
    assert columns.target is not None
    if columns.target not in obj:
        return Bad(f"missing column '{_show(columns.target)}'")
    target = cell_target(obj[columns.target])
    if isinstance(target, Bad):
        return target
    rest = meta_and_id(obj, columns)
    if isinstance(rest, Bad):
        return rest
    return Draft(record.where, record.number, "\n".join(parts), target, rest[0], rest[1])
