"""Load and validate suites: `suite.toml` plus JSONL splits and an optional corpus.

Validation collects *every* problem, each as `file:line: message`, so one run of
`sft-harness validate` shows a suite author everything to fix.

Suites are data from anywhere (a colleague's folder, a download), so nothing in them is trusted:
- every file a suite names must resolve (symlinks followed) inside the suite folder, and is
  refused unopened otherwise;
- every value of suite.toml and of every JSONL row is type-checked, and a wrong one is a problem
  at its line, never a traceback: the loader raises SuiteError or HarnessError and nothing else.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core import jsonl
from harness.core.errors import HarnessError, SuiteError
from harness.core.text import did_you_mean, normalize_label
from harness.core.types import TASKS, Document, Example, GenerationConfig, Suite

SPLITS = ("train", "test", "validation")
REQUIRED_SPLITS = ("train", "test")
TOP_LEVEL_KEYS = (
    "name", "task", "description", "instruction", "labels", "fields", "metrics", "primary_metric",
    "splits", "corpus", "generation",
)
GENERATION_KEYS = ("max_new_tokens", "stop")
CORPUS_KEYS = ("path",)
# No answer of a suite needs more: 32k tokens is a long report, beyond every default model's
# context. A larger value is a typo (an extra digit), and backends size buffers and key/value
# caches from it, so a huge one would exhaust memory or overflow instead of failing here.
MAX_NEW_TOKENS = 32768
# A JSONL line is one example or passage; 16 MiB is far beyond any real one, and parsing a
# bigger line (a dump of something else) would cost many times its size in memory.
MAX_LINE_BYTES = 16 << 20
# Every file is read once into memory (and the examples are kept there); refuse one that cannot be.
MAX_FILE_BYTES = 1 << 30
# A file of millions of broken lines must not print millions of lines: the first ones say it all.
MAX_PROBLEMS_PER_FILE = 1000
# `evaluate:NAME_OR_PATH[#KEY]` in `metrics`: a Hugging Face evaluate module (harness.hf_evaluate);
# a PATH starts with ./ or ../ and is relative to the suite folder.
EVALUATE_PREFIX = "evaluate:"
# (metric name, task) -> why the name is no metric of such a suite, or None. The metric registry
# lives above this layer, so its callers pass its checker in (harness.metric_registry.check_metric).
MetricCheck = Callable[[str, str], "str | None"]


def builtin_suites_dir() -> Path:
    """Built-in suites live in the repository's `suites/` (overridable for installed copies)."""
    env = os.environ.get("SFT_HARNESS_SUITES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "suites"


def builtin_suite_names() -> list[str]:
    root = builtin_suites_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "suite.toml").is_file())


def _has_toml(folder: Path) -> bool:
    """A suite.toml of any kind (a broken link, a folder): reading it names what is wrong."""
    toml = folder / "suite.toml"
    try:
        return toml.exists() or toml.is_symlink()
    except OSError:  # not even stat-able (permissions): reading it says why
        return True


def find_suite(ref: str) -> Path:
    """A suite folder, a path to its suite.toml, or the name of a built-in suite."""
    try:
        return _find_suite(ref)
    except OSError as e:  # a name too long, a folder that cannot be listed
        raise HarnessError(f"suite '{_show(ref)}': {e.strerror or type(e).__name__}") from None


def _find_suite(ref: str) -> Path:
    try:
        path = Path(ref).expanduser()
    except RuntimeError:  # `~user` of no known user: the name as written
        path = Path(ref)
    if path.name == "suite.toml" and (path.is_file() or path.is_symlink()):
        return path.parent
    if path.is_dir():
        if not _has_toml(path):
            raise HarnessError(f"{path}: no suite.toml in this folder")
        return path
    if ref and "/" not in ref and ref not in (".", ".."):
        builtin = builtin_suites_dir() / ref
        if (builtin / "suite.toml").is_file():
            return builtin
    names = builtin_suite_names()
    raise HarnessError(
        f"suite '{_show(ref)}' is neither a folder nor a built-in suite{did_you_mean(ref, names)}; "
        f"built-in: {', '.join(names) or 'none'}"
    )


