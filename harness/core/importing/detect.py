"""Which reader a source needs (its container) and how its rows are laid out (their shape), from
`--format` or from the content; each choice comes with the one-line reason the CLI prints."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.importing.hf import is_saved_dataset
from harness.core.suites.problems import _show

SHAPES = ("openai", "sharegpt", "alpaca")  # --format values that name a row layout
CONTAINERS = ("csv", "tsv", "jsonl", "parquet", "hf")  # --format values that name a reader
FORMATS = (*SHAPES, *CONTAINERS)
DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt", ".md", ".arrow")
# `owner/name` or `name` on the Hugging Face Hub (what is not a path to a local file).
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
SNIFF_BYTES = 64 << 10


@dataclass(frozen=True)
class Container:
    """kind: jsonl | csv | tsv | hf-disk (save_to_disk) | hf-files (datasets builder) | hub."""

    kind: str
    reason: str


def detect_container(ref: str, forced: str | None) -> Container:
    path = Path(ref).expanduser()
    if path.is_dir():
        if not is_saved_dataset(path):
            raise HarnessError(f"{path}: a folder, but not one written by datasets' save_to_disk "
                               "(no dataset_dict.json or state.json); give a data file")
        return Container("hf-disk", "a folder written by datasets' save_to_disk")
    if not path.exists():
        if forced == "hf" or (_HUB_ID.fullmatch(ref) and not ref.lower().endswith(DATA_SUFFIXES)):
            return Container("hub", "no such local file: a dataset name on the Hugging Face Hub")
        raise HarnessError(f"{path}: no such file")
    if not path.is_file():
        raise HarnessError(f"{path}: not a regular file")
    if forced == "hf":
        return Container("hf-files", f"--format hf: read by datasets' {path.suffix.lstrip('.') or 'json'} builder")
    if forced in ("csv", "tsv", "jsonl"):
        return Container(forced, f"--format {forced}")
    if forced == "parquet" or path.suffix.lower() == ".parquet":
        why = "--format parquet" if forced else "the name ends in .parquet"
        return Container("hf-files", f"{why}: read by datasets' parquet builder")
    return _sniff(path)


def _sniff(path: Path) -> Container:
    """A text file: JSON lines, a JSON array, or a table whose delimiter the first line shows."""
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES).removeprefix(b"\xef\xbb\xbf")
    text = head.decode("utf-8", errors="replace")
    start = text.lstrip()
    if not start:
        raise HarnessError(f"{path}: empty file")
    if start[0] == "{":
        return Container("jsonl", "lines of JSON objects")
    if start[0] == "[":
        return Container("hf-files", "a JSON array, read by datasets' json builder")
    first = text.split("\n", 1)[0]
    tabs, commas = first.count("\t"), first.count(",")
    if tabs and tabs >= commas:
        return Container("tsv", f"its first line has {tabs + 1} tab-separated columns")
    if commas:
        return Container("csv", f"its first line has {commas + 1} comma-separated fields")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return Container(suffix[1:], f"one column, and the name ends in {suffix}")
    raise HarnessError(f"{path}: cannot tell the format (not JSON lines, no tab or comma on the first line); "
                       f"pass --format ({', '.join(FORMATS)})")


def detect_shape(rows: list[dict[str, Any]], forced: str | None, kind: str) -> tuple[str, str]:
    """(openai | sharegpt | alpaca | columns, why) from the first good rows, unless --format says."""
    if forced in SHAPES:
        return forced, f"--format {forced}"
    if forced in ("csv", "tsv", "jsonl") or kind in ("csv", "tsv"):
        return "columns", ""
    for key, shape, what in (("messages", "openai", "'messages' (chat turns)"),
                             ("conversations", "sharegpt", "'conversations' (from/value turns)")):
        if rows and sum(isinstance(r.get(key), list) for r in rows) * 2 > len(rows):
            return shape, f"rows with {what}"
    if rows and sum("instruction" in r and "output" in r for r in rows) * 2 > len(rows):
        return "alpaca", "rows with 'instruction' and 'output'"
    keys = ", ".join(_show(k, 30) for k in list(rows[0])[:8]) if rows else "none"
    return "columns", f"rows of columns {keys}, no chat or instruction layout"
