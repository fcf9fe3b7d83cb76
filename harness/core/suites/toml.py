"""suite.toml: where each key is (for `file:line:` messages), its values read with their types
checked, and the checks of labels, fields, generation settings and metric names."""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.core.metricref import form_problem, is_evaluate, is_local_metric, split_evaluate_metric
from harness.core.suites.files import _inside
from harness.core.suites.problems import _Problems, _show, _toml_string, _toml_type
from harness.core.text import did_you_mean, normalize_label
from harness.core.types import GenerationConfig

GENERATION_KEYS = ("max_new_tokens", "stop")
# (metric name, task) -> why the name is no metric of such a suite, or None. The metric registry
# lives above this layer, so its callers pass its checker in (harness.scoring.registry.check_metric).
MetricCheck = Callable[[str, str], "str | None"]


# -- where a key is in suite.toml ---------------------------------------------------------------
_BARE = r"[A-Za-z0-9_-]++"
_BASIC = r'"(?:[^"\\\n]|\\.)*+"'
_LITERAL = r"'[^'\n]*+'"
_KEY = rf"(?:{_BARE}|{_BASIC}|{_LITERAL})"
_PATH = rf"{_KEY}(?:[ \t]*+\.[ \t]*+{_KEY})*+"
_HEADER = re.compile(rf"[ \t]*+\[\[?[ \t]*+({_PATH})[ \t]*+\]\]?[ \t]*+(?:#.*)?$")
_ASSIGN = re.compile(rf"[ \t]*+({_PATH})[ \t]*+=")
_PART = re.compile(_KEY)


def _key_path(source: str) -> tuple[str, ...]:
    """`a."b.c".'d'` -> ("a", "b.c", "d")."""
    parts: list[str] = []
    for m in _PART.finditer(source):
        token = m.group(0)
        if token.startswith('"'):
            try:
                token = json.loads(token)  # TOML's basic-string escapes are JSON's (but \U, \e)
            except ValueError:
                token = token[1:-1]
        elif token.startswith("'"):
            token = token[1:-1]
        parts.append(token)
    return tuple(parts)


@functools.lru_cache(maxsize=8)
def _toml_index(text: str) -> dict[tuple[str, ...], int]:
    """The first line of every key path defined in `text` (tables, dotted and plain keys)."""
    index: dict[tuple[str, ...], int] = {}
    current: tuple[str, ...] = ()
    in_string: str | None = None  # the delimiter of a multi-line string being read
    for n, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if in_string is not None:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        head = _HEADER.match(line)
        assign = None if head else _ASSIGN.match(line)
        if head:
            current = _key_path(head.group(1))
            index.setdefault(current, n)
        elif assign:
            index.setdefault(current + _key_path(assign.group(1)), n)
            value = line[assign.end():]
            for delim in ('"""', "'''"):
                if value.count(delim) % 2 == 1:
                    in_string = delim
                    break
    return index


def _toml_line(text: str, key: str, table: str | None = None) -> int | None:
    """Line number of `key` (inside `[table]` when given), for error messages.

    Finds `key = ...` under `[table]` (also `[ table ]`, `["table"]`), `table.key = ...` and
    `[table.key]`; for a key inside an inline table (`table = {key = ...}`) or one that is not
    there, the line of the table itself; for a table given as dotted keys, its first key's line.
    """
    try:
        index = _toml_index(text)
    except (RecursionError, ValueError, re.error):  # a heuristic must never fail the validation
        return None
    target = (table, key) if table is not None else (key,)
    if target in index:
        return index[target]
    below = [line for path, line in index.items() if path[: len(target)] == target]
    if below:
        return min(below)
    for size in range(len(target) - 1, 0, -1):
        if target[:size] in index:
            return index[target[:size]]
    return None


# -- reading suite.toml -------------------------------------------------------------------------
class _Toml:
    """suite.toml's values, each checked against its type, problems at the key's line."""

    def __init__(self, path: Path, text: str, conf: dict[str, Any], problems: _Problems):
        self.path, self.text, self.conf, self.problems = path, text, conf, problems

    def line(self, key: str, table: str | None = None) -> int | None:
        return _toml_line(self.text, key, table)

    def add(self, message: str, key: str | None = None, table: str | None = None) -> None:
        self.problems.add(self.path, self.line(key, table) if key else None, message)

    def string(self, key: str, required: bool) -> str:
        value = self.conf.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            got = f", got {_toml_type(value)}" if value is not None and not isinstance(value, str) else ""
            self.add(f"'{key}' must be a{' non-empty' if required else ''} string{got}", key)
            return ""
        return value

    def strings(self, key: str, example: str) -> tuple[str, ...]:
        """A list of non-empty strings (one problem for a value of another type)."""
        value = self.conf.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.add(f"'{key}' must be a list of strings like {key} = {example}, got {_toml_type(value)}", key)
            return ()
        bad = [i for i, v in enumerate(value, 1) if not isinstance(v, str) or not v.strip()]
        if bad:
            v = value[bad[0] - 1]
            what = "an empty string" if isinstance(v, str) else _toml_type(v)
            self.add(f"'{key}' must be a list of non-empty strings; item {bad[0]} is {what}", key)
            return ()
        dups = sorted(v for v, count in Counter(value).items() if count > 1)
        if dups:
            self.add(f"'{key}' has duplicates: '{_show(dups[0])}'", key)
        return tuple(dict.fromkeys(value))

    def table(self, key: str) -> dict[str, Any] | None:
        value = self.conf.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.add(f"'{key}' must be a table ([{key}] with one key per line), got {_toml_type(value)}", key)
            return None
        return value

    def unknown_keys(self, values: dict[str, Any], known: tuple[str, ...], table: str | None) -> None:
        where = f" in [{table}]" if table else ""
        for key in values:
            if key not in known:
                self.add(f"unknown key '{_show(key)}'{where}{did_you_mean(key, known)}; known: {', '.join(known)}",
                         key, table)


