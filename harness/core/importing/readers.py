"""Readers of local files, streamed line by line: JSON lines, CSV and TSV.

Each yields a Record per row with its `file:line`, so a bad row is reported where it is. Files are
read in binary and split at `\\n` only (harness.core.jsonl's rule: U+2028 inside a JSON string is
no line end). Progress is counted in KiB read. What is wrong with the whole file (no header, not
UTF-8, a malformed CSV quote) stops the import with a HarnessError naming file and line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from harness.core import jsonl
from harness.core.errors import HarnessError
from harness.core.importing.rows import ProgressFn, Record
from harness.core.suites.problems import _show

# Report progress every this many rows: often enough for a smooth bar, rarely enough to cost nothing.
PROGRESS_EVERY = 2000
# csv's default field limit is 128 KiB; a long document in one cell is legitimate. A suite line may
# hold 16 MiB (harness.core.suites.MAX_LINE_BYTES), so a cell may too.
MAX_FIELD = 16 << 20


class _Bytes:
    """Lines of a binary file, counting bytes read for the progress bar."""

    def __init__(self, f: IO[bytes], path: Path, progress: ProgressFn):
        self.f, self.path, self.progress = f, path, progress
        self.total = path.stat().st_size >> 10  # KiB: what the bar shows
        self.done = 0
        self.what = f"reading {path.name} (KiB)"

    def lines(self) -> Iterator[tuple[int, bytes]]:
        for n, raw in enumerate(self.f, 1):
            self.done += len(raw)
            if n % PROGRESS_EVERY == 0:
                self.progress(self.what, self.done >> 10, self.total)
            if n == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
            yield n, raw.removesuffix(b"\n").removesuffix(b"\r")
        self.progress(self.what, self.total, self.total)


def read_jsonl(path: Path, progress: ProgressFn) -> Iterator[Record]:
    """One Record per non-blank line; a line that is not a JSON object carries its error."""
    with open(path, "rb") as f:
        for n, raw in _Bytes(f, path, progress).lines():
            if not raw.strip():
                continue
            where = f"{path}:{n}"
            try:
                value = jsonl.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                yield Record(where, n, error=f"not UTF-8 text (byte {e.start + 1} of the line)")
                continue
            except ValueError as e:
                yield Record(where, n, error=str(e))
                continue
            if not isinstance(value, dict):
                yield Record(where, n, error=f"expected a JSON object, got {type(value).__name__}")
            else:
                yield Record(where, n, value)


def _text_lines(lines: Iterator[tuple[int, bytes]], path: Path) -> Iterator[str]:
    for n, raw in lines:
        try:
            yield raw.decode("utf-8") + "\n"
        except UnicodeDecodeError as e:
            raise HarnessError(f"{path}:{n}: not UTF-8 text (byte {e.start + 1} of the line); "
                               "save the file as UTF-8") from None


def read_table(path: Path, delimiter: str, columns: tuple[str, ...], progress: ProgressFn) -> Iterator[Record]:
    """CSV (`delimiter` ",", quoted fields may span lines) or TSV ("\\t", no quoting: a `"` is
    text). The first line names the columns, unless `columns` does (a file without a header)."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD))
    with open(path, "rb") as f:
        lines = _text_lines(_Bytes(f, path, progress).lines(), path)
        if delimiter == "\t":
            reader = csv.reader(lines, delimiter=delimiter, quoting=csv.QUOTE_NONE)
        else:  # strict: a stray or unterminated quote is an error at its line, not a row swallowing the rest
            reader = csv.reader(lines, delimiter=delimiter, strict=True)
        try:
            header: list[str] | None = list(columns) or next(reader, None)
            if header is None:
                raise HarnessError(f"{path}: empty file: the first line must name the columns")
            _check_header(path, header, given=bool(columns))
            last = 0 if columns else reader.line_num
            for cells in reader:
                start, last = last + 1, reader.line_num
                if not cells or cells == [""]:  # a blank line
                    continue
                yield _table_record(path, start, header, cells)
        except csv.Error as e:
            raise HarnessError(f"{path}:{reader.line_num}: malformed {'TSV' if delimiter == chr(9) else 'CSV'} ({e})") from None


def _check_header(path: Path, header: list[str], given: bool) -> None:
    where = "--columns" if given else f"{path}:1"
    names = [h.strip() for h in header]
    if any(not h for h in names):
        raise HarnessError(f"{where}: column {names.index('') + 1} has no name; name every column"
                           + ("" if given else " (or give the names with --columns for a file without a header)"))
    dups = sorted({h for h in names if names.count(h) > 1})
    if dups:
        raise HarnessError(f"{where}: column '{_show(dups[0])}' is named twice")
    header[:] = names


def _table_record(path: Path, line: int, header: list[str], cells: list[str]) -> Record:
    where = f"{path}:{line}"
    if len(cells) > len(header):
        return Record(where, line, error=f"{len(cells)} fields, but the header names {len(header)} columns")
    # A short row lacks its last cells: they are empty (None), so the row is bad when one is needed.
    return Record(where, line, {name: cells[i] if i < len(cells) else None for i, name in enumerate(header)})
