"""Suite loading and validation: every planted fault is reported with its file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import HarnessError, SuiteError
from harness.suites import load_suite, validate

TOML = """name = "tiny"
task = "classification"
description = "a tiny suite"
instruction = "Classify the sentiment."
labels = ["negative", "positive"]
metrics = ["accuracy", "f1"]
[splits]
train = "train.jsonl"
test = "test.jsonl"
[corpus]
path = "corpus.jsonl"
[generation]
max_new_tokens = 8
"""


def write_suite(folder: Path, toml: str = TOML, train=None, test=None, corpus=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.toml").write_text(toml)
    train = train if train is not None else [
        {"id": "t1", "input": "I love it", "target": "positive"},
        {"id": "t2", "input": "I hate it", "target": "negative", "doc_ids": ["d1"]},
    ]
    test = test if test is not None else [{"id": "e1", "input": "great", "target": "positive", "meta": {"src": "a"}}]
    corpus = corpus if corpus is not None else [{"id": "d1", "title": "T", "text": "some text"}]
    for name, rows in (("train.jsonl", train), ("test.jsonl", test), ("corpus.jsonl", corpus)):
        (folder / name).write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return folder


def test_valid_suite_loads(tmp_path: Path) -> None:
    suite = load_suite(str(write_suite(tmp_path / "s")))
    assert suite.name == "tiny" and suite.task == "classification"
    assert [e.id for e in suite.train] == ["t1", "t2"]
    assert suite.train[1].doc_ids == ("d1",)
    assert suite.test[0].meta == {"src": "a"}
    assert len(suite.sha256) == 64 and suite.primary_metric == "accuracy"


def test_sha256_changes_with_data(tmp_path: Path) -> None:
    a = load_suite(str(write_suite(tmp_path / "a")))
    b = load_suite(str(write_suite(tmp_path / "b", test=[{"id": "e1", "input": "awful", "target": "negative"}])))
    assert a.sha256 != b.sha256


def test_every_planted_fault_is_named_with_file_and_line(tmp_path: Path) -> None:
    folder = write_suite(
        tmp_path / "bad",
        toml=TOML.replace('metrics = ["accuracy", "f1"]', 'metrics = ["accuracy", "blue"]'),
        train=[
            {"id": "t1", "input": "ok", "target": "positive"},
            '{"id": "t2", "input": "broken json"',  # line 2: bad JSON
            {"id": "t3", "target": "positive"},  # line 3: no input
            {"id": "t1", "input": "dup", "target": "negative"},  # line 4: duplicate id
            {"id": "t5", "input": "x", "target": "neutral"},  # line 5: label outside the set
            {"id": "t6", "input": "x", "target": "positive", "doc_ids": ["nope"]},  # line 6: unknown doc
        ],
        test=[],  # empty split
        corpus=[{"id": "d1", "text": "fine"}, {"title": "no id"}],  # line 2: no id, no text
    )
    suite, problems = validate(str(folder))
    assert suite is None
    text = "\n".join(problems)
    assert f"{folder / 'suite.toml'}:6: unknown metric 'blue'" in text and "did you mean 'bleu'" in text
    assert f"{folder / 'train.jsonl'}:2: bad JSON" in text
    assert f"{folder / 'train.jsonl'}:3: missing 'input'" in text
    assert f"{folder / 'train.jsonl'}:4: duplicate id 't1' (first at train.jsonl:1)" in text
    assert f"{folder / 'train.jsonl'}:5: target 'neutral' is not one of the suite's labels" in text
    assert f"{folder / 'train.jsonl'}:6: doc_ids name 'nope'" in text
    assert f"{folder / 'test.jsonl'}: test split is empty" in text
    assert f"{folder / 'corpus.jsonl'}:2: corpus line without id and text" in text
    assert len(problems) == 8


def test_unknown_task_and_missing_split_file(tmp_path: Path) -> None:
    toml = TOML.replace('task = "classification"', 'task = "summarise"').replace('test = "test.jsonl"', 'test = "missing.jsonl"')
    folder = write_suite(tmp_path / "s", toml=toml)
    _, problems = validate(str(folder))
    assert any(p.startswith(f"{folder / 'suite.toml'}:2: unknown task 'summarise'") for p in problems)
    assert any(p.startswith(f"{folder / 'suite.toml'}:9: test split file 'missing.jsonl' not found") for p in problems)


def test_bad_toml_names_its_line(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s", toml=TOML.replace('labels = ["negative", "positive"]', "labels = [oops"))
    _, problems = validate(str(folder))
    assert len(problems) == 1 and problems[0].startswith(f"{folder / 'suite.toml'}:5: bad TOML")


def test_extraction_and_qa_targets(tmp_path: Path) -> None:
    toml = TOML.replace('task = "classification"', 'task = "extraction"').replace('labels = ["negative", "positive"]', "labels = []")
    folder = write_suite(
        tmp_path / "x", toml=toml,
        train=[{"id": "a", "input": "x", "target": {"city": "Paris"}}, {"id": "b", "input": "y", "target": "Paris"}],
        test=[{"id": "c", "input": "z", "target": {}}],
    )
    _, problems = validate(str(folder))
    assert problems == [f"{folder / 'train.jsonl'}:2: extraction target must be a JSON object of fields"]
    qa = TOML.replace('task = "classification"', 'task = "qa"').replace('labels = ["negative", "positive"]', "labels = []")
    folder = write_suite(tmp_path / "q", toml=qa, train=[{"id": "a", "input": "x", "target": ["r1", "r2"]}, {"id": "b", "input": "y", "target": []}])
    suite, problems = validate(str(folder))
    assert problems == [f"{folder / 'train.jsonl'}:2: target must be a non-empty string or a list of strings"]


def test_load_refuses_broken_suite_and_unknown_name(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s", test=[{"id": "e1", "input": "", "target": "positive"}])
    with pytest.raises(SuiteError) as info:
        load_suite(str(folder))
    assert f"{folder / 'test.jsonl'}:1: 'input' must be a non-empty string" in str(info.value)
    with pytest.raises(HarnessError, match="neither a folder nor a built-in suite"):
        load_suite("no-such-suite-anywhere")
