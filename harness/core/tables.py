"""Rows of a file a user hands in (outputs produced elsewhere, people's grades): JSON Lines, or CSV
and TSV by the file's suffix, each row with the line it starts on, so every problem can be told as
`file:line: why` (HarnessError)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from harness.core import jsonl
from harness.core.errors import HarnessError


def file_rows(path: Path, data: bytes, *, column: str, missing_column: str) -> list[tuple[int, Any]]:
    """(line number, row) of every row: a CSV/TSV row as a dict of its header's columns (a row
    longer than the header loses the extra cells), a JSONL line as its JSON value. A table whose
    header lacks `column` is refused with `missing_column` at line 1; a bad JSON line at its line."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise HarnessError(f"{path}: not UTF-8 text") from None
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        if reader.fieldnames is None or column not in reader.fieldnames:
            raise HarnessError(f"{path}:1: {missing_column}")
        return [(reader.line_num, {k: v for k, v in r.items() if k is not None}) for r in reader]
    rows: list[tuple[int, Any]] = []
    for line in jsonl.parse_lines(data):
        if line.error is not None:
            raise HarnessError(f"{path}:{line.number}: {line.error}")
        rows.append((line.number, line.value))
    return rows
