"""Load and validate suites: `suite.toml` plus JSONL splits and an optional corpus.

Validation collects *every* problem, each as `file:line: message`, so one run of
`sft-harness validate` shows a suite author everything to fix.

Suites are data from anywhere (a colleague's folder, a download), so nothing in them is trusted:
- every file a suite names must resolve (symlinks followed) inside the suite folder, and is
  refused unopened otherwise;
- every value of suite.toml and of every JSONL row is type-checked, and a wrong one is a problem
  at its line, never a traceback: the loader raises SuiteError or HarnessError and nothing else.

The package: find (a suite by folder or built-in name), problems (the collected problems, values
shown in them), toml (where a key is in suite.toml, its values read and checked), files
(confinement to the suite folder, reading, JSONL), rows (corpus and example rows), and here the
public API and the loading, step by step.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError, SuiteError
from harness.core.judges import JudgeSpec, duplicate_names, judge_problems
from harness.core.suites.files import _has_toml, _read_bytes, _read_jsonl, _sha256_parts, _suite_file
from harness.core.suites.find import builtin_suite_names, builtin_suites_dir, find_suite
from harness.core.suites.problems import _Problems, _show
from harness.core.suites.rows import _corpus_rows, _example_rows
from harness.core.suites.toml import (
    GENERATION_KEYS,
    MetricCheck,
    _check_fields,
    _check_labels,
    _entry_line,
    _generation,
    _metric_problem,
    _Toml,
)
from harness.core.suites.toml import _toml_line as _toml_line  # re-exported for tests/test_suites.py
from harness.core.text import did_you_mean
from harness.core.types import TASKS, Document, Example, GenerationConfig, Suite

__all__ = [
    "CORPUS_KEYS", "GENERATION_KEYS", "MAX_FILE_BYTES", "MAX_LINE_BYTES",
    "MAX_NEW_TOKENS", "MAX_PROBLEMS_PER_FILE", "REQUIRED_SPLITS", "SPLITS", "TOP_LEVEL_KEYS",
    "MetricCheck", "builtin_suite_names", "builtin_suites_dir", "find_suite",
    "load_suite", "validate",
]

SPLITS = ("train", "test", "validation")
REQUIRED_SPLITS = ("train", "test")
TOP_LEVEL_KEYS = (
    "name", "task", "description", "instruction", "labels", "fields", "metrics", "primary_metric",
    "splits", "corpus", "generation", "judges",
)
CORPUS_KEYS = ("path",)
# The limits below are read here each time a suite is loaded and passed down to the checks, so a
# value set on this module (monkeypatch in the tests) takes effect.
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


def validate(ref: str, known_metrics: MetricCheck | None = None) -> tuple[Suite | None, list[str]]:
    """Every problem of a suite as `file:line: message` (empty when it is valid).

    Metric names are checked for their form only, unless `known_metrics` says which exist
    (the CLI and the runner pass harness.scoring.registry.check_metric)."""
    return _load(find_suite(ref), known_metrics)


def load_suite(ref: str, known_metrics: MetricCheck | None = None) -> Suite:
    suite, problems = _load(find_suite(ref), known_metrics)
    if problems or suite is None:
        raise SuiteError(problems)
    return suite


# -- loading, step by step ----------------------------------------------------------------------
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
    toml_path = folder / "suite.toml"
    if not _has_toml(folder):
        return None, [f"{toml_path}: missing"]
    problems = _Problems(MAX_PROBLEMS_PER_FILE)
    read = _read_toml(toml_path, problems)
    if read is None:  # no values to check any further
        return None, problems.finish()
    t, raw = read
    head = _top_level(t, folder, known_metrics)
    files = _Files(t, folder, folder.resolve(), parts=[(toml_path.name, raw)])
    corpus, corpus_ids = _corpus(files)  # first, so examples' doc_ids can be checked against it
    examples = _splits(files, head, corpus_ids)
    if problems.items or problems.per_file:
        return None, problems.finish()
    return _suite(folder, head, corpus, examples, files.parts), []


def _read_toml(toml_path: Path, problems: _Problems) -> tuple[_Toml, bytes] | None:
    """suite.toml parsed, with its bytes; None once why it cannot be is recorded."""
    raw = _read_bytes(toml_path, toml_path, problems, MAX_FILE_BYTES)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        problems.add(toml_path, raw[: e.start].count(b"\n") + 1, f"not UTF-8 text (byte {e.start + 1} of the file)")
        return None
    try:
        conf = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        problems.add(toml_path, int(m.group(1)) if m else None, f"bad TOML: {e}")
        return None
    except RecursionError:
        problems.add(toml_path, None, "bad TOML: nested too deeply")
        return None
    except ValueError as e:  # an integer of more than 4300 digits
        problems.add(toml_path, None, f"bad TOML: {_show(str(e).split(';')[0], 200)}")
        return None
    return _Toml(toml_path, text, conf, problems), raw


@dataclass(frozen=True)
class _Head:
    """suite.toml's top-level values, checked (each "" or () where it is wrong)."""

    name: str
    task: str
    instruction: str
    description: str
    labels: tuple[str, ...]
    fields: tuple[str, ...]
    metrics: tuple[str, ...]  # the primary metric first
    generation: GenerationConfig
    primary: str | None  # primary_metric as suite.toml sets it (None: the task decides)
    judges: tuple[JudgeSpec, ...] = ()