# -- helpers ------------------------------------------------------------------------------------
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


def _field_key(name: str) -> str:
    """How answers are matched to a suite's fields (as the extraction metrics do)."""
    return " ".join(name.casefold().replace("_", " ").replace("-", " ").split())


@dataclass
class _Problems:
    items: list[str] = field(default_factory=list)
    per_file: dict[str, int] = field(default_factory=dict)

    def add(self, file: Path, line: int | None, message: str) -> None:
        key = str(file)
        count = self.per_file[key] = self.per_file.get(key, 0) + 1
        if count > MAX_PROBLEMS_PER_FILE:
            return
        where = _printable(f"{file}:{line}" if line else f"{file}")
        self.items.append(f"{where}: {message}")

    def finish(self) -> list[str]:
        for key, count in self.per_file.items():
            if count > MAX_PROBLEMS_PER_FILE:
                self.items.append(
                    f"{_printable(key)}: {count - MAX_PROBLEMS_PER_FILE} more problem(s) not listed "
                    f"(the first {MAX_PROBLEMS_PER_FILE} are)"
                )
        return self.items


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


# -- reading files ------------------------------------------------------------------------------
def _inside(root: Path, rel: str) -> Path | str:
    """`rel` resolved (symlinks followed) when it names something inside `root` (resolved), else
    why not: "outside" or another reason. Nothing is opened."""
    if "\0" in rel:
        return "is not a valid file name (it holds a NUL character)"
    if Path(rel).is_absolute():
        return "outside"
    try:
        resolved = (root / rel).resolve()
    except RuntimeError:
        return "is a symlink loop"
    except (OSError, ValueError) as e:  # a name too long, ...
        return f"cannot be resolved ({getattr(e, 'strerror', None) or type(e).__name__})"
    if not resolved.is_relative_to(root):
        return "outside"
    return resolved


