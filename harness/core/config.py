"""`sft-harness run --config run.toml`: the run options in a file, checked with file:line errors.

tomllib gives values but no positions, so a key's line is found by scanning the text: top-level
keys come before the first table, and a `[[strategies]]` entry's keys follow its header.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.text import did_you_mean
from harness.core.types import ANSWER_MODES, CHOICE_NORMS

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
    "cost": ((dict,), "a [cost] table (device_hour_usd, monthly_requests)"),
    "leakage_check": ((bool,), "true or false"),
    "fail_on_leakage": ((bool,), "true or false"),
    "leakage_threshold": ((int, float), "a number"),
    "control": ((str, list), 'control suites, e.g. "poem-sentiment,e2e-nlg" or a list of names'),
    "control_limit": ((int,), "a whole number"),
    "models": ((list,), "[[models]] tables (name, backend, id, ...)"),
    "sizes": ((str, list), 'train sizes of `curve`, e.g. [16, 32, "all"] or "16,32,all"'),
    "seeds": ((int,), "a whole number (training seeds per size of `curve`)"),
    "answer": ((str,), '"free", "choice" or "constrained" (how answers come out of the model)'),
    "choice_norm": ((str,), '"sum" or "mean" (answer=choice: the label\'s token log-probabilities)'),
    "calibrate": ((bool,), "true or false (answer=choice: contextual calibration)"),
    "judges": ((list,), "[[judges]] tables (name, model, mode, ...)"),
    "judge_model": ((str,), "the [[models]] name (or a model id) every judge grades with"),
    "human": ((str,), "a JSONL or CSV file of people's grades"),
}

# The keys every [[models]] table may have; the rest belong to its backend, which declares them
# (`Backend.options`, checked by harness.engine.backends.check_model_tables at their lines).
COMMON_MODEL_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "a non-empty name that strategies refer to with model = NAME"),
    "backend": ((str,), "a backend name, e.g. \"transformers\", \"openai\" or \"vllm\""),
    "id": ((str,), "a model alias, hub id or folder (openai: the model name the server knows)"),
}

# The [cost] table: prices and traffic for the cost figures and break-even volumes.
COST_KEYS: dict[str, str] = {
    "device_hour_usd": "the price of one device hour (local training and decoding), 0 or more",
    "monthly_requests": "the expected number of requests a month, 0 or more",
}

# key -> (is the value in range?, what it must be): checked after the type, blamed on the key's line.
RANGES: dict[str, tuple[Any, str]] = {
    "limit": (lambda v: v >= 1, "at least 1"),
    "seed": (lambda v: 0 <= v < 2**32, f"from 0 to {2**32 - 1}"),
    "batch_size": (lambda v: v >= 1, "at least 1"),
    "gpu_hour_usd": (lambda v: math.isfinite(v) and v >= 0, "a price of 0 or more"),
    "device": (lambda v: re.fullmatch(r"cpu|cuda(:\d+)?|mps", v) is not None, '"cpu", "cuda", "cuda:N" or "mps"'),
    "slice_by": (lambda v: isinstance(v, str) or all(isinstance(x, str) and x for x in v), "meta field names"),
    "suite": (lambda v: bool(v.strip()), "a suite name or folder"),
    "leakage_threshold": (lambda v: math.isfinite(v) and 0 < v <= 1, "a cosine above 0 and at most 1"),
    "seeds": (lambda v: 1 <= v <= 1000, "from 1 to 1000"),
    "control_limit": (lambda v: v >= 1, "at least 1"),
    "control": (lambda v: all(isinstance(x, str) and x.strip() for x in ([v] if isinstance(v, str) else v)),
                "suite names"),
    "answer": (lambda v: v in ANSWER_MODES, "one of " + ", ".join(ANSWER_MODES)),
    "choice_norm": (lambda v: v in CHOICE_NORMS, "one of " + ", ".join(CHOICE_NORMS)),
}

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)$")
def _header(table: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*\[\[\s*{table}\s*\]\]")


@dataclass(frozen=True)
class RunConfig:
    path: Path
    text: str
    data: dict[str, Any]

    def where(self, key: str | None = None, entry: int | None = None, table: str = "strategies") -> str:
        """`path:line` of a top-level key, of a key in the entry-th [[strategies]] (or [[models]],
        [[judges]]: `table`) table, or of that table's header; just `path` when the line cannot
        be found."""
        lines = self.text.split("\n")  # TOML's line ends; splitlines() would also split on U+2028
        start = 0
        if entry is not None:
            header = _header(table)
            headers = [i for i, line in enumerate(lines) if header.match(line)]
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

    def where_in(self, table: str, key: str) -> str:
        """`path:line` of `key` inside `[table]` (the header's line when the key is not found)."""
        lines = self.text.split("\n")
        header = next((i for i, line in enumerate(lines) if re.match(rf"^\s*\[\s*{re.escape(table)}\s*\]", line)), None)
        if header is None:
            return self.where(table)
        for i in range(header + 1, len(lines)):
            if lines[i].lstrip().startswith("["):
                break
            if re.match(rf'^\s*["\']?{re.escape(key)}["\']?\s*=', lines[i]):
                return f"{self.path}:{i + 1}"
        return f"{self.path}:{header + 1}"

    def cost(self, key: str) -> Any:
        table = self.data.get("cost")
        return table.get(key) if isinstance(table, dict) else None

    def where_model(self, key: str | None = None, entry: int = 0) -> str:
        """`path:line` of `key` in the entry-th [[models]] table (its header's line without a key)."""
        return self.where(key, entry=entry, table="models")

    def model_tables(self) -> list[dict[str, Any]]:
        tables = self.data.get("models")
        return [dict(t) for t in tables] if isinstance(tables, list) else []

    def model_specs(self) -> dict[str, ModelSpec]:
        """The [[models]] tables by name (checked by load_config)."""
        return {t["name"]: ModelSpec.from_table(t) for t in self.model_tables()}

    def judge_specs(self) -> list[Any]:
        """The [[judges]] tables as JudgeSpecs (checked by load_config)."""
        from harness.core.judges import JudgeSpec

        return [JudgeSpec.from_table(t) for t in self.data.get("judges") or []]

    def strategy_tables(self) -> list[dict[str, Any]]:
        tables = self.data.get("strategies")
        return [dict(t) for t in tables] if isinstance(tables, list) else []


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def load_config(path: str | Path) -> RunConfig:
    """Read and check a run config: every key known, every value of the right type."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise HarnessError(f"{p}: config file not found") from None
    except UnicodeDecodeError as e:
        line = p.read_bytes()[: e.start].count(b"\n") + 1
        raise HarnessError(f"{p}:{line}: not UTF-8 text") from None
    except OSError as e:
        raise HarnessError(f"{p}: cannot read the config file ({e.strerror})") from None
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
            raise HarnessError(f"{conf.where(key)}: '{key}' should be {wanted}, got {_short(value)}")
        in_range, must_be = RANGES.get(key, (None, ""))
        if in_range is not None and not (isinstance(value, list) and key not in ("slice_by", "control")) and not in_range(value):
            raise HarnessError(f"{conf.where(key)}: '{key}' must be {must_be}, got {_short(value)}")
    _check_cost(conf)
    _check_models(conf)
    _check_judges(conf)
    if isinstance(data.get("strategies"), list):
        for i, table in enumerate(data["strategies"]):
            if not isinstance(table, dict):
                raise HarnessError(f"{conf.where('strategies')}: 'strategies' should be [[strategies]] tables")
            if "kind" not in table:
                raise HarnessError(f"{conf.where(entry=i)}: [[strategies]] entry {i + 1} needs a 'kind'")
            for key in ("kind", "name"):
                if key in table and (not isinstance(table[key], str) or not table[key].strip()):
                    raise HarnessError(f"{conf.where(key, entry=i)}: '{key}' should be a non-empty string, "
                                       f"got {_short(table[key])}")
    return conf


def _check_judges(conf: RunConfig) -> None:
    """Every [[judges]] table (harness.core.judges), the first problem at its key's line."""
    from harness.core.judges import JudgeSpec, duplicate_names, judge_problems

    specs = []
    for i, table in enumerate(conf.data.get("judges") or []):
        if problems := judge_problems(table):
            key, message = problems[0]
            raise HarnessError(f"{conf.where(key, entry=i, table='judges')}: {message}")
        specs.append(JudgeSpec.from_table(table))
    if dups := duplicate_names(specs):
        i, message = dups[0]
        raise HarnessError(f"{conf.where('name', entry=i, table='judges')}: {message}")


def _check_cost(conf: RunConfig) -> None:
    table = conf.data.get("cost")
    if not isinstance(table, dict):
        return
    for key, value in table.items():
        if key not in COST_KEYS:
            raise HarnessError(f"{conf.where_in('cost', key)}: unknown key '{key}' in [cost]"
                               f"{did_you_mean(key, sorted(COST_KEYS))}; keys: {', '.join(COST_KEYS)}")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0:
            raise HarnessError(f"{conf.where_in('cost', key)}: '{key}' should be {COST_KEYS[key]}, got {_short(value)}")


def _check_models(conf: RunConfig) -> None:
    """Every [[models]] table: a unique non-empty name, an id, a backend name, at their lines. The
    backend's own keys are checked by the backend registry (harness.engine.backends), which
    knows the plugins this layer cannot."""
    tables = conf.data.get("models")
    if not isinstance(tables, list):
        return
    names: dict[str, int] = {}
    for i, table in enumerate(tables):
        if not isinstance(table, dict):
            raise HarnessError(f"{conf.where('models')}: 'models' should be [[models]] tables")
        for key, (types, wanted) in COMMON_MODEL_KEYS.items():
            value = table.get(key)
            if key in table and (not isinstance(value, types) or not str(value).strip()):
                raise HarnessError(f"{conf.where_model(key, i)}: '{key}' should be {wanted}, got {_short(value)}")
        for key in ("name", "id"):
            if key not in table:
                raise HarnessError(f"{conf.where_model(None, i)}: [[models]] entry {i + 1} needs '{key}'")
        name = table["name"]
        if name in names:
            raise HarnessError(f"{conf.where_model('name', i)}: model name '{name}' is already used by "
                               f"[[models]] entry {names[name] + 1}")
        names[name] = i


@dataclass(frozen=True)
class ModelOption:
    """One backend-specific key of a [[models]] table: its types, what it must be, a range check."""

    types: tuple[type, ...]
    wanted: str  # "a whole number, at least 1"
    check: Callable[[Any], bool] | None = None
    must_be: str = ""  # said when `check` fails: "at least 1"
    required: bool = False
    hint: str = ""  # added when another backend's table uses the key

    def problem(self, key: str, value: Any) -> str | None:
        # bool is an int in Python: `max_concurrency = true` must not pass as 1.
        bad_type = not isinstance(value, self.types) or (isinstance(value, bool) and bool not in self.types)
        if bad_type or (isinstance(value, str) and not value.strip()):
            return f"'{key}' should be {self.wanted}, got {_short(value)}"
        if self.check is not None and not self.check(value):
            return f"'{key}' must be {self.must_be}, got {_short(value)}"
        return None


@dataclass(frozen=True)
class ModelSpec:
    """One [[models]] table: what strategies name with `model = NAME`. `options` holds the keys of
    its backend (base_url, max_concurrency, ...); an API key itself is never here, only the name of
    the variable that holds it."""

    name: str
    id: str
    backend: str = "transformers"
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> ModelSpec:
        rest = {k: v for k, v in table.items() if k not in COMMON_MODEL_KEYS}
        return cls(name=table["name"], id=table["id"], backend=table.get("backend", "transformers"), options=rest)
