"""The problems of a suite, each `file:line: message`, and how values from a suite are shown in them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _show(value: Any, limit: int = 60) -> str:
    """A user-given value for a message: bounded, so a megabyte key cannot flood the output, and
    with control characters escaped, so none can break the `file:line: message` lines."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return _printable(text)


def _printable(text: str) -> str:
    return text if text.isprintable() else "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"  # dates and times


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1 << 20 else f"{n / (1 << 20):.0f} MiB"


def _toml_string(value: str) -> str:
    """`value` written as a TOML basic string (JSON's escapes are TOML's), for hints."""
    return json.dumps(value, ensure_ascii=False)


@dataclass
class _Problems:
    """Every problem found, in order; at most `limit` listed per file, the rest counted."""

    limit: int  # the package's MAX_PROBLEMS_PER_FILE, read when the loading starts
    items: list[str] = field(default_factory=list)
    per_file: dict[str, int] = field(default_factory=dict)

    def add(self, file: Path, line: int | None, message: str) -> None:
        key = str(file)
        count = self.per_file[key] = self.per_file.get(key, 0) + 1
        if count > self.limit:
            return
        where = _printable(f"{file}:{line}" if line else f"{file}")
        self.items.append(f"{where}: {message}")

    def finish(self) -> list[str]:
        for key, count in self.per_file.items():
            if count > self.limit:
                self.items.append(
                    f"{_printable(key)}: {count - self.limit} more problem(s) not listed "
                    f"(the first {self.limit} are)"
                )
        return self.items
