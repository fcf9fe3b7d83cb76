"""Load and validate suites: `suite.toml` plus JSONL splits and an optional corpus.

Validation collects *every* problem, each as `file:line: message`, so one run of
`sft-harness validate` shows a suite author everything to fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import HarnessError, SuiteError
from .types import METRIC_NAMES, TASKS, Document, Example, GenerationConfig, Suite

SPLITS = ("train", "test", "validation")
REQUIRED_SPLITS = ("train", "test")


def builtin_suites_dir() -> Path:
    """Built-in suites live in the repository's `suites/` (overridable for installed copies)."""
    env = os.environ.get("SFT_HARNESS_SUITES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "suites"


def builtin_suite_names() -> list[str]:
    root = builtin_suites_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "suite.toml").is_file())


def find_suite(ref: str) -> Path:
    """A suite folder, a path to its suite.toml, or the name of a built-in suite."""
    path = Path(ref).expanduser()
    if path.is_file() and path.name == "suite.toml":
        return path.parent
    if path.is_dir():
        if not (path / "suite.toml").is_file():
            raise HarnessError(f"{path}: no suite.toml in this folder")
        return path
    builtin = builtin_suites_dir() / ref
    if (builtin / "suite.toml").is_file():
        return builtin
    from strategies.base import did_you_mean

    names = builtin_suite_names()
    raise HarnessError(
        f"suite '{ref}' is neither a folder nor a built-in suite{did_you_mean(ref, names)}; "
        f"built-in: {', '.join(names) or 'none'}"
    )


@dataclass
class _Problems:
    items: list[str] = field(default_factory=list)

    def add(self, file: Path, line: int | None, message: str) -> None:
        where = f"{file}:{line}" if line else f"{file}"
        self.items.append(f"{where}: {message}")


def _toml_line(text: str, key: str, table: str | None = None) -> int | None:
    """Line number of `key = ...` (inside `[table]` when given), for error messages."""
    current: str | None = None
    for n, line in enumerate(text.splitlines(), 1):
        head = re.match(r"^\s*\[([^\]]+)\]", line)
        if head:
            current = head.group(1).strip()
            continue
        if re.match(rf"^\s*{re.escape(key)}\s*=", line) and current == table:
            return n
    return None


