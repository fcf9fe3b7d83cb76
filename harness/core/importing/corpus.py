"""A knowledge base for retrieval -> corpus.jsonl rows ({"id", "title", "text"}).

From JSON lines or a CSV / TSV (columns `id`, `title`, `text`, or --corpus-text COL; a missing id
is made from the row number), or from a folder of .txt / .md files: one document each, its id the
path inside the folder, its title the first Markdown heading, else the file name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.importing.convert import Bad, cell_text
from harness.core.importing.readers import read_jsonl, read_table
from harness.core.importing.rows import BadRows, ProgressFn, Record
from harness.core.suites.problems import _show
from harness.core.text import did_you_mean

DOC_SUFFIXES = (".txt", ".md", ".markdown")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Corpus:
    rows: list[dict[str, str]]
    source: str  # what it was read from, for the README
    note: str  # how, for the summary


def read_corpus(path: Path, text_col: str | None, bad: BadRows, progress: ProgressFn) -> Corpus:
    path = path.expanduser()
    if path.is_dir():
        rows = _folder(path, bad)
        note = f"{len(rows)} document(s) from the .txt / .md files of {path}"
    elif not path.is_file():
        raise HarnessError(f"--corpus {path}: no such file or folder")
    else:
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            records: Iterator[Record] = read_jsonl(path, progress)
        elif suffix in (".csv", ".tsv"):
            records = read_table(path, "\t" if suffix == ".tsv" else ",", (), progress)
        else:
            raise HarnessError(f"--corpus {path}: give a .jsonl, .csv or .tsv file, or a folder of .txt / .md files")
        rows, col = _rows(records, text_col, bad, path)
        note = f"{len(rows)} passage(s) from {path} (text column '{col}')"
    if not rows:
        raise HarnessError(f"--corpus {path}: no documents in it")
    return Corpus(rows, str(path), note)


def _folder(root: Path, bad: BadRows) -> list[dict[str, str]]:
    rows = []
    for folder, dirs, files in os.walk(root):  # symlinked folders are not followed: nothing outside
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if name.startswith(".") or path.suffix.lower() not in DOC_SUFFIXES:
                continue
            rel = path.relative_to(root).as_posix()
            try:
                text = path.read_bytes().decode("utf-8").removeprefix("\ufeff").strip()
            except UnicodeDecodeError as e:
                bad.add(str(path), f"not UTF-8 text (byte {e.start + 1})")
                continue
            except OSError as e:
                bad.add(str(path), f"cannot read ({e.strerror or type(e).__name__})")
                continue
            if not text:
                bad.add(str(path), "empty document")
                continue
            rows.append({"id": rel, "title": _title(text, path), "text": text})
    return rows


def _title(text: str, path: Path) -> str:
    if path.suffix.lower() != ".txt":
        for line in text.splitlines():
            m = _HEADING.match(line)
            if m:
                return m.group(1)
    return path.stem.replace("_", " ").replace("-", " ")


def _rows(records: Iterator[Record], text_col: str | None, bad: BadRows, path: Path) -> tuple[list[dict[str, str]], str]:
    rows: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    col: str | None = None
    for record in records:
        if record.error is not None:
            bad.add(record.where, record.error)
            continue
        if col is None:
            col = _text_column(record.value, text_col, path)
        row = _passage(record, col)
        if isinstance(row, Bad):
            bad.add(record.where, row.why)
        elif row["id"] in seen:
            bad.add(record.where, f"duplicate corpus id '{_show(row['id'])}' (first at {seen[row['id']]})")
        else:
            seen[row["id"]] = record.where
            rows.append(row)
    return rows, col or (text_col or "text")


def _text_column(first: dict[str, Any], text_col: str | None, path: Path) -> str:
    names = list(first)
    col = text_col or ("text" if "text" in first else None)
    if col is None or col not in first:
        hint = f"no column '{_show(col)}'{did_you_mean(col, names)}" if col else "which column is the text?"
        raise HarnessError(f"--corpus {path}: {hint}; pass --corpus-text COL (columns: {', '.join(names[:30])})")
    return col


def _passage(record: Record, col: str) -> dict[str, str] | Bad:
    obj = record.value
    text = cell_text(obj.get(col), f"corpus '{col}'")
    if text is None:
        return Bad(f"empty corpus text (column '{_show(col)}')")
    doc_id = cell_text(obj.get("id"), "corpus 'id'") if "id" in obj else f"doc-{record.number:06d}"
    title = cell_text(obj.get("title"), "corpus 'title'")
    for value in (text, doc_id, title):
        if isinstance(value, Bad):
            return value
    if doc_id is None:
        return Bad("empty corpus id")
    return {"id": str(doc_id), "title": str(title or ""), "text": str(text)}
