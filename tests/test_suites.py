"""Suite loading and validation: every planted fault is reported with its file:line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.core.errors import HarnessError, SuiteError
from harness.core.suites import load_suite, validate

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


def smaller_builtin(name: str, folder: Path, *, test: int | None = None, train: int | None = None,
                    corpus: int | None = None, human: bool = True, max_new_tokens: int | None = None) -> Path:
    """A copy of a built-in suite with the first `test`, `train` and `corpus` rows of those files (None
    keeps a file whole; passages the kept rows name stay too), for tests whose assertions hold at
    any size: the whole support-faq costs a test half a minute of training and embedding.
    `human=False` leaves out human.jsonl; `max_new_tokens` caps its answers (a few answers of the
    real model decode at some 0.15 s a token on 2 cores)."""
    import shutil

    from harness.core.suites import builtin_suites_dir

    ignore = None if human else shutil.ignore_patterns("human.jsonl")
    suite = Path(shutil.copytree(builtin_suites_dir() / name, folder, ignore=ignore))

    def keep(file: str, n: int | None, also: set[str] | frozenset[str] = frozenset()) -> list[dict]:
        path = suite / file
        if not path.is_file():
            return []
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        if n is None:
            return rows
        kept = [r for i, r in enumerate(rows) if i < n or r.get("id") in also]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        return kept

    named = {d for r in keep("test.jsonl", test) + keep("train.jsonl", train) for d in r.get("doc_ids", [])}
    keep("corpus.jsonl", corpus, named)
    if max_new_tokens is not None:
        toml = (suite / "suite.toml").read_text(encoding="utf-8")
        toml, n = re.subn(r"(?m)^max_new_tokens = \d+$", f"max_new_tokens = {max_new_tokens}", toml)
        assert n == 1, f"{name}/suite.toml sets no max_new_tokens"
        (suite / "suite.toml").write_text(toml, encoding="utf-8")
    return suite


SENTIMENT_ROWS = [("I love this", "positive"), ("terrible", "negative"), ("wonderful", "positive"), ("bad", "negative")]


def short_sentiment_suite(folder: Path, name: str, test: tuple[str, str], train_copies: int = 1) -> Path:
    """Two labels, a one-word instruction and short inputs: for tests whose cost is prompt length
    (the Gemma tests). `train_copies` repeats the four train rows; `test` is the one test example."""
    toml = (f'name = "{name}"\ntask = "classification"\ninstruction = "Sentiment?"\n'
            'labels = ["negative", "positive"]\nmetrics = ["accuracy"]\n'
            '[splits]\ntrain = "train.jsonl"\ntest = "test.jsonl"\n')
    train = [{"id": f"r{i}", "input": t, "target": y} for i, (t, y) in enumerate(SENTIMENT_ROWS * train_copies)]
    return write_suite(folder, toml, train=train, test=[{"id": "t0", "input": test[0], "target": test[1]}], corpus=[])


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
    from harness.scoring.registry import check_metric

    suite, problems = validate(str(folder), known_metrics=check_metric)
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


# -- hostile suites: every class of problem is a `file:line: message`, never a traceback ---------
QA_TOML = TOML.replace('task = "classification"', 'task = "qa"').replace('labels = ["negative", "positive"]', "labels = []")


def problems_of(folder: Path) -> list[str]:
    suite, problems = validate(str(folder))
    assert suite is None and problems
    with pytest.raises(SuiteError) as info:
        load_suite(str(folder))
    assert info.value.problems == problems
    return problems


def track_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path whose bytes the loader reads."""
    reads: list[Path] = []
    original = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        reads.append(self.resolve())
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    return reads


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink", "symlinked-folder"])
def test_split_outside_the_suite_is_refused_unopened(tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret" / "test.jsonl"
    secret.parent.mkdir()
    secret.write_text(json.dumps({"id": "e1", "input": "great", "target": "positive"}) + "\n")
    folder = write_suite(tmp_path / "s")
    rel = {"absolute": str(secret), "dotdot": "../secret/test.jsonl", "symlink": "link.jsonl", "symlinked-folder": "data/test.jsonl"}[how]
    if how == "symlink":
        (folder / "link.jsonl").symlink_to(secret)
    if how == "symlinked-folder":
        (folder / "data").symlink_to(secret.parent, target_is_directory=True)
    (folder / "suite.toml").write_text(TOML.replace('test = "test.jsonl"', f"test = {json.dumps(rel)}"))
    reads = track_reads(monkeypatch)
    problems = problems_of(folder)
    assert problems == [f"{folder / 'suite.toml'}:9: split 'test' points outside the suite folder ('{rel}')"]
    assert secret.resolve() not in reads


def test_corpus_outside_the_suite_is_refused_unopened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "corpus.jsonl"
    outside.write_text(json.dumps({"id": "d1", "text": "x"}) + "\n")
    folder = write_suite(tmp_path / "s")
    (folder / "corpus.jsonl").unlink()
    (folder / "corpus.jsonl").symlink_to(outside)
    reads = track_reads(monkeypatch)
    problems = problems_of(folder)
    # one problem: rows naming corpus ids are not blamed for the corpus being refused
    assert problems == [f"{folder / 'suite.toml'}:11: corpus 'path' points outside the suite folder ('corpus.jsonl')"]
    assert outside.resolve() not in reads


def test_symlink_inside_the_suite_is_fine(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s")
    (folder / "data").mkdir()
    (folder / "test.jsonl").rename(folder / "data" / "real.jsonl")
    (folder / "test.jsonl").symlink_to(Path("data") / "real.jsonl")
    assert [e.id for e in load_suite(str(folder)).test] == ["e1"]


@pytest.mark.parametrize(
    "value", ["5", "[\"test.jsonl\"]", '""', '"."', '"nowhere.jsonl"', '"te\\u0000st"', '"' + "a" * 5000 + '"', "{a = 1}"],
    ids=["integer", "array", "empty", "folder", "missing", "nul", "too-long", "table"],
)
def test_split_path_of_wrong_kind_is_one_problem_at_its_line(tmp_path: Path, value: str) -> None:
    folder = write_suite(tmp_path / "s", toml=TOML.replace('test = "test.jsonl"', f"test = {value}"))
    problems = problems_of(folder)
    assert len(problems) == 1 and problems[0].startswith(f"{folder / 'suite.toml'}:9: ")


def test_suite_toml_not_utf8_or_not_a_file(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s")
    (folder / "suite.toml").write_bytes(TOML.encode().replace(b"tiny suite", b"tiny \xff suite"))
    byte = TOML.encode().index(b"tiny suite") + len("tiny ") + 1
    assert problems_of(folder) == [f"{folder / 'suite.toml'}:3: not UTF-8 text (byte {byte} of the file)"]
    (folder / "suite.toml").unlink()
    (folder / "suite.toml").mkdir()
    assert problems_of(folder) == [f"{folder / 'suite.toml'}: is a folder, not a file"]


@pytest.mark.parametrize("toml", ["x = " + "[" * 50_000 + "]" * 50_000, "x = " + "9" * 5000])
def test_hostile_toml_values_are_bad_toml(tmp_path: Path, toml: str) -> None:
    folder = write_suite(tmp_path / "s", toml=TOML + toml + "\n")
    problems = problems_of(folder)
    assert len(problems) == 1 and problems[0].startswith(f"{folder / 'suite.toml'}: bad TOML")


def test_labels_as_a_string_is_one_problem(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s", toml=TOML.replace('labels = ["negative", "positive"]', 'labels = "negative, positive"'))
    assert problems_of(folder) == [
        f"{folder / 'suite.toml'}:5: 'labels' must be a list of strings like labels = [\"yes\", \"no\"], got a string"
    ]


def test_labels_that_collide_once_normalised(tmp_path: Path) -> None:
    toml = TOML.replace('labels = ["negative", "positive"]', 'labels = ["negative", "positive", "Positive!", " negative"]')
    problems = problems_of(write_suite(tmp_path / "s", toml=toml))
    assert len(problems) == 2 and all(p.split(": ", 1)[0].endswith("suite.toml:5") for p in problems)
    assert "labels 'positive' and 'Positive!' are the same answer" in problems[0]
    assert "labels 'negative' and ' negative' are the same answer" in problems[1]


def test_stop_as_a_string_gets_a_hint(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s", toml=TOML + 'stop = "###"\n')
    assert problems_of(folder) == [
        f"{folder / 'suite.toml'}:14: 'stop' must be a list of strings: write stop = [\"###\"] "
        "(a string would stop at each of its characters)"
    ]
    folder = write_suite(tmp_path / "t", toml=TOML + 'stop = ["###", ""]\n')
    assert problems_of(folder) == [f"{folder / 'suite.toml'}:14: 'stop' must be a list of non-empty strings"]
    assert load_suite(str(write_suite(tmp_path / "u", toml=TOML + 'stop = ["###", "\\n\\n"]\n'))).generation.stop == ("###", "\n\n")


@pytest.mark.parametrize(
    ("value", "why"),
    [('"abc"', "a whole number of tokens, got a string"), ("1.9", "a whole number of tokens, got a float"),
     ("true", "a whole number of tokens, got a boolean"), ("0", "positive and at most 32768, got 0"),
     ("-3", "positive and at most 32768, got -3"), ("1_000_000", "positive and at most 32768, got 1000000")],
)
def test_max_new_tokens_must_be_a_sane_positive_integer(tmp_path: Path, value: str, why: str) -> None:
    folder = write_suite(tmp_path / "s", toml=TOML.replace("max_new_tokens = 8", f"max_new_tokens = {value}"))
    assert problems_of(folder) == [f"{folder / 'suite.toml'}:13: max_new_tokens must be {why}"]


@pytest.mark.parametrize("table", ["splits", "corpus", "generation"])
def test_tables_given_as_strings(tmp_path: Path, table: str) -> None:
    lines = TOML.split("\n")
    start = lines.index(f"[{table}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    toml = "\n".join([f'{table} = "{table}.jsonl"', *lines[:start], *lines[end:]])
    folder = write_suite(tmp_path / "s", toml=toml)
    assert problems_of(folder) == [
        f"{folder / 'suite.toml'}:1: '{table}' must be a table ([{table}] with one key per line), got a string"
    ]


def test_unknown_keys_are_named_with_a_hint(tmp_path: Path) -> None:
    toml = (TOML.replace("metrics =", "metric = []\nmetrics =").replace('path = "corpus.jsonl"', 'path = "corpus.jsonl"\npaht = 1')
            + "max_tokens = 3\n")
    problems = problems_of(write_suite(tmp_path / "s", toml=toml))
    assert [p.split("suite.toml:", 1)[1] for p in problems] == [
        "6: unknown key 'metric' (did you mean 'metrics'?); known: " + ", ".join(
            ["name", "task", "description", "instruction", "labels", "fields", "metrics", "primary_metric", "splits",
             "corpus", "generation", "judges"]),
        "16: unknown key 'max_tokens' in [generation] (did you mean 'max_new_tokens'?); known: max_new_tokens, stop",
        "13: unknown key 'paht' in [corpus] (did you mean 'path'?); known: path",
    ]


@pytest.mark.parametrize(
    ("line", "value", "why"),
    [("name", "5", "'name' must be a non-empty string, got an integer"),
     ("task", '""', "'task' must be a non-empty string"),
     ("description", "[1]", "'description' must be a string, got an array"),
     ("metrics", '"accuracy"', "'metrics' must be a list of strings like metrics = [\"accuracy\", \"f1\"], got a string"),
     ("metrics", '["accuracy", 3]', "'metrics' must be a list of non-empty strings; item 2 is an integer"),
     ("labels", '["negative", ""]', "'labels' must be a list of non-empty strings; item 2 is an empty string")],
)
def test_top_level_types(tmp_path: Path, line: str, value: str, why: str) -> None:
    lines = TOML.split("\n")
    n = next(i for i, text in enumerate(lines) if text.startswith(f"{line} ="))
    lines[n] = f"{line} = {value}"
    folder = write_suite(tmp_path / "s", toml="\n".join(lines))
    assert problems_of(folder) == [f"{folder / 'suite.toml'}:{n + 1}: {why}"]


def test_primary_metric(tmp_path: Path) -> None:
    suite = load_suite(str(write_suite(tmp_path / "s", toml=TOML.replace("[splits]", 'primary_metric = "f1"\n[splits]'))))
    assert suite.primary_metric == "f1" and suite.metrics == ("f1", "accuracy")
    folder = write_suite(tmp_path / "t", toml=TOML.replace("[splits]", 'primary_metric = "bleu"\n[splits]'))
    assert problems_of(folder) == [
        f"{folder / 'suite.toml'}:7: primary_metric 'bleu' is not one of the suite's metrics; metrics: accuracy, f1"
    ]


@pytest.mark.parametrize(
    ("text", "key", "table", "line"),
    [('a = 1\n[ splits ]  # c\ntrain = "x"\n', "train", "splits", 3),
     ('[ "splits" ]\n"train" = "x"\n\'test\' = "y"\n', "test", "splits", 3),
     ('name = "x"\nsplits.test = "y"\n', "test", "splits", 2),
     ('name = "x"\nsplits.test = "y"\n', "splits", None, 2),
     ('name = "x"\nsplits = {test = "y"}\n', "test", "splits", 2),
     ('[splits]\ntrain = "x"\n', "test", "splits", 1),
     ('[generation]\r\nstop = []\r\n', "stop", "generation", 2),
     ('description = """\n[splits]\ntest = 1\n"""\n[splits]\ntest = 2\n', "test", "splits", 6),
     ('[splits]\ntest = 1\n', "test", None, None),
     ('', "test", "splits", None),
     ('[[[\n"\\\n= = =\n\'\n', "test", "splits", None)],
)
def test_toml_line_finds_keys(text: str, key: str, table: str | None, line: int | None) -> None:
    from harness.core.suites import _toml_line

    assert _toml_line(text, key, table) == line


def test_int_ids_are_refused(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s", test=[{"id": 7, "input": "great", "target": "positive"}])
    assert problems_of(folder) == [f"{folder / 'test.jsonl'}:1: 'id' must be a string, got a number"]


@pytest.mark.parametrize(
    ("row", "why"),
    [({"id": " ", "input": "x", "target": "positive"}, "'id' must be a non-empty string"),
     ({"id": "e1", "input": 3, "target": "positive"}, "'input' must be a non-empty string, got a number"),
     ({"id": "e1", "input": "x", "target": 3}, "target must be a non-empty string or a list of strings, got a number"),
     ({"id": "e1", "input": "x", "target": ["positive", 3]}, "target must be a non-empty string or a list of strings"),
     ({"id": "e1", "input": "x", "target": "positive", "meta": {"src": {"a": 1}}},
      "meta 'src' must be a string, number, boolean or null (it names a slice), got an object"),
     ({"id": "e1", "input": "x", "target": "positive", "meta": []}, "'meta' must be a JSON object, got an array"),
     ({"id": "e1", "input": "x", "target": "positive", "doc_ids": "d1"}, "'doc_ids' must be a list of corpus ids (strings)"),
     ({"id": "e1", "input": "x", "target": "positive", "doc_ids": [1]}, "'doc_ids' must be a list of corpus ids (strings)"),
     ('{"id": "e1", "input": "x", "target": "positive", "meta": {"score": NaN}}', "meta 'score' must be a finite number, got nan"),
     ([1, 2], "expected a JSON object, got an array")],
)
def test_row_fields_are_type_checked(tmp_path: Path, row: object, why: str) -> None:
    folder = write_suite(tmp_path / "s", test=[row if isinstance(row, str) else json.dumps(row)])
    assert problems_of(folder) == [f"{folder / 'test.jsonl'}:1: {why}"]


def test_meta_scalars_are_kept(tmp_path: Path) -> None:
    meta = {"s": "a", "i": 3, "f": 0.5, "b": True, "n": None}
    suite = load_suite(str(write_suite(tmp_path / "s", test=[{"id": "e1", "input": "x", "target": "positive", "meta": meta}])))
    assert suite.test[0].meta == meta


def test_doc_ids_without_a_corpus(tmp_path: Path) -> None:
    toml = TOML.replace('[corpus]\npath = "corpus.jsonl"\n', "")
    folder = write_suite(tmp_path / "s", toml=toml)
    assert problems_of(folder) == [f"{folder / 'train.jsonl'}:2: 'doc_ids' given but the suite has no [corpus]"]


def test_extraction_values_and_fields(tmp_path: Path) -> None:
    toml = (TOML.replace('task = "classification"', 'task = "extraction"').replace('labels = ["negative", "positive"]', "labels = []")
            .replace("metrics =", 'fields = ["city", "date"]\nmetrics ='))
    folder = write_suite(
        tmp_path / "x", toml=toml,
        train=[{"id": "a", "input": "x", "target": {"city": "Paris", "date": "today"}},
               {"id": "b", "input": "y", "target": {"city": 75}},
               {"id": "c", "input": "y", "target": {"city": ["Paris"], "town": "Lyon"}},
               {"id": "d", "input": "y", "target": {"cty": "Lyon"}}],
        test=[{"id": "e", "input": "z", "target": {}}],
    )
    train = folder / "train.jsonl"
    assert problems_of(folder) == [
        f"{train}:2: field 'city' must be a string, got a number",
        f"{train}:3: field 'city' must be a string, got an array",
        f"{train}:3: field 'town' is not one of the suite's fields",
        f"{train}:4: field 'cty' is not one of the suite's fields (did you mean 'city'?)",
    ]
    folder = write_suite(tmp_path / "y", toml=toml.replace('["city", "date"]', '["city", "City", "da-te", "da_te"]'),
                         train=[{"id": "a", "input": "x", "target": {"city": "Paris"}}], test=[{"id": "e", "input": "z", "target": {}}])
    problems = problems_of(folder)
    assert len(problems) == 2 and "fields 'city' and 'City' are the same field" in problems[0]


def test_corpus_rows_are_type_checked(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s", corpus=[
        {"id": "d1", "text": 42}, {"id": 5, "text": "x"}, {"id": "d3", "text": {"a": "b"}, "title": "ok"},
        {"id": "d4", "text": "x", "title": ["no"]}, {"id": "d5", "text": " "}, {"id": "d6", "text": "x"}, {"id": "d6", "text": "y"},
    ])
    corpus = folder / "corpus.jsonl"
    assert problems_of(folder) == [
        f"{corpus}:1: corpus 'text' must be a non-empty string, got a number",
        f"{corpus}:2: corpus 'id' must be a non-empty string, got a number",
        f"{corpus}:3: corpus 'text' must be a non-empty string, got an object",
        f"{corpus}:4: corpus 'title' must be a string, got an array",
        f"{corpus}:5: corpus 'text' must be a non-empty string",
        f"{corpus}:7: duplicate corpus id 'd6' (first at line 6)",
    ]


def test_non_utf8_jsonl_names_the_line_and_is_not_empty(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s")
    (folder / "test.jsonl").write_bytes(b"\n" + json.dumps({"id": "e1", "input": "caf\xe9", "target": "positive"}, ensure_ascii=False).encode("latin-1") + b"\n")
    assert problems_of(folder) == [f"{folder / 'test.jsonl'}:2: not UTF-8 text (byte 27 of the line)"]


def test_only_a_file_without_lines_is_empty(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "s", test=["", "   "])
    assert problems_of(folder) == [f"{folder / 'test.jsonl'}: test split is empty"]
    folder = write_suite(tmp_path / "t", test=['{"id": "e1", "input": "x", "target": "positive"'])
    assert problems_of(folder) == [f"{folder / 'test.jsonl'}:1: bad JSON: Expecting ',' delimiter (column 48)"]


@pytest.mark.parametrize(
    "line",
    ['{"id": "e1", "input": ' + "[" * 200_000 + "]" * 200_000 + ', "target": "positive"}',
     '{"id": "e1", "input": "x", "target": "positive", "meta": {"n": ' + "7" * 5000 + "}}"],
)
def test_hostile_json_is_a_bad_line(tmp_path: Path, line: str) -> None:
    folder = write_suite(tmp_path / "s", test=[{"id": "e0", "input": "x", "target": "positive"}, line])
    problems = problems_of(folder)
    assert len(problems) == 1 and problems[0].startswith(f"{folder / 'test.jsonl'}:2: bad JSON")


def test_line_separators_inside_strings_are_kept(tmp_path: Path) -> None:
    text = "one\u2028two\u0085three\x1cfour\u2029five"
    folder = write_suite(tmp_path / "s", test=[json.dumps({"id": "e1", "input": text, "target": "positive"}, ensure_ascii=False)],
                         corpus=[json.dumps({"id": "d1", "text": text}, ensure_ascii=False)])
    assert "\u2028" in (folder / "test.jsonl").read_text(encoding="utf-8")
    suite = load_suite(str(folder))
    assert suite.test[0].input == text and suite.corpus[0].text == text


def test_jsonl_that_is_a_folder_or_has_a_huge_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.core.suites

    folder = write_suite(tmp_path / "s")
    (folder / "test.jsonl").unlink()
    (folder / "test.jsonl").mkdir()
    assert problems_of(folder) == [f"{folder / 'suite.toml'}:9: test split file 'test.jsonl' is not a regular file"]
    monkeypatch.setattr(harness.core.suites, "MAX_LINE_BYTES", 1000)
    folder = write_suite(tmp_path / "t", test=[{"id": "e1", "input": "x" * 2000, "target": "positive"},
                                               {"id": "e2", "input": "x", "target": "positive"}])
    assert problems_of(folder) == [f"{folder / 'test.jsonl'}:1: line is 2047 bytes, more than the 1000 bytes a line may have"]


def test_problems_per_file_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.core.suites

    monkeypatch.setattr(harness.core.suites, "MAX_PROBLEMS_PER_FILE", 3)
    folder = write_suite(tmp_path / "s", test=["x"] * 10)
    problems = problems_of(folder)
    assert len(problems) == 4 and problems[-1] == f"{folder / 'test.jsonl'}: 7 more problem(s) not listed (the first 3 are)"


@pytest.mark.parametrize("name", ["support-faq", "banking-intents", "poem-sentiment", "snips-slots", "e2e-nlg"])
def test_builtin_suites_validate(name: str) -> None:
    suite, problems = validate(name)
    assert problems == [] and suite is not None and suite.name == name