def _read_bytes(path: Path, shown: Path, problems: _Problems) -> bytes | None:
    """A file's bytes, or None with the reason recorded against `shown`."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            problems.add(shown, None, f"file is {_size(size)}, more than the {_size(MAX_FILE_BYTES)} a suite file may have")
            return None
        return path.read_bytes()
    except IsADirectoryError:
        problems.add(shown, None, "is a folder, not a file")
    except MemoryError:
        problems.add(shown, None, "too large to read into memory")
    except OSError as e:
        problems.add(shown, None, f"cannot read: {e.strerror or type(e).__name__}")
    return None


def _read_jsonl(data: bytes, path: Path, problems: _Problems) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    """(line number, object) of every good line, and whether the file has any non-blank line."""
    rows: list[tuple[int, dict[str, Any]]] = []
    any_line = False
    if data and max(map(len, data.split(b"\n"))) > MAX_LINE_BYTES:
        kept = []
        for n, raw in enumerate(data.split(b"\n"), 1):
            if len(raw) > MAX_LINE_BYTES:
                problems.add(path, n, f"line is {_size(len(raw))}, more than the {_size(MAX_LINE_BYTES)} a line may have")
                any_line = True
                raw = b""
            kept.append(raw)
        data = b"\n".join(kept)
    for line in jsonl.parse_lines(data):
        any_line = True
        if line.error is not None:
            problems.add(path, line.number, line.error)
        elif not isinstance(line.value, dict):
            problems.add(path, line.number, f"expected a JSON object, got {_json_type(line.value)}")
        else:
            rows.append((line.number, line.value))
    return rows, any_line


# -- checking rows ------------------------------------------------------------------------------
def _check_refs(target: Any) -> str | None:
    """Why a qa / generation / classification target is not one or more references."""
    if isinstance(target, str):
        refs = [target]
    elif isinstance(target, list) and target and all(isinstance(t, str) for t in target):
        refs = target
    else:
        got = "" if isinstance(target, list) else f", got {_json_type(target)}"
        return f"target must be a non-empty string or a list of strings{got}"
    if any(not r.strip() for r in refs):
        return "target is empty"
    return None


def _check_target(target: Any, task: str, labels: tuple[str, ...], fields: tuple[str, ...]) -> list[str]:
    """Why a target does not fit the task (empty when it does)."""
    if task == "extraction":
        if not isinstance(target, dict):
            return ["extraction target must be a JSON object of fields"]
        why = []
        for key, value in target.items():
            if not key.strip():
                why.append("extraction target has an empty field name")
            elif fields and key not in fields:
                why.append(f"field '{_show(key)}' is not one of the suite's fields{did_you_mean(key, fields)}")
            if not isinstance(value, str):
                why.append(f"field '{_show(key)}' must be a string, got {_json_type(value)}")
        return why
    if task not in TASKS:  # the task is already reported once; no problem on every line
        return []
    why_refs = _check_refs(target)
    if why_refs:
        return [why_refs]
    if task == "classification" and labels:
        refs = [target] if isinstance(target, str) else target
        outside = [r for r in refs if r not in labels]
        if outside:
            return [f"target '{_show(outside[0])}' is not one of the suite's labels{did_you_mean(outside[0], labels)}"]
    return []


def _check_row(obj: dict[str, Any], task: str, labels: tuple[str, ...], fields: tuple[str, ...],
               has_corpus: bool, corpus_ids: set[str] | None) -> list[str]:
    """Every problem of one example row except duplicate ids (empty when it is valid).

    `corpus_ids` is None when the corpus could not be read: that is reported once, at [corpus].
    """
    missing = [k for k in ("id", "input", "target") if k not in obj]
    if missing:
        return [f"missing {', '.join(repr(k) for k in missing)}"]
    why: list[str] = []
    if not isinstance(obj["id"], str):
        why.append(f"'id' must be a string, got {_json_type(obj['id'])}")
    elif not obj["id"].strip():
        why.append("'id' must be a non-empty string")
    if not isinstance(obj["input"], str) or not obj["input"].strip():
        got = "" if isinstance(obj["input"], str) else f", got {_json_type(obj['input'])}"
        why.append(f"'input' must be a non-empty string{got}")
    why.extend(_check_target(obj["target"], task, labels, fields))
    if "meta" in obj:
        meta = obj["meta"]
        if not isinstance(meta, dict):
            why.append(f"'meta' must be a JSON object, got {_json_type(meta)}")
        else:
            for key, value in meta.items():
                if isinstance(value, list | dict):
                    why.append(f"meta '{_show(key)}' must be a string, number, boolean or null "
                               f"(it names a slice), got {_json_type(value)}")
                elif isinstance(value, float) and not math.isfinite(value):  # NaN / Infinity: not JSON
                    why.append(f"meta '{_show(key)}' must be a finite number, got {value}")
    if "doc_ids" in obj:
        doc_ids = obj["doc_ids"]
        if not isinstance(doc_ids, list) or not all(isinstance(d, str) and d.strip() for d in doc_ids):
            why.append("'doc_ids' must be a list of corpus ids (strings)")
        elif doc_ids and not has_corpus:
            why.append("'doc_ids' given but the suite has no [corpus]")
        elif corpus_ids is not None:
            unknown = [d for d in doc_ids if d not in corpus_ids]
            if unknown:
                why.append(f"doc_ids name '{_show(unknown[0])}', which is not in the corpus")
    return why


def _to_example(obj: dict[str, Any]) -> Example:
    target = obj["target"]
    if isinstance(target, list):
        target = tuple(target)
    elif isinstance(target, dict):
        target = dict(target)
    return Example(
        id=obj["id"],
        input=obj["input"],
        target=target,
        meta=dict(obj.get("meta") or {}),
        doc_ids=tuple(obj.get("doc_ids") or ()),
    )


def _sha256_parts(parts: Iterable[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in parts:
        h.update(name.encode() + b"\0")
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()


def _sha256_files(paths: Iterable[Path]) -> str:
    return _sha256_parts((p.name, p.read_bytes()) for p in paths)


# -- suite.toml ---------------------------------------------------------------------------------
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


def _generation(t: _Toml) -> GenerationConfig:
    gen = t.table("generation") or {}
    t.unknown_keys(gen, GENERATION_KEYS, "generation")
    max_new_tokens = 64
    value = gen.get("max_new_tokens", max_new_tokens)
    if isinstance(value, bool) or not isinstance(value, int):
        t.add(f"max_new_tokens must be a whole number of tokens, got {_toml_type(value)}", "max_new_tokens", "generation")
    elif not 1 <= value <= MAX_NEW_TOKENS:
        t.add(f"max_new_tokens must be positive and at most {MAX_NEW_TOKENS}, got {value}", "max_new_tokens", "generation")
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


def split_evaluate_metric(name: str) -> tuple[str, str | None]:
    """`evaluate:NAME_OR_PATH#KEY` -> (NAME_OR_PATH, KEY or None)."""
    target, hash_, key = name.removeprefix(EVALUATE_PREFIX).partition("#")
    return target, (key if hash_ else None)


def is_local_metric(target: str) -> bool:
    """A metric script folder of the suite rather than a module on the Hugging Face Hub."""
    return target.startswith(("./", "../", "/"))


def _metric_problem(metric: str, task: str, folder: Path, known_metrics: MetricCheck | None) -> str | None:
    if metric.startswith(EVALUATE_PREFIX):
        problem = _evaluate_form(metric, folder)
        if problem:
            return problem
    return known_metrics(metric, task) if known_metrics is not None else None


def _evaluate_form(metric: str, folder: Path) -> str | None:
    target, key = split_evaluate_metric(metric)
    shown = _show(metric)
    if not target.strip():
        return (f"metric '{shown}': write {EVALUATE_PREFIX} followed by a module name or a folder of the suite, "
                f"like {EVALUATE_PREFIX}meteor or {EVALUATE_PREFIX}./metrics/my_metric")
    if key is not None and not key.strip():
        return f"metric '{shown}': '#' must be followed by the key of the value to report, like {EVALUATE_PREFIX}rouge#rougeL"
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


# -- the suite ----------------------------------------------------------------------------------
def _load(folder: Path, known_metrics: MetricCheck | None = None) -> tuple[Suite | None, list[str]]:
    """Parse a suite, collecting every problem. Returns (suite or None, problems)."""
    try:
        return _load_checked(folder, known_metrics)
    except (SuiteError, HarnessError):
        raise
    except Exception as e:  # a case the checks missed: still a problem with the suite, not a crash
        return None, [f"{folder / 'suite.toml'}: internal error while checking the suite "
                      f"({type(e).__name__}: {_show(str(e), 200)}); please report it"]


def _load_checked(folder: Path, known_metrics: MetricCheck | None) -> tuple[Suite | None, list[str]]:
    problems = _Problems()
    toml_path = folder / "suite.toml"
    if not _has_toml(folder):
        return None, [f"{toml_path}: missing"]
    raw = _read_bytes(toml_path, toml_path, problems)
    if raw is None:
        return None, problems.finish()
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        problems.add(toml_path, raw[: e.start].count(b"\n") + 1, f"not UTF-8 text (byte {e.start + 1} of the file)")
        return None, problems.finish()
    try:
        conf = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        problems.add(toml_path, int(m.group(1)) if m else None, f"bad TOML: {e}")
        return None, problems.finish()
    except RecursionError:
        problems.add(toml_path, None, "bad TOML: nested too deeply")
        return None, problems.finish()
    except ValueError as e:  # an integer of more than 4300 digits
        problems.add(toml_path, None, f"bad TOML: {_show(str(e).split(';')[0], 200)}")
        return None, problems.finish()

    t = _Toml(toml_path, text, conf, problems)
    t.unknown_keys(conf, TOP_LEVEL_KEYS, None)
    name = t.string("name", required=True)
    task = t.string("task", required=True)
    instruction = t.string("instruction", required=True)
    description = t.string("description", required=False)
    if task and task not in TASKS:
        t.add(f"unknown task '{_show(task)}'{did_you_mean(task, TASKS)}; known: {', '.join(TASKS)}", "task")
    labels = t.strings("labels", '["yes", "no"]')
    _check_labels(t, labels)
    fields = t.strings("fields", '["city", "date"]')
    _check_fields(t, fields)
    if task == "classification" and conf.get("labels", []) == []:  # other values are reported above
        t.add("a classification suite needs 'labels'", "labels")
    metrics = t.strings("metrics", '["accuracy", "f1"]')
    if conf.get("metrics", []) == []:
        t.add("'metrics' must list at least one metric", "metrics")
    for metric in metrics:
        problem = _metric_problem(metric, task, folder, known_metrics)
        if problem:
            t.add(problem, "metrics")
    if "primary_metric" in conf:
        primary = t.string("primary_metric", required=True)
        if primary and metrics and primary not in metrics:
            t.add(f"primary_metric '{_show(primary)}' is not one of the suite's metrics"
                  f"{did_you_mean(primary, metrics)}; metrics: {', '.join(metrics) or 'none'}", "primary_metric")
        elif primary and metrics:  # the first metric is the primary one (Suite.primary_metric)
            metrics = (primary, *(m for m in metrics if m != primary))
    generation = _generation(t)

    root = folder.resolve()
    parts: list[tuple[str, bytes]] = [(toml_path.name, raw)]

    def suite_file(rel: Any, key: str, table: str, what: str, noun: str) -> tuple[Path, bytes] | None:
        """The file a [splits] / [corpus] entry names, only once it is known to lie inside the suite."""
        line = t.line(key, table)
        if not isinstance(rel, str) or not rel.strip():
            got = f", got {_toml_type(rel)}" if not isinstance(rel, str) else ""
            problems.add(toml_path, line, f"{what} must be a file name inside the suite folder{got}")
            return None
        resolved = _inside(root, rel)
        if isinstance(resolved, str):
            why = "points outside the suite folder" if resolved == "outside" else resolved
            problems.add(toml_path, line, f"{what} {why} ('{_show(rel, 300)}')")
            return None
        shown = folder / rel
        try:
            exists, regular = resolved.exists(), resolved.is_file()
        except OSError as e:  # a name too long, ...
            problems.add(toml_path, line, f"{noun} '{_show(rel, 300)}' cannot be used ({e.strerror or type(e).__name__})")
            return None
        if not exists:
            problems.add(toml_path, line, f"{noun} '{_show(rel, 300)}' not found")
            return None
        if not regular:
            problems.add(toml_path, line, f"{noun} '{_show(rel, 300)}' is not a regular file")
            return None
        data = _read_bytes(resolved, shown, problems)
        if data is None:
            return None
        parts.append((shown.name, data))
        return shown, data

    # Corpus first, so examples' doc_ids can be checked against it.
    corpus: list[Document] = []
    corpus_ids: set[str] | None = None  # None: no corpus could be read, doc_ids are not checked
    corpus_conf = t.table("corpus")
    if corpus_conf is not None:
        t.unknown_keys(corpus_conf, CORPUS_KEYS, "corpus")
        if "path" not in corpus_conf:
            t.add("[corpus] needs 'path' (path = \"corpus.jsonl\")", "corpus")
            found = None
        else:
            found = suite_file(corpus_conf["path"], "path", "corpus", "corpus 'path'", "corpus file")
        if found is not None:
            cpath, data = found
            seen_docs: dict[str, int] = {}
            corpus_ids = set()
            rows, any_line = _read_jsonl(data, cpath, problems)
            if not any_line:
                problems.add(cpath, None, "corpus is empty")
            for n, obj in rows:
                if isinstance(obj.get("id"), str):  # a broken line's id still counts for doc_ids
                    corpus_ids.add(obj["id"])
                missing = [k for k in ("id", "text") if k not in obj]
                if missing:
                    problems.add(cpath, n, f"corpus line without {' and '.join(missing)}")
                    continue
                why = [f"corpus '{k}' must be a non-empty string, got {_json_type(obj[k])}"
                       for k in ("id", "text") if not isinstance(obj[k], str)]
                why += [f"corpus '{k}' must be a non-empty string" for k in ("id", "text")
                        if isinstance(obj[k], str) and not obj[k].strip()]
                if "title" in obj and not isinstance(obj["title"], str):
                    why.append(f"corpus 'title' must be a string, got {_json_type(obj['title'])}")
                for message in why:
                    problems.add(cpath, n, message)
                if why:
                    continue
                doc_id = obj["id"]
                if doc_id in seen_docs:
                    problems.add(cpath, n, f"duplicate corpus id '{_show(doc_id)}' (first at line {seen_docs[doc_id]})")
                    continue
                seen_docs[doc_id] = n
                corpus.append(Document(doc_id, obj["text"], obj.get("title", "")))

    splits_conf = t.table("splits")
    split_examples: dict[str, list[Example]] = {s: [] for s in SPLITS}
    seen_ids: dict[str, str] = {}
    if "splits" not in conf:
        splits_conf = {}
    for key in splits_conf or {}:
        if key not in SPLITS:
            t.add(f"unknown split '{_show(key)}'{did_you_mean(key, SPLITS)}; known: {', '.join(SPLITS)}", key, "splits")
    for split in SPLITS if splits_conf is not None else ():
        assert splits_conf is not None
        if split not in splits_conf:
            if split in REQUIRED_SPLITS:
                t.add(f"[splits] needs '{split}'", split, "splits")
            continue
        found = suite_file(splits_conf[split], split, "splits", f"split '{split}'", f"{split} split file")
        if found is None:
            continue
        path, data = found
        rows, any_line = _read_jsonl(data, path, problems)
        if not any_line:
            problems.add(path, None, f"{split} split is empty")
        for n, obj in rows:
            why = _check_row(obj, task, labels, fields, "corpus" in conf, corpus_ids)
            ex_id = obj.get("id")
            if isinstance(ex_id, str) and ex_id.strip():
                if ex_id in seen_ids:
                    why.insert(0, f"duplicate id '{_show(ex_id)}' (first at {seen_ids[ex_id]})")
                else:
                    seen_ids[ex_id] = f"{path.name}:{n}"
            for message in why:
                problems.add(path, n, message)
            if not why:
                split_examples[split].append(_to_example(obj))

    if problems.items or problems.per_file:
        return None, problems.finish()
    suite = Suite(
        name=name,
        task=task,  # type: ignore[arg-type]
        instruction=instruction,
        labels=labels,
        metrics=metrics,
        generation=generation,
        train=tuple(split_examples["train"]),
        test=tuple(split_examples["test"]),
        validation=tuple(split_examples["validation"]),
        corpus=tuple(corpus),
        description=description,
        fields=fields,
        path=folder,
        sha256=_sha256_parts(parts),
        part_sha256={part: _sha256_parts([(part, data)]) for part, data in parts},
    )
    return suite, []


def validate(ref: str, known_metrics: MetricCheck | None = None) -> tuple[Suite | None, list[str]]:
    """Every problem of a suite as `file:line: message` (empty when it is valid).

    Metric names are checked for their form only, unless `known_metrics` says which exist
    (the CLI and the runner pass harness.metric_registry.check_metric)."""
    return _load(find_suite(ref), known_metrics)


def load_suite(ref: str, known_metrics: MetricCheck | None = None) -> Suite:
    suite, problems = _load(find_suite(ref), known_metrics)
    if problems or suite is None:
        raise SuiteError(problems)
    return suite
