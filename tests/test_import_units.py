"""The importer's decisions one by one: layout detection, task inference (each branch), the
stratified split, duplicate keys. End to end: tests/test_import.py."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.core.importing.dedup import deduplicate, normalize
from harness.core.importing.detect import detect_container, detect_shape
from harness.core.importing.rows import Draft
from harness.core.importing.split import DEFAULT_TEST, Size, parse_size, split_rows
from harness.core.importing.task import infer_task, max_new_tokens
from harness.engine.leakage import normalize as leakage_normalize

DATA = Path(__file__).resolve().parent / "data" / "import"


def drafts(pairs: list[tuple[str, object]]) -> list[Draft]:
    return [Draft(f"f:{i}", i, inp, tgt, id=f"r{i}") for i, (inp, tgt) in enumerate(pairs, 1)]  # type: ignore[arg-type]


# -- detection ---------------------------------------------------------------------------------------
def test_container_from_content_and_name(tmp_path: Path) -> None:
    cases = {"a.txt": '{"x": 1}\n', "b.data": "text\tlabel\nhi\tx\n", "c": "text,label\nhi,x\n",
             "d.json": '[{"x": 1}]', "e.csv": "text\nhi\n"}
    kinds = {}
    for name, content in cases.items():
        (tmp_path / name).write_text(content)
        kinds[name] = detect_container(str(tmp_path / name), None).kind
    assert kinds == {"a.txt": "jsonl", "b.data": "tsv", "c": "csv", "d.json": "hf-files", "e.csv": "csv"}
    (tmp_path / "f.parquet").write_bytes(b"PAR1")
    assert detect_container(str(tmp_path / "f.parquet"), None).kind == "hf-files"
    assert detect_container(str(tmp_path / "c"), "tsv").kind == "tsv"  # --format wins
    assert detect_container("owner/some-dataset", None).kind == "hub"
    (tmp_path / "plain").write_text("just words\n")
    with pytest.raises(HarnessError, match="cannot tell the format"):
        detect_container(str(tmp_path / "plain"), None)
    with pytest.raises(HarnessError, match="not one written by datasets' save_to_disk"):
        detect_container(str(tmp_path), None)


def test_shape_from_the_first_rows() -> None:
    chat = json.loads((DATA / "snips-intents-chat.jsonl").read_text().splitlines()[0])
    assert detect_shape([chat], None, "jsonl")[0] == "openai"
    assert detect_shape([{"conversations": []}], None, "jsonl")[0] == "sharegpt"
    assert detect_shape([{"instruction": "a", "input": "", "output": "b"}], None, "jsonl")[0] == "alpaca"
    assert detect_shape([{"text": "a", "label": "b"}], None, "jsonl")[0] == "columns"
    assert detect_shape([chat], None, "csv")[0] == "columns"
    assert detect_shape([{"text": "a"}], "openai", "jsonl") == ("openai", "--format openai")


# -- task inference ----------------------------------------------------------------------------------
def test_classification_needs_few_short_repeated_labels() -> None:
    rows = drafts([(f"message {i}", ["card arrival", "Card  Arrival", "refund"][i % 3]) for i in range(30)])
    choice = infer_task(rows, None)
    assert choice.task == "classification" and choice.labels == ("card arrival", "refund")
    assert "2 distinct targets over 30 rows" in choice.reason and "1 spelling(s) differing only in case" in choice.reason
    few = drafts([(f"q{i}", f"label {i % 10}") for i in range(20)])  # 2 rows per label: an answer set, not labels
    assert infer_task(few, None).task == "qa"
    long = drafts([(f"q{i}", ["one two three four five six seven", "no"][i % 2]) for i in range(20)])
    assert infer_task(long, None).task != "classification"


def test_labels_that_are_one_answer_once_normalised_are_refused() -> None:
    rows = drafts([(f"verse {i}", ["-1", "0", "1"][i % 3]) for i in range(30)])
    with pytest.raises(HarnessError, match="labels '-1' and '1' are one answer once normalised"):
        infer_task(rows, None)


def test_extraction_from_json_objects_or_text_holding_one() -> None:
    rows = drafts([("book for 2", {"party": "2"}), ("in Paris", '{"city": "Paris", "n": 3, "x": null}')])
    choice = infer_task(rows, None)
    assert choice.task == "extraction" and choice.fields == ("city", "n", "party")
    with pytest.raises(HarnessError, match="f:1: the target is not a JSON object"):
        infer_task(drafts([("a", "plain"), ("b", "{}")]), "extraction")
    assert infer_task(drafts([("a", '{"k": [1]}'), ("b", "{}")]), None).task != "extraction"  # nested: not fields


def test_qa_and_generation_by_length_and_questions() -> None:
    short = drafts([(f"capital of country {i}", f"city {i}") for i in range(20)])
    assert infer_task(short, None).task == "qa"
    answer = " ".join(["word"] * 40)
    questions = drafts([(f"how does thing {i} work?", f"{answer} {i}") for i in range(20)])
    choice = infer_task(questions, None)
    assert choice.task == "qa" and "100% of inputs end in '?'" in choice.reason
    texts = drafts([(f"name[place {i}], food[x]", f"{answer} {i}") for i in range(20)])
    assert infer_task(texts, None).task == "generation"
    assert infer_task(texts, "qa").task == "qa"  # --task wins
    with pytest.raises(HarnessError, match="--task classification: f:1: the target is not one label"):
        infer_task(drafts([("a", ("x", "y")), ("b", "z")]), "classification")


def test_max_new_tokens_follows_the_targets() -> None:
    rows = drafts([(f"q{i}", " ".join(["w"] * (10 if i < 19 else 200))) for i in range(20)])
    choice = infer_task(rows, "generation")
    tokens, how = max_new_tokens([r.target for r in rows], choice)  # type: ignore[misc]
    assert tokens == 32 and "95th percentile of targets ≈ 15 tokens" in how  # 10 words x 1.5, +25% +8, to 8s
    labels = infer_task(drafts([(f"m{i}", ["yes", "no"][i % 2]) for i in range(10)]), None)
    assert max_new_tokens(["yes", "no"], labels)[0] == 8


# -- splits ------------------------------------------------------------------------------------------
def test_stratified_split_keeps_every_label_in_train_and_the_proportions() -> None:
    labels = ["a"] * 60 + ["b"] * 30 + ["c"] * 7 + ["d"] * 2 + ["e"]
    made = split_rows(labels, Size(fraction=0.2), Size(fraction=0.1), seed=3, label=lambda x: x)
    train, test, val = ([labels[i] for i in part] for part in (made.train, made.test, made.validation))
    assert sorted(made.train + made.test + made.validation) == list(range(100))
    assert (len(test), len(val)) == (20, 10) and set(train) == set(labels)
    for name, n in Counter(labels).items():
        assert abs(test.count(name) - 0.2 * n) <= 1 and abs(val.count(name) - 0.1 * n) <= 1
    assert made.train == sorted(made.train)  # rows stay in their file's order
    again = split_rows(labels, Size(fraction=0.2), Size(fraction=0.1), seed=3, label=lambda x: x)
    assert again == made and split_rows(labels, Size(fraction=0.2), None, seed=4, label=lambda x: x) != made


def test_split_sizes_and_their_limits() -> None:
    assert parse_size("0.25", "--test-size") == Size(fraction=0.25)
    assert parse_size("15%", "--test-size") == Size(fraction=0.15)
    assert parse_size("300", "--test-size") == Size(count=300)
    for bad in ("1.5", "abc", "-3"):
        with pytest.raises(HarnessError, match="--test-size"):
            parse_size(bad, "--test-size")
    assert DEFAULT_TEST.of(10_000) == 500 and DEFAULT_TEST.of(100) == 20
    with pytest.raises(HarnessError, match="too few"):
        split_rows(list(range(3)), Size(count=2), Size(count=1), 0, None)
    with pytest.raises(HarnessError, match="every label has a single row"):
        split_rows(["a", "b", "c", "d"], Size(count=1), None, 0, lambda x: x)
    made = split_rows(["a", "a", "b"], Size(count=2), None, 0, lambda x: x)  # b's only row stays in train
    assert len(made.test) == 1 and "fewer than asked" in made.note


# -- duplicates --------------------------------------------------------------------------------------
def test_duplicate_keys_match_the_leakage_check() -> None:
    for text in ("Hello,  World!!", "Café — déjà vu ™ 1+1=2", "ÉCOLE\u2028x", "नित", "¿Qué?"):
        assert normalize(text) == leakage_normalize(text)
    kept, removed = deduplicate({
        "train": drafts([("Where is my card?", "a"), ("where is my card", "b"), ("Where is my card?", "a"), ("?!", "c")]),
        "test": drafts([("WHERE IS MY CARD", "a"), ("!?", "c"), ("new one", "a")]),
    })
    assert [d.input for d in kept["train"]] == ["Where is my card?", "?!"]
    assert [d.input for d in kept["test"]] == ["!?", "new one"]  # punctuation alone is no duplicate of other punctuation
    assert (sum(removed.exact.values()), sum(removed.normalised.values()), removed.across["test"]) == (1, 1, 1)
    assert removed.conflicts == 1 and removed.other_targets == {"r1": ["b"]}
