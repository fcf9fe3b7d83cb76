"""`sft-harness run --config run.toml`: the run options in a file, checked with file:line errors.

tomllib gives values but no positions, so a key's line is found by scanning the text: top-level
keys come before the first table, and a `[[strategies]]` entry's keys follow its header.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import HarnessError

# key -> (accepted types, what to say when it is something else)
TOP_LEVEL: dict[str, tuple[tuple[type, ...], str]] = {
    "suite": ((str,), "a suite name or folder"),
    "strategies": ((str, list), 'a spec string like "prompt,rag:k=3" or [[strategies]] tables'),
    "model": ((str,), "a model id, folder or alias"),
    "embedder": ((str,), "an embedder id, folder or alias"),
    "out": ((str,), "a folder"),
    "limit": ((int,), "a whole number"),
    "seed": ((int,), "a whole number"),
    "slice_by": ((str, list), "a meta field name or a list of them"),
    "batch_size": ((int,), "a whole number"),
    "gpu_hour_usd": ((int, float), "a number"),
    "device": ((str,), '"cpu", "cuda" or "cuda:N"'),
    "trust_remote_code": ((bool,), "true or false"),
}

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)$")
_STRATEGIES_HEADER = re.compile(r"^\s*\[\[\s*strategies\s*\]\]")


@dataclass(frozen=True)
class RunConfig:
    path: Path
    text: str
    data: dict[str, Any]

    def where(self, key: str | None = None, entry: int | None = None) -> str:
        """`path:line` of a top-level key, of a key in the entry-th [[strategies]] table, or of
        that table's header; just `path` when the line cannot be found."""
        lines = self.text.splitlines()
        start = 0
        if entry is not None:
            headers = [i for i, line in enumerate(lines) if _STRATEGIES_HEADER.match(line)]
            if entry >= len(headers):
                return str(self.path)
            if key is None:
                return f"{self.path}:{headers[entry] + 1}"
            start = headers[entry] + 1
        for i in range(start, len(lines)):
            if lines[i].lstrip().startswith("["):
                break  # the next table: the key is not in this one
            if key is not None and re.match(rf'^\s*["\']?{re.escape(key)}["\']?\s*=', lines[i]):
                return f"{self.path}:{i + 1}"
        return f"{self.path}:{start}" if entry is not None else str(self.path)  # the header, or just the file

    def strategy_tables(self) -> list[dict[str, Any]]:
        tables = self.data.get("strategies")
        return [dict(t) for t in tables] if isinstance(tables, list) else []


def load_config(path: str | Path) -> RunConfig:
    """Read and check a run config: every key known, every value of the right type."""
    from strategies.base import did_you_mean

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HarnessError(f"{p}: config file not found") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        m = _TOML_POSITION.search(message)
        where = f"{p}:{m.group(1)}" if m else str(p)
        raise HarnessError(f"{where}: bad TOML: {_TOML_POSITION.sub('', message)}") from None
    conf = RunConfig(p, text, data)
    for key, value in data.items():
        if key not in TOP_LEVEL:
            raise HarnessError(f"{conf.where(key)}: unknown key '{key}'{did_you_mean(key, sorted(TOP_LEVEL))}")
        types, wanted = TOP_LEVEL[key]
        # bool is an int in Python: `limit = true` must not pass as 1.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise HarnessError(f"{conf.where(key)}: '{key}' should be {wanted}, got {value!r}")
    if isinstance(data.get("strategies"), list):
        for i, table in enumerate(data["strategies"]):
            if not isinstance(table, dict):
                raise HarnessError(f"{conf.where('strategies')}: 'strategies' should be [[strategies]] tables")
            if "kind" not in table:
                raise HarnessError(f"{conf.where(entry=i)}: [[strategies]] entry {i + 1} needs a 'kind'")
    return conf