def _top_level(t: _Toml, folder: Path, known_metrics: MetricCheck | None) -> _Head:
    t.unknown_keys(t.conf, TOP_LEVEL_KEYS, None)
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
    if task == "classification" and t.conf.get("labels", []) == []:  # other values are reported above
        t.add("a classification suite needs 'labels'", "labels")
    judges = _judges(t, task, known_metrics)
    metrics = _metrics(t, task, folder, known_metrics, tuple(j.name for j in judges))
    generation = _generation(t, MAX_NEW_TOKENS)
    primary = t.conf.get("primary_metric")
    names = (*metrics, *(j.name for j in judges))
    primary = primary if isinstance(primary, str) and primary in names else None
    return _Head(name, task, instruction, description, labels, fields, metrics, generation, primary, judges)


def _judges(t: _Toml, task: str, known_metrics: MetricCheck | None) -> tuple[JudgeSpec, ...]:
    """[[judges]]: judged metrics (harness.core.judges), each problem at its key's line."""
    tables = t.conf.get("judges")
    if tables is None:
        return ()
    if not isinstance(tables, list):
        t.add("'judges' must be [[judges]] tables (name, model, mode, ...)", "judges")
        return ()
    specs: list[JudgeSpec] = []
    for i, table in enumerate(tables):
        problems = judge_problems(table)
        for key, message in problems:
            t.problems.add(t.path, _entry_line(t.text, "judges", i, key), message)
        if problems:
            continue
        spec = JudgeSpec.from_table(table)
        if known_metrics is not None and known_metrics(spec.name, task) is None:
            t.problems.add(t.path, _entry_line(t.text, "judges", i, "name"),
                           f"judge '{spec.name}' takes the name of a metric: name the judged metric otherwise")
            continue
        specs.append(spec)
    dups = duplicate_names(specs)
    for i, message in dups:
        t.problems.add(t.path, _entry_line(t.text, "judges", i, "name"), message)
    return tuple(s for i, s in enumerate(specs) if i not in {d for d, _ in dups})


def _metrics(t: _Toml, task: str, folder: Path, known_metrics: MetricCheck | None,
             judged: tuple[str, ...] = ()) -> tuple[str, ...]:
    """`metrics`, the primary one first (Suite.primary_metric), and `primary_metric` checked (it
    may name a judged metric)."""
    metrics = t.strings("metrics", '["accuracy", "f1"]')
    if t.conf.get("metrics", []) == []:
        t.add("'metrics' must list at least one metric", "metrics")
    for metric in metrics:
        problem = _metric_problem(metric, task, folder, known_metrics)
        if problem:
            t.add(problem, "metrics")
    if "primary_metric" in t.conf:
        primary = t.string("primary_metric", required=True)
        if primary and metrics and primary not in metrics and primary not in judged:
            names = (*metrics, *judged)
            t.add(f"primary_metric '{_show(primary)}' is not one of the suite's metrics"
                  f"{did_you_mean(primary, names)}; metrics: {', '.join(names) or 'none'}", "primary_metric")
        elif primary and metrics and primary in metrics:
            metrics = (primary, *(m for m in metrics if m != primary))
    return metrics


