"""The sources of an import opened as parts (one per split they already have), their layout
detected, and every row drafted into an example or counted as bad."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.importing import hf
from harness.core.importing.chat import CONVERTERS
from harness.core.importing.convert import Bad, Columns, check_columns, from_columns, guess_columns
from harness.core.importing.detect import Container, detect_container, detect_shape
from harness.core.importing.readers import read_jsonl, read_table
from harness.core.importing.rows import BadRows, Draft, ProgressFn, Record
from harness.core.suites.problems import _show

PEEK = 50  # rows looked at to tell the layout
Converter = Callable[[Record, Columns], "Draft | Bad"]


@dataclass(frozen=True)
class Part:
    split: str  # train | test | validation, or "all": one source the importer splits itself
    prefix: str  # generated ids are PREFIX-000042 (the row's number in its source)
    where: str  # the file or dataset[split], for messages and the README
    records: Iterator[Record]


@dataclass(frozen=True)
class Opened:
    parts: list[Part]
    shape: str  # openai | sharegpt | alpaca | columns
    columns: Columns  # with --input / --target filled in for tables
    notes: list[str]


def _open_one(ref: str, fmt: str | None, split: str, header: tuple[str, ...], hf_split: str | None,
              hf_config: str | None, progress: ProgressFn) -> tuple[Container, list[Part]]:
    found = detect_container(ref, fmt)
    path = Path(ref).expanduser()
    prefix = "row" if split == "all" else split
    if found.kind == "jsonl":
        return found, [Part(split, prefix, str(path), read_jsonl(path, progress))]
    if found.kind in ("csv", "tsv"):
        records = read_table(path, "\t" if found.kind == "tsv" else ",", header, progress)
        return found, [Part(split, prefix, str(path), records)]
    if found.kind == "hf-disk":
        loaded = hf.open_saved(path, hf_split)
    elif found.kind == "hf-files":
        loaded = hf.open_files(path, hf_split)
    else:
        loaded = hf.open_hub(ref, hf_config, hf_split)
    left_out = [p for p in loaded if not p.split]
    if left_out:
        found = dataclasses.replace(found, reason=f"{found.reason}; split(s) left out: "
                                    + ", ".join(f"{p.where} ({p.total or 0:,} rows)" for p in left_out))
    parts = [Part(split, prefix, p.where, hf.records(p, progress)) if p.split == "all"
             else Part(p.split, p.split, p.where, hf.records(p, progress)) for p in loaded if p.split]
    if len(parts) == 1 and parts[0].split == "train" and split == "all":
        parts = [dataclasses.replace(parts[0], split="all", prefix="row")]  # a train split alone: split it
    return found, parts


def _peek(part: Part) -> tuple[Part, list[Record]]:
    head = list(itertools.islice(part.records, PEEK))
    return dataclasses.replace(part, records=itertools.chain(head, part.records)), head


def open_sources(given: list[tuple[str, str]], fmt: str | None, columns: Columns, header: tuple[str, ...],
                 hf_split: str | None, hf_config: str | None, progress: ProgressFn) -> Opened:
    """`given`: (split, file or dataset) pairs; a single ("all", SOURCE) is split by the importer."""
    parts: list[Part] = []
    notes: list[str] = []
    shape: str | None = None
    for split, ref in given:
        found, opened = _open_one(ref, fmt, split, header, hf_split, hf_config, progress)
        for part in opened:
            part, head = _peek(part)
            good = [r.value for r in head if r.error is None]
            if not good:
                raise HarnessError(f"{part.where}: no rows" if not head else
                                   f"{head[0].where}: {head[0].error}; none of the first {len(head)} row(s) can be "
                                   "read, so their layout cannot be told: is this the right file?")
            part_shape, why = detect_shape(good, fmt, found.kind)
            if shape is None:
                shape = part_shape
                notes.append(f"format: {_fmt(found, part_shape)} ({found.reason}{'; ' + why if why else ''})")
            elif part_shape != shape:
                raise HarnessError(f"{part.where}: its rows are {part_shape}, but {parts[0].where}'s are {shape}; "
                                   "give files of one layout (or --format)")
            names = list(good[0])
            if part_shape == "columns" and not parts:
                columns, note = guess_columns(columns, names, part.where)
                notes += [note] if note else []
            check_columns(columns, names, part.where, part_shape)
            parts.append(part)
    assert shape is not None
    return Opened(parts, shape, columns, notes)


def _fmt(found: Container, shape: str) -> str:
    if shape != "columns":
        return shape
    return {"hf-disk": "hf (save_to_disk)", "hf-files": "hf (data file)", "hub": "hf (hub)"}.get(found.kind, found.kind)


def draft_rows(opened: Opened, bad: BadRows) -> dict[str, list[Draft]]:
    """Every row of every part as a Draft (ids from --id checked unique across all), bad ones counted."""
    convert: Converter = CONVERTERS.get(opened.shape, from_columns)
    out: dict[str, list[Draft]] = {}
    seen: dict[str, str] = {}
    for part in opened.parts:
        rows = out.setdefault(part.split, [])
        for record in part.records:
            if record.error is not None:
                bad.add(record.where, record.error)
                continue
            draft = convert(record, opened.columns)
            if isinstance(draft, Bad):
                bad.add(record.where, draft.why)
                continue
            if draft.id is None:
                draft = dataclasses.replace(draft, id=f"{part.prefix}-{draft.number:06d}")
            elif draft.id in seen:
                bad.add(record.where, f"duplicate id '{_show(draft.id)}' (first at {seen[draft.id]})")
                continue
            seen[str(draft.id)] = record.where
            rows.append(draft)
    return out