def _entry_line(text: str, table: str, entry: int, key: str | None) -> int | None:
    """The line of `key` in the entry-th `[[table]]` (its header's line without a key or when the
    key is not found there)."""
    header = re.compile(rf"^\s*\[\[\s*{re.escape(table)}\s*\]\]")
    lines = text.split("\n")
    heads = [i for i, line in enumerate(lines) if header.match(line)]
    if entry >= len(heads):
        return _toml_line(text, table)
    if key is not None:
        for i in range(heads[entry] + 1, len(lines)):
            if lines[i].lstrip().startswith("["):
                break
            if re.match(rf'^\s*["\']?{re.escape(key)}["\']?\s*=', lines[i]):
                return i + 1
    return heads[entry] + 1


# -- labels, fields, generation -----------------------------------------------------------------
def _field_key(name: str) -> str:
    """How answers are matched to a suite's fields (as the extraction metrics do)."""
    return " ".join(name.casefold().replace("_", " ").replace("-", " ").split())


def _check_labels(t: _Toml, labels: tuple[str, ...]) -> None:
    """Labels must stay distinct once normalised, as outputs are matched to them that way."""
    first: dict[str, str] = {}
    for label in labels:
        norm = normalize_label(label)
        if not norm:
            t.add(f"label '{_show(label)}' is only punctuation: no answer can name it", "labels")
        elif norm in first:
            t.add(f"labels '{_show(first[norm])}' and '{_show(label)}' are the same answer once normalised "
                  "(case, spaces and punctuation are ignored when outputs are matched): keep one", "labels")
        else:
            first[norm] = label


def _check_fields(t: _Toml, fields: tuple[str, ...]) -> None:
    first: dict[str, str] = {}
    for name in fields:
        key = _field_key(name)
        if key in first:
            t.add(f"fields '{_show(first[key])}' and '{_show(name)}' are the same field once normalised "
                  "(case, '_' and '-' are ignored when answers are matched): keep one", "fields")
        first.setdefault(key, name)


def _generation(t: _Toml, most_tokens: int) -> GenerationConfig:
    """[generation]; `most_tokens` is the package's MAX_NEW_TOKENS."""
    gen = t.table("generation") or {}
    t.unknown_keys(gen, GENERATION_KEYS, "generation")
    max_new_tokens = 64
    value = gen.get("max_new_tokens", max_new_tokens)
    if isinstance(value, bool) or not isinstance(value, int):
        t.add(f"max_new_tokens must be a whole number of tokens, got {_toml_type(value)}", "max_new_tokens", "generation")
    elif not 1 <= value <= most_tokens:
        t.add(f"max_new_tokens must be positive and at most {most_tokens}, got {value}", "max_new_tokens", "generation")
    else:
        max_new_tokens = value
    stop: tuple[str, ...] = ()
    value = gen.get("stop", [])
    if isinstance(value, str):
        t.add(f"'stop' must be a list of strings: write stop = [{_toml_string(_show(value))}] "
              "(a string would stop at each of its characters)", "stop", "generation")
    elif not isinstance(value, list):
        t.add(f"'stop' must be a list of strings, got {_toml_type(value)}", "stop", "generation")
    elif not all(isinstance(s, str) and s for s in value):
        t.add("'stop' must be a list of non-empty strings", "stop", "generation")
    else:
        stop = tuple(value)
    return GenerationConfig(max_new_tokens=max_new_tokens, stop=stop)


# -- metric names -------------------------------------------------------------------------------
def _metric_problem(metric: str, task: str, folder: Path, known_metrics: MetricCheck | None) -> str | None:
    if is_evaluate(metric):
        problem = _evaluate_form(metric, folder)
        if problem:
            return problem
    return known_metrics(metric, task) if known_metrics is not None else None


def _evaluate_form(metric: str, folder: Path) -> str | None:
    target, _ = split_evaluate_metric(metric)
    shown = _show(metric)
    if problem := form_problem(metric, shown):
        return problem
    if not is_local_metric(target):
        return None
    # A suite reads only inside its own folder, metric scripts included.
    where = _inside(folder.resolve(), target)
    if isinstance(where, str):
        return f"metric '{shown}': the folder {where if where != 'outside' else 'lies outside the suite folder'}"
    script = where if where.suffix == ".py" else where / f"{where.name}.py"
    if not script.is_file():
        return (f"metric '{shown}': no metric script {_show(script.name)} in {_show(target)} (an evaluate module folder "
                "holds a script named like the folder)")
    return None