def _read_jsonl(path: Path, problems: _Problems) -> list[tuple[int, dict[str, Any]]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        problems.add(path, None, f"not UTF-8 text ({e.reason} at byte {e.start})")
        return rows
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.add(path, n, f"bad JSON: {e.msg} (column {e.colno})")
            continue
        if not isinstance(obj, dict):
            problems.add(path, n, f"expected a JSON object, got {type(obj).__name__}")
            continue
        rows.append((n, obj))
    return rows


def _check_target(target: Any, task: str, labels: tuple[str, ...]) -> str | None:
    """Why a target does not fit the task, or None if it does."""
    if task == "extraction":
        if not isinstance(target, dict):
            return "extraction target must be a JSON object of fields"
        return None
    if isinstance(target, str):
        refs = [target]
    elif isinstance(target, list) and target and all(isinstance(t, str) for t in target):
        refs = target
    else:
        return "target must be a non-empty string or a list of strings"
    if any(not r.strip() for r in refs):
        return "target is empty"
    if task == "classification" and labels:
        outside = [r for r in refs if r not in labels]
        if outside:
            return f"target '{outside[0]}' is not one of the suite's labels"
    return None


def _to_example(obj: dict[str, Any]) -> Example:
    target = obj["target"]
    if isinstance(target, list):
        target = tuple(target)
    return Example(
        id=str(obj["id"]),
        input=obj["input"],
        target=target,
        meta=dict(obj.get("meta") or {}),
        doc_ids=tuple(str(d) for d in obj.get("doc_ids") or ()),
    )


def _sha256_files(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _load(folder: Path) -> tuple[Suite | None, list[str]]:
    """Parse a suite, collecting every problem. Returns (suite or None, problems)."""
    problems = _Problems()
    toml_path = folder / "suite.toml"
    if not toml_path.is_file():
        return None, [f"{toml_path}: missing"]
    text = toml_path.read_text(encoding="utf-8")
    try:
        conf = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        problems.add(toml_path, int(m.group(1)) if m else None, f"bad TOML: {e}")
        return None, problems.items

    def need_str(key: str) -> str:
        value = conf.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.add(toml_path, _toml_line(text, key), f"'{key}' must be a non-empty string")
            return ""
        return value

    name = need_str("name")
    task = need_str("task")
    instruction = need_str("instruction")
    if task and task not in TASKS:
        problems.add(toml_path, _toml_line(text, "task"), f"unknown task '{task}'; known: {', '.join(TASKS)}")
    labels = tuple(conf.get("labels") or ())
    fields = tuple(conf.get("fields") or ())
    if task == "classification" and not labels:
        problems.add(toml_path, _toml_line(text, "labels"), "a classification suite needs 'labels'")
    if len(set(labels)) != len(labels):
        problems.add(toml_path, _toml_line(text, "labels"), "'labels' has duplicates")
    metrics = tuple(conf.get("metrics") or ())
    if not metrics:
        problems.add(toml_path, _toml_line(text, "metrics"), "'metrics' must list at least one metric")
    for m in metrics:
        if m not in METRIC_NAMES:
            from strategies.base import did_you_mean

            problems.add(
                toml_path,
                _toml_line(text, "metrics"),
                f"unknown metric '{m}'{did_you_mean(m, METRIC_NAMES)}; known: {', '.join(METRIC_NAMES)}",
            )
    gen = conf.get("generation") or {}
    generation = GenerationConfig(
        max_new_tokens=int(gen.get("max_new_tokens", 64)), stop=tuple(gen.get("stop") or ())
    )
    if generation.max_new_tokens <= 0:
        problems.add(toml_path, _toml_line(text, "max_new_tokens", "generation"), "max_new_tokens must be positive")

    # Corpus first, so examples' doc_ids can be checked against it.
    corpus: list[Document] = []
    files: list[Path] = [toml_path]
    corpus_conf = conf.get("corpus")
    if corpus_conf is not None:
        cpath = folder / str(corpus_conf.get("path", ""))
        if not corpus_conf.get("path") or not cpath.is_file():
            problems.add(toml_path, _toml_line(text, "path", "corpus"), f"corpus file '{corpus_conf.get('path')}' not found")
        else:
            files.append(cpath)
            seen_docs: dict[str, int] = {}
            rows = _read_jsonl(cpath, problems)
            if not rows:
                problems.add(cpath, None, "corpus is empty")
            for n, obj in rows:
                missing = [k for k in ("id", "text") if not isinstance(obj.get(k), (str, int)) or str(obj.get(k)).strip() == ""]
                if missing:
                    problems.add(cpath, n, f"corpus line without {' and '.join(missing)}")
                    continue
                doc_id = str(obj["id"])
                if doc_id in seen_docs:
                    problems.add(cpath, n, f"duplicate corpus id '{doc_id}' (first at line {seen_docs[doc_id]})")
                    continue
                seen_docs[doc_id] = n
                corpus.append(Document(doc_id, str(obj["text"]), str(obj.get("title") or "")))
    corpus_ids = {d.id for d in corpus}

    splits_conf = conf.get("splits") or {}
    split_examples: dict[str, list[Example]] = {s: [] for s in SPLITS}
    seen_ids: dict[str, str] = {}
    for key in splits_conf:
        if key not in SPLITS:
            problems.add(toml_path, _toml_line(text, key, "splits"), f"unknown split '{key}'; known: {', '.join(SPLITS)}")
    for split in SPLITS:
        rel = splits_conf.get(split)
        if rel is None:
            if split in REQUIRED_SPLITS:
                problems.add(toml_path, None, f"[splits] needs '{split}'")
            continue
        path = folder / str(rel)
        if not path.is_file():
            problems.add(toml_path, _toml_line(text, split, "splits"), f"{split} split file '{rel}' not found")
            continue
        files.append(path)
        rows = _read_jsonl(path, problems)
        if not rows:
            problems.add(path, None, f"{split} split is empty")
        for n, obj in rows:
            where = f"{path.name}:{n}"
            missing = [k for k in ("id", "input", "target") if k not in obj]
            if missing:
                problems.add(path, n, f"missing {', '.join(repr(k) for k in missing)}")
                continue
            if not isinstance(obj["id"], (str, int)) or str(obj["id"]).strip() == "":
                problems.add(path, n, "'id' must be a non-empty string")
                continue
            ex_id = str(obj["id"])
            if ex_id in seen_ids:
                problems.add(path, n, f"duplicate id '{ex_id}' (first at {seen_ids[ex_id]})")
                continue
            seen_ids[ex_id] = where
            if not isinstance(obj["input"], str) or not obj["input"].strip():
                problems.add(path, n, "'input' must be a non-empty string")
                continue
            why = _check_target(obj["target"], task, labels)
            if why:
                problems.add(path, n, why)
                continue
            if "meta" in obj and not isinstance(obj["meta"], dict):
                problems.add(path, n, "'meta' must be a JSON object")
                continue
            doc_ids = obj.get("doc_ids") or []
            if not isinstance(doc_ids, list):
                problems.add(path, n, "'doc_ids' must be a list of corpus ids")
                continue
            unknown = [str(d) for d in doc_ids if str(d) not in corpus_ids]
            if unknown:
                problems.add(path, n, f"doc_ids name '{unknown[0]}', which is not in the corpus")
                continue
            split_examples[split].append(_to_example(obj))

    if problems.items:
        return None, problems.items
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
        description=str(conf.get("description") or ""),
        fields=fields,
        path=folder,
        sha256=_sha256_files(files),
        part_sha256={p.name: _sha256_files([p]) for p in files},
    )
    return suite, []


def validate(ref: str) -> tuple[Suite | None, list[str]]:
    """Every problem of a suite as `file:line: message` (empty when it is valid)."""
    return _load(find_suite(ref))


def load_suite(ref: str) -> Suite:
    suite, problems = _load(find_suite(ref))
    if problems or suite is None:
        raise SuiteError(problems)
    return suite
