"""JSON Lines, read and appended safely: the one place that knows what a line is.

- A line ends at `\\n` only. `str.splitlines()` also splits on U+2028, U+0085, `\\x1c`... which are
  legal inside a JSON string, so an output carrying one would be cut in two and never read back.
- Parsing never raises on hostile input: nesting deep enough to exhaust the recursion limit, or an
  integer with more digits than Python converts, is reported as that line's problem.
- Appending after a torn last line (a writer killed mid-line) starts on a fresh line, so the
  fragment stays one bad line and the new entry is never glued to it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Line:
    number: int  # 1-based
    value: Any  # the parsed JSON value, or None when `error` is set
    error: str | None = None


def loads(text: str | bytes) -> Any:
    """json.loads with every failure as ValueError (message fit for `file:line: ...`)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"bad JSON: {e.msg} (column {e.colno})") from None
    except RecursionError:
        raise ValueError("bad JSON: nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise ValueError(f"bad JSON: {str(e).split(';')[0]}") from None


def split_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line without its `\\n`) for every line, blank ones included."""
    for n, raw in enumerate(data.split(b"\n"), 1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        yield n, raw


def parse_lines(data: bytes) -> Iterator[Line]:
    """Parse every non-blank line; undecodable or invalid lines come back with `error` set."""
    for n, raw in split_lines(data):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield Line(n, None, f"not UTF-8 text (byte {e.start + 1} of the line)")
            continue
        try:
            yield Line(n, loads(text))
        except ValueError as e:
            yield Line(n, None, str(e))


def read(path: Path) -> Iterator[Line]:
    """Every non-blank line of a JSONL file (see parse_lines)."""
    yield from parse_lines(Path(path).read_bytes())


def dumps(obj: Any) -> str:
    """One JSON line (no trailing newline): UTF-8 as is, so reports stay readable."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, default=str)


def append(path: Path, objects: Iterable[Any]) -> None:
    """Append one line per object in a single write, flushed and fsynced; a torn last line
    left by a killed writer is closed first so no entry is lost or glued to it."""
    data = "".join(dumps(o) + "\n" for o in objects).encode("utf-8")
    if not data:
        return
    with open(path, "a+b") as f:
        end = f.seek(0, os.SEEK_END)
        if end > 0:
            f.seek(end - 1)
            if f.read(1) != b"\n":
                data = b"\n" + data
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
