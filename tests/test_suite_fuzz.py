"""Hostile suites: a valid suite with one broken edit is refused with exit 2, naming the file.

Each mutation below breaks a small valid qa suite in one way (a wrong type for a suite.toml key,
a broken JSONL line, bad bytes, deep nesting, a path outside the folder, a missing file, a row
field of the wrong type...). `validate` and `run` must both exit 2 with no traceback, name a file
of the suite, and `run` must create no run folder (it fails at suite loading, before any model).
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.core.suites import validate

# suite.toml as {key: raw TOML value} and {table: {key: raw TOML value}}; a raw string in place of
# a table's dict is written as `key = value` (a table given as something else).
BASE_TOML: dict[str, Any] = {
    "name": '"fuzz"',
    "task": '"qa"',
    "description": '"a suite to break"',
    "instruction": '"Answer the question."',
    "labels": "[]",
    "fields": "[]",
    "metrics": '["f1", "bleu"]',
    "splits": {"train": '"train.jsonl"', "test": '"test.jsonl"'},
    "corpus": {"path": '"corpus.jsonl"'},
    "generation": {"max_new_tokens": "16", "stop": '["\\n\\n"]'},
}
BASE_ROWS: dict[str, list[dict[str, Any]]] = {
    "train.jsonl": [
        {"id": "t1", "input": "How long?", "target": "Two weeks.", "doc_ids": ["d1"], "meta": {"src": "a", "n": 1}},
        {"id": "t2", "input": "Who?", "target": ["Anyone.", "Everyone."], "doc_ids": ["d2"]},
    ],
    "test.jsonl": [{"id": "e1", "input": "Where?", "target": "Here.", "meta": {"src": "b"}}],
    "corpus.jsonl": [{"id": "d1", "title": "T", "text": "It lasts two weeks."}, {"id": "d2", "text": "Anyone can."}],
}
SPLIT_FILES = ("train.jsonl", "test.jsonl")


def render(conf: dict[str, Any]) -> str:
    top = [f"{k} = {v}" for k, v in conf.items() if not isinstance(v, dict)]
    tables = [f"[{k}]\n" + "".join(f"{kk} = {vv}\n" for kk, vv in v.items()) for k, v in conf.items() if isinstance(v, dict)]
    return "\n".join(top) + "\n" + "".join(tables)


def write_base(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "suite.toml").write_text(render(BASE_TOML), encoding="utf-8")
    for name, rows in BASE_ROWS.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def outside_file(folder: Path) -> Path:
    """A perfectly valid split file, but outside the suite folder."""
    path = folder.parent / "outside.jsonl"
    path.write_text(json.dumps({"id": "o1", "input": "q", "target": "a"}) + "\n")
    return path


# -- the mutations ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mutation:
    name: str
    options: tuple[Any, ...]
    apply: Callable[[Path, Any, str], None]  # (folder, option, where a JSONL line goes)


def _set_toml(path: tuple[str, ...]) -> Callable[[Path, Any, str], None]:
    """Give the key at `path` a raw TOML value (None deletes it)."""

    def apply(folder: Path, value: Any, where: str) -> None:
        conf = json.loads(json.dumps(BASE_TOML))
        table = conf
        for key in path[:-1]:
            table = table[key]
        if value is None:
            del table[path[-1]]
        else:
            table[path[-1]] = value
        (folder / "suite.toml").write_text(render(conf), encoding="utf-8")

    return apply


def _toml_text(folder: Path, edit: Any, where: str) -> None:
    """Raw edits of suite.toml: bytes appended or replacing it, a folder in its place."""
    path = folder / "suite.toml"
    if edit == "folder":
        path.unlink()
        path.mkdir()
    elif edit == "missing":
        path.unlink()
    elif isinstance(edit, bytes):
        path.write_bytes(path.read_bytes() + edit)
    else:
        path.write_text(path.read_text(encoding="utf-8") + edit, encoding="utf-8")


def _put_line(folder: Path, name: str, line: bytes, where: str) -> None:
    path = folder / name
    lines = path.read_bytes().split(b"\n")[:-1]
    if where == "append":
        lines.append(line)
    elif where == "prepend":
        lines.insert(0, line)
    else:  # replace the last line (so a duplicate of the first id is still a duplicate)
        lines[-1] = line
    path.write_bytes(b"\n".join(lines) + b"\n")


def _raw_line(folder: Path, option: tuple[str, bytes], where: str) -> None:
    name, line = option
    _put_line(folder, name, line, where)


def _bad_row(folder: Path, option: tuple[str, dict[str, Any]], where: str) -> None:
    name, change = option
    row: dict[str, Any] = {"id": "new-1", "input": "q", "target": "a"}
    row.update(change)
    for key, value in change.items():
        if value is DROP:
            del row[key]
    _put_line(folder, name, json.dumps(row).encode(), where)


def _bad_doc(folder: Path, change: dict[str, Any], where: str) -> None:
    doc: dict[str, Any] = {"id": "new-doc", "text": "some text"}
    doc.update(change)
    for key, value in change.items():
        if value is DROP:
            del doc[key]
    # "replace" would drop a document the splits cite: also invalid, but not this mutation's point
    _put_line(folder, "corpus.jsonl", json.dumps(doc).encode(), "append" if where == "replace" else where)


def _file(folder: Path, option: tuple[str, str], where: str) -> None:
    name, edit = option
    path = folder / name
    if edit == "missing":
        path.unlink()
    elif edit == "folder":
        path.unlink()
        path.mkdir()
    elif edit == "empty":
        path.write_bytes(b"")
    elif edit == "blank":
        path.write_bytes(b"\n  \n\r\n")
    elif edit == "symlink-outside":
        path.unlink()
        path.symlink_to(outside_file(folder))
    elif edit == "not-utf8":
        path.write_bytes(path.read_bytes().replace(b"e", b"\xe9"))


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()
DEEP = b'{"id": "x", "input": ' + b"[" * 100_000 + b"]" * 100_000 + b', "target": "a"}'
BIG_INT = b'{"id": "x", "input": "q", "target": "a", "meta": {"n": ' + b"9" * 5000 + b"}}"
BAD_LINES = (b"{", b"nope", b"[1, 2]", b"null", b'"a string"', b"42", b"\xff\xfe", b'{"id": "x\xff", "input": "q"}',
             b'{"id": "a"} {"id": "b"}', b"\x00", DEEP, BIG_INT, b"[" * 100_000)
ROW_CHANGES: tuple[dict[str, Any], ...] = (
    {"id": 7}, {"id": None}, {"id": ""}, {"id": ["a"]}, {"id": "t1"}, {"id": DROP},
    {"input": 3}, {"input": ""}, {"input": "  "}, {"input": None}, {"input": {"a": 1}}, {"input": DROP},
    {"target": 3}, {"target": ""}, {"target": []}, {"target": [1]}, {"target": {"a": "b"}}, {"target": None},
    {"target": [""]}, {"target": True}, {"target": DROP},
    {"meta": [1]}, {"meta": "x"}, {"meta": {"a": [1]}}, {"meta": {"a": {}}}, {"meta": None}, {"meta": {"a": float("inf")}},
    {"doc_ids": "d1"}, {"doc_ids": [1]}, {"doc_ids": ["nope"]}, {"doc_ids": None}, {"doc_ids": [""]},
)
DOC_CHANGES: tuple[dict[str, Any], ...] = (
    {"id": 5}, {"id": ""}, {"id": None}, {"id": "d1"}, {"id": DROP},
    {"text": 5}, {"text": ""}, {"text": None}, {"text": ["x"]}, {"text": {"a": "b"}}, {"text": DROP},
    {"title": 5}, {"title": ["t"]},
)
OUTSIDE_PATHS = ('"/etc/passwd"', '"../outside.jsonl"', '"../../outside.jsonl"', '"./../s/../outside.jsonl"',
                 '"/dev/zero"', "5", '""', '"."', '"missing.jsonl"', '["train.jsonl"]', "{a = 1}", '"a\\u0000b"',
                 '"' + "a" * 5000 + '"', '"' + ("x" * 255 + "/") * 20 + '"')

MUTATIONS: tuple[Mutation, ...] = (
    Mutation("name", ("5", '""', "[]", "true", "{a = 1}", "1979-05-27", None), _set_toml(("name",))),
    Mutation("task", ('"summarise"', "3", '""', None), _set_toml(("task",))),
    Mutation("instruction", ('""', "3", '["x"]', None), _set_toml(("instruction",))),
    Mutation("description", ("3", '["x"]', "false"), _set_toml(("description",))),
    Mutation("labels", ('"abc"', "[1]", '[""]', '["yes", "Yes!"]', '["a", "a"]', '["!!"]', "{a = 1}"), _set_toml(("labels",))),
    Mutation("fields", ('"city"', "[1]", '["city", "City"]'), _set_toml(("fields",))),
    Mutation("metrics", ("[]", '"f1"', '["blue"]', "[3]", '["f1", "f1"]', None), _set_toml(("metrics",))),
    Mutation("primary_metric", ('"accuracy"', "3", '""'), _set_toml(("primary_metric",))),
    Mutation("unknown key", ('"x"',), _set_toml(("metric",))),
    Mutation("max_new_tokens", ('"abc"', "1.9", "true", "0", "-1", "1_000_000_000", "[16]"),
             _set_toml(("generation", "max_new_tokens"))),
    Mutation("stop", ('"###"', '[""]', "3", "[1]", '{a = "b"}'), _set_toml(("generation", "stop"))),
    Mutation("generation key", ("1",), _set_toml(("generation", "temperature"))),
    Mutation("corpus key", ('"x"',), _set_toml(("corpus", "paths"))),
    Mutation("unknown split", ('"dev.jsonl"',), _set_toml(("splits", "dev"))),
    Mutation("train path", (*OUTSIDE_PATHS, None), _set_toml(("splits", "train"))),
    Mutation("test path", (*OUTSIDE_PATHS, None), _set_toml(("splits", "test"))),
    Mutation("corpus path", (*OUTSIDE_PATHS, None), _set_toml(("corpus", "path"))),
    Mutation("splits table", ('"train.jsonl"', '["train.jsonl"]', "3", None), _set_toml(("splits",))),
    Mutation("corpus table", ('"corpus.jsonl"', "[]"), _set_toml(("corpus",))),
    Mutation("generation table", ('"fast"', "64"), _set_toml(("generation",))),
    Mutation("suite.toml", ("folder", "missing", b"\nx = \xff\n", b"\xff\xfe", "name = 'again'\n", "[splits\n", "x = ",
                            "x = " + "[" * 50_000 + "]" * 50_000 + "\n", "x = " + "9" * 5000 + "\n",
                            '[splits]\ntrain = "x"\n'), _toml_text),
    Mutation("bad line", tuple(itertools.product((*SPLIT_FILES, "corpus.jsonl"), BAD_LINES)), _raw_line),
    Mutation("bad row", tuple(itertools.product(SPLIT_FILES, ROW_CHANGES)), _bad_row),
    Mutation("bad corpus row", DOC_CHANGES, _bad_doc),
    Mutation("file", tuple(itertools.product((*SPLIT_FILES, "corpus.jsonl"),
                                             ("missing", "folder", "empty", "blank", "symlink-outside", "not-utf8"))), _file),
)
WHERE = ("append", "prepend", "replace")


def check_refused(folder: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["validate", str(folder)]) == 2
    validated = capsys.readouterr()
    assert main(["run", str(folder), "--out", str(out_dir), "--strategies", "prompt"]) == 2
    ran = capsys.readouterr()
    for text in (validated.out, validated.err, ran.out, ran.err):
        assert "Traceback" not in text and "internal error" not in text, text
    first = ran.err.strip().split("\n")[0]
    assert first.startswith("error: ") and str(folder) in first, ran.err
    assert "suite.toml" in first or ".jsonl" in first, first
    assert not out_dir.exists() or not any(out_dir.iterdir()), list(out_dir.iterdir())


def test_the_base_suite_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_base(tmp_path / "s")
    assert main(["validate", str(folder)]) == 0, capsys.readouterr()
    suite, problems = validate(str(folder))
    assert problems == [] and suite is not None
    assert len(suite.train) == 2 and len(suite.test) == 1 and len(suite.corpus) == 2


@pytest.mark.parametrize(
    ("mutation", "option"),
    [(m, o) for m in MUTATIONS for o in m.options],
    ids=[f"{m.name}-{i}" for m in MUTATIONS for i in range(len(m.options))],
)
def test_every_mutation_breaks_the_suite(tmp_path: Path, mutation: Mutation, option: Any) -> None:
    """Each (mutation, option) alone makes the suite invalid (validate, in-process, no CLI)."""
    folder = write_base(tmp_path / "s")
    mutation.apply(folder, option, "replace")
    from harness.core.errors import HarnessError
    from harness.scoring.registry import check_metric

    if mutation.name == "suite.toml" and option == "missing":  # not a suite folder at all: refused by name
        with pytest.raises(HarnessError, match="neither a folder nor a built-in suite|no suite.toml"):
            validate(str(folder), known_metrics=check_metric)
        return

    suite, problems = validate(str(folder), known_metrics=check_metric)
    assert suite is None and problems
    assert all(p.startswith(str(folder)) for p in problems), problems
    assert not any("internal error" in p for p in problems), problems


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_broken_suite_is_refused_by_validate_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: st.DataObject
) -> None:
    mutation = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    option = data.draw(st.sampled_from(mutation.options), label="option")
    where = data.draw(st.sampled_from(WHERE), label="where")
    work = tmp_path / "work"
    if work.exists():
        shutil.rmtree(work)
    folder = write_base(work / "s")
    out_dir = work / "runs"
    mutation.apply(folder, option, where)
    check_refused(folder, out_dir, capsys)