@dataclass
class _Files:
    """The files suite.toml names, read in turn; their (name, bytes), suite.toml first, make the sha256."""

    t: _Toml
    folder: Path
    root: Path  # the folder resolved: every file must lie inside it
    parts: list[tuple[str, bytes]]

    def read(self, rel: Any, key: str, table: str, what: str, noun: str) -> tuple[Path, bytes] | None:
        """The file named by `rel`, the value of `key` in [table] (None once why not is recorded)."""
        found = _suite_file(self.folder, self.root, rel, toml_path=self.t.path, line=self.t.line(key, table),
                            what=what, noun=noun, problems=self.t.problems, max_bytes=MAX_FILE_BYTES)
        if found is not None:
            self.parts.append((found[0].name, found[1]))
        return found

    def rows(self, path: Path, data: bytes) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
        return _read_jsonl(data, path, self.t.problems, MAX_LINE_BYTES)


def _corpus(files: _Files) -> tuple[list[Document], set[str] | None]:
    """[corpus]: its passages, and their ids (None: no corpus could be read, doc_ids are not checked)."""
    t = files.t
    corpus_conf = t.table("corpus")
    if corpus_conf is None:
        return [], None
    t.unknown_keys(corpus_conf, CORPUS_KEYS, "corpus")
    if "path" not in corpus_conf:
        t.add("[corpus] needs 'path' (path = \"corpus.jsonl\")", "corpus")
        return [], None
    found = files.read(corpus_conf["path"], "path", "corpus", "corpus 'path'", "corpus file")
    if found is None:
        return [], None
    path, data = found
    rows, any_line = files.rows(path, data)
    if not any_line:
        t.problems.add(path, None, "corpus is empty")
    return _corpus_rows(rows, path, t.problems)


def _splits(files: _Files, head: _Head, corpus_ids: set[str] | None) -> dict[str, list[Example]]:
    """[splits]: the good examples of each split (ids unique across all of them)."""
    t = files.t
    splits_conf = t.table("splits") if "splits" in t.conf else {}
    for key in splits_conf or {}:
        if key not in SPLITS:
            t.add(f"unknown split '{_show(key)}'{did_you_mean(key, SPLITS)}; known: {', '.join(SPLITS)}", key, "splits")
    examples: dict[str, list[Example]] = {s: [] for s in SPLITS}
    if splits_conf is None:  # not a table, reported above
        return examples
    seen_ids: dict[str, str] = {}
    for split in SPLITS:
        if split not in splits_conf:
            if split in REQUIRED_SPLITS:
                t.add(f"[splits] needs '{split}'", split, "splits")
            continue
        found = files.read(splits_conf[split], split, "splits", f"split '{split}'", f"{split} split file")
        if found is None:
            continue
        path, data = found
        rows, any_line = files.rows(path, data)
        if not any_line:
            t.problems.add(path, None, f"{split} split is empty")
        examples[split] = _example_rows(rows, path, t.problems, seen_ids, task=head.task, labels=head.labels,
                                        fields=head.fields, has_corpus="corpus" in t.conf, corpus_ids=corpus_ids)
    return examples


def _suite(folder: Path, head: _Head, corpus: list[Document], examples: dict[str, list[Example]],
           parts: list[tuple[str, bytes]]) -> Suite:
    return Suite(
        name=head.name,
        task=head.task,  # type: ignore[arg-type]
        instruction=head.instruction,
        labels=head.labels,
        metrics=head.metrics,
        generation=head.generation,
        train=tuple(examples["train"]),
        test=tuple(examples["test"]),
        validation=tuple(examples["validation"]),
        corpus=tuple(corpus),
        description=head.description,
        fields=head.fields,
        primary_declared=head.primary,
        judges=head.judges,
        path=folder,
        sha256=_sha256_parts(parts),
        part_sha256={part: _sha256_parts([(part, data)]) for part, data in parts},
    )
