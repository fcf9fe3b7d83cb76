"""`sft-harness import`, end to end on real public data (tests/data/import/README.md): every format
into a suite that the validator accepts, with the right task, labels, fields and instruction."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.suites import validate
from harness.core.types import Suite

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "import"
SNIPS_CHAT = DATA / "snips-intents-chat.jsonl"
BANKING_CSV = DATA / "banking77-other-intents.csv"
FAQ = DATA / "covid-faq-20.jsonl"
E2E_CSV = DATA / "e2e-dev-24mr.csv"
SNIPS_INTENTS = ("AddToPlaylist", "BookRestaurant", "GetWeather", "PlayMusic", "RateBook", "SearchCreativeWork",
                 "SearchScreeningEvent")
BANKING_INTENTS = ("activate_my_card", "beneficiary_not_allowed", "cash_withdrawal_charge", "declined_card_payment",
                   "disposable_card_limits", "pending_top_up", "top_up_failed", "verify_my_identity",
                   "virtual_card_not_working", "wrong_exchange_rate_for_cash_withdrawal")


def run_import(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["import", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def imported(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[Suite, str]:
    """Import, check the command's own summary, and validate the folder with zero problems."""
    code, out, err = run_import(capsys, *args)
    assert code == 0, out + err
    folder = Path(args[args.index("--out") + 1])
    suite, problems = validate(str(folder))
    assert problems == [] and suite is not None
    assert f"ok {suite.name}: {suite.task}" in out and "leakage:" in out  # validate's own summary
    readme = (folder / "README.md").read_text()
    assert "sft-harness import" in readme and "## Source and licence" in readme
    return suite, out


def jsonl_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- done when: an OpenAI chat file and a CSV of a public dataset that no built-in suite uses ----------
def test_openai_chat_file_imports_as_classification(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite, out = imported(capsys, str(SNIPS_CHAT), "--out", str(tmp_path / "snips-intents"))
    assert "format: openai (lines of JSON objects; rows with 'messages' (chat turns))" in out
    assert "task: classification (7 distinct targets over 140 rows" in out
    assert suite.task == "classification" and suite.labels == SNIPS_INTENTS
    system = jsonl_rows(SNIPS_CHAT)[0]["messages"][0]["content"]
    assert suite.instruction == system  # shared by every line: it is the suite's, not in the inputs
    assert not any("System:" in ex.input for ex in suite.train + suite.test)
    assert suite.metrics == ("accuracy", "f1")
    assert (len(suite.train), len(suite.test), len(suite.validation)) == (98, 28, 14)


def test_banking77_csv_of_other_intents_imports_with_its_label_set(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "banking-other"
    suite, out = imported(capsys, str(BANKING_CSV), "--out", str(out_dir))
    assert "format: csv" in out and "columns: input text, target category" in out
    assert suite.labels == BANKING_INTENTS
    builtin, _ = validate("banking-intents")
    assert builtin is not None and not {x.replace("_", " ") for x in suite.labels} & set(builtin.labels)
    for split in (suite.train, suite.test, suite.validation):  # stratified: 16 rows per intent
        counts = {label: sum(ex.target == label for ex in split) for label in suite.labels}
        assert max(counts.values()) - min(counts.values()) <= 1, counts
    assert {ex.target for ex in suite.train} == set(suite.labels)
    assert suite.generation.max_new_tokens >= 12  # the longest label, estimated
    readme = (out_dir / "README.md").read_text()
    assert str(BANKING_CSV) in readme and "stratified by label, seed 0" in readme


# -- the other layouts ----------------------------------------------------------------------------------
def test_sharegpt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    speaker = {"system": "system", "user": "human", "assistant": "gpt"}
    rows = [{"conversations": [{"from": speaker[m["role"]], "value": m["content"]} for m in r["messages"]]}
            for r in jsonl_rows(SNIPS_CHAT)]
    src = write_jsonl(tmp_path / "snips.sharegpt.jsonl", rows)
    suite, out = imported(capsys, str(src), "--out", str(tmp_path / "s"))
    assert "format: sharegpt" in out
    assert suite.labels == SNIPS_INTENTS and suite.instruction == rows[0]["conversations"][0]["value"]


def test_alpaca_json_targets_become_extraction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slots = jsonl_rows(REPO / "suites" / "snips-slots" / "train.jsonl")[:60]
    rows = [{"instruction": "Extract the slots.", "input": r["input"], "output": json.dumps(r["target"])} for r in slots]
    src = write_jsonl(tmp_path / "slots.alpaca.jsonl", rows)
    suite, out = imported(capsys, str(src), "--out", str(tmp_path / "slots"))
    assert "format: alpaca" in out and "task: extraction (every target is a JSON object" in out
    assert suite.task == "extraction" and suite.instruction == "Extract the slots."
    assert suite.fields == tuple(sorted({k for r in slots for k in r["target"]}))
    by_input = {r["input"]: r["target"] for r in slots}
    assert all(ex.target == by_input[ex.input] for ex in suite.train + suite.test)
    assert suite.metrics == ("f1", "exact_match")


def test_alpaca_instruction_shared_by_most_rows_or_kept_in_each_input(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    faq = jsonl_rows(FAQ)  # 12 of the 20 answers are the CDC's
    rows = [{"instruction": f"Answer as {r['source']} would.", "input": r["title"], "output": r["text"]} for r in faq]
    suite, out = imported(capsys, str(write_jsonl(tmp_path / "a.jsonl", rows)), "--out", str(tmp_path / "a"))
    assert suite.task == "qa" and "task: qa (questions answered: median target" in out
    assert suite.instruction == "Answer as Center for Disease Control and Prevention (CDC) would."
    assert "instruction: the instruction of 12 of 20 rows; rows with another keep theirs in their input" in out
    inputs = {ex.target: ex.input for ex in suite.train + suite.test + suite.validation}
    for r in faq:
        cdc = r["source"].endswith("(CDC)")
        assert inputs[r["text"]] == (r["title"] if cdc else f"Answer as {r['source']} would.\n\n{r['title']}")
    rows = [{**row, "instruction": f"Answer question {i}."} for i, row in enumerate(rows)]
    suite, out = imported(capsys, str(write_jsonl(tmp_path / "b.jsonl", rows)), "--out", str(tmp_path / "b"))
    assert "no instruction shared by half the rows (the most common is on 1 of 20)" in out
    assert suite.instruction == "Answer the question."  # the default for qa
    assert all(ex.input.startswith("Answer question ") for ex in suite.train + suite.test)


def test_openai_turns_become_a_transcript_and_another_system_message_stays(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    faq = jsonl_rows(FAQ)
    shared = "Answer in the words of the public-health FAQ."
    rows = []
    for i, r in enumerate(faq):
        system = shared if i % 4 else "You are a WHO spokesperson."
        rows.append({"messages": [{"role": "system", "content": system},
                                  {"role": "user", "content": "Hello"},
                                  {"role": "assistant", "content": "Hello! What would you like to know?"},
                                  {"role": "user", "content": r["title"]},
                                  {"role": "assistant", "content": r["text"]}]})
    suite, out = imported(capsys, str(write_jsonl(tmp_path / "chat.jsonl", rows)), "--out", str(tmp_path / "c"))
    assert suite.instruction == shared and "instruction: the system message of 15 of 20 rows" in out
    examples = {ex.target: ex for ex in suite.train + suite.test + suite.validation}
    for i, r in enumerate(faq):
        transcript = f"User: Hello\nAssistant: Hello! What would you like to know?\nUser: {r['title']}"
        want = transcript if i % 4 else f"System: You are a WHO spokesperson.\n{transcript}"
        assert examples[r["text"]].input == want


def test_jsonl_columns_with_a_corpus_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite, out = imported(capsys, str(FAQ), "--input", "title", "--target", "text", "--meta", "source",
                          "--id", "id", "--corpus", str(FAQ), "--out", str(tmp_path / "faq"))
    assert "format: jsonl" in out and "corpus: 20 passage(s)" in out
    assert suite.task == "qa" and suite.metrics == ("f1", "bleu", "rouge_l")
    assert {d.id for d in suite.corpus} == {r["id"] for r in jsonl_rows(FAQ)}
    assert all(ex.id.startswith("faq-") and ex.meta["source"] for ex in suite.train + suite.test)
    assert 'path = "corpus.jsonl"' in (tmp_path / "faq" / "suite.toml").read_text()


def test_corpus_from_a_folder_of_markdown_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "kb"
    (docs / "covid" / ".hidden").mkdir(parents=True)
    faq = jsonl_rows(FAQ)
    for r in faq[:5]:
        (docs / "covid" / f"{r['id']}.md").write_text(f"Intro line\n\n## {r['title']}\n\n{r['text']}\n")
    (docs / "no-heading_note.txt").write_text(faq[5]["text"])
    (docs / "covid" / ".hidden" / "skip.md").write_text("# not me")
    (docs / "image.png").write_bytes(b"\x89PNG")
    suite, out = imported(capsys, str(SNIPS_CHAT), "--corpus", str(docs), "--out", str(tmp_path / "s"))
    assert "corpus: 6 document(s) from the .txt / .md files" in out
    by_id = {d.id: d for d in suite.corpus}
    assert sorted(by_id) == sorted([f"covid/{r['id']}.md" for r in faq[:5]] + ["no-heading_note.txt"])
    assert by_id[f"covid/{faq[0]['id']}.md"].title == faq[0]["title"]
    assert by_id["no-heading_note.txt"].title == "no heading note"


def test_headerless_tsv_with_ids_and_meta(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    poems = jsonl_rows(REPO / "suites" / "poem-sentiment" / "train.jsonl")
    src = tmp_path / "poems.tsv"
    src.write_text("".join(f"{r['id']}\t{r['input']}\t{r['target']}\t{len(r['input'])}\n" for r in poems))
    suite, out = imported(capsys, str(src), "--columns", "id,verse,label,chars", "--input", "verse",
                          "--target", "label", "--id", "id", "--meta", "chars", "--out", str(tmp_path / "p"))
    assert "format: tsv" in out and suite.labels == ("negative", "no impact", "positive")
    assert all(ex.id.startswith("train-") and ex.meta["chars"] == str(len(ex.input)) for ex in suite.train)


def test_generation_keeps_every_reference_of_a_repeated_input(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    with open(E2E_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    refs: dict[str, list[str]] = {}
    for r in rows:
        refs.setdefault(r["mr"], []).append(r["ref"].strip())
    suite, out = imported(capsys, str(E2E_CSV), "--input", "mr", "--target", "ref", "--out", str(tmp_path / "e2e"))
    assert suite.task == "generation" and suite.metrics == ("bleu", "rouge_l", "chrf")
    assert len(suite.train) + len(suite.test) + len(suite.validation) == len(refs) == 24
    for ex in suite.train + suite.test:
        want = list(dict.fromkeys(refs[ex.input]))
        assert list(ex.target if isinstance(ex.target, tuple) else (ex.target,)) == want
    assert f"removed {len(rows) - 24} duplicate input(s)" in out and "kept as extra references" in out


# -- splits given as files, duplicates ------------------------------------------------------------------
def test_given_splits_and_duplicates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open(BANKING_CSV, newline="") as f:
        rows = list(csv.DictReader(f))

    def table(name: str, part: list[dict]) -> Path:
        path = tmp_path / name
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, ["text", "category"])
            w.writeheader()
            w.writerows(part)
        return path

    train = rows[::2] + [rows[0], {**rows[2], "text": rows[2]["text"].upper() + " !!"}]  # an exact and a normalised copy
    test = rows[1::2] + [rows[4]]  # a train row again
    code, out, err = run_import(capsys, "--train", str(table("train.csv", train)), "--test",
                                str(table("test.csv", test)), "--out", str(tmp_path / "s"))
    assert code == 0, err
    assert ("duplicates: removed 3 duplicate input(s): 1 exact, 1 the same once normalised (case, spaces, "
            "punctuation), 1 test row(s) repeating an earlier split's") in out
    assert "splits: kept as given (train 80, test 80)" in out
    suite, problems = validate(str(tmp_path / "s"))
    assert suite is not None and not problems and suite.validation == ()
    assert "1 test row(s) repeating" in (tmp_path / "s" / "README.md").read_text()


# -- bad rows and bad usage: one line each, exit 2, nothing written --------------------------------------
def test_bad_rows_stop_the_import_unless_skip_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = SNIPS_CHAT.read_text().splitlines()
    lines[3] = "{not json"
    lines[7] = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    lines[9] = json.dumps({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]})
    lines[11] = json.dumps({"message": []})
    src = tmp_path / "chat.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out_dir = tmp_path / "out"
    code, out, err = run_import(capsys, str(src), "--out", str(out_dir))
    assert code == 2 and not out_dir.exists() and list(tmp_path.iterdir()) == [src]  # no temp folder left either
    assert f"{src}:4: bad JSON" in err
    assert f"{src}:8: no assistant message" in err
    assert f"{src}:10: no user message before the last assistant message" in err
    assert f"{src}:12: missing 'messages'" in err
    assert "error: 4 bad row(s); nothing was written" in err and "Traceback" not in err
    code, out, err = run_import(capsys, str(src), "--out", str(out_dir), "--skip-bad")
    assert code == 0 and "read 136 row(s); skipped 4 bad row(s) (--skip-bad)" in out
    assert "skipped 4 bad row(s)" in (out_dir / "README.md").read_text()


def test_bad_table_rows_name_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.csv"
    src.write_text('text,label\nhello there,a\n"multi\nline",\n,b\nok,a,extra\n')
    code, _, err = run_import(capsys, str(src), "--out", str(tmp_path / "o"))
    assert code == 2
    assert f"{src}:3: empty target" in err and f"{src}:5: empty input" in err
    assert f"{src}:6: 3 fields, but the header names 2 columns" in err
    code, _, err = run_import(capsys, str(src), "--target", "lable", "--out", str(tmp_path / "o"))
    assert code == 2 and "no column 'lable' (did you mean 'label'?); columns: text, label" in err
    assert len(err.strip().splitlines()) == 1


def test_existing_out_is_refused_unless_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "s"
    assert run_import(capsys, str(BANKING_CSV), "--out", str(out_dir))[0] == 0
    code, _, err = run_import(capsys, str(SNIPS_CHAT), "--out", str(out_dir))
    assert code == 2 and "not empty; pass --force to replace it" in err
    suite, out = imported(capsys, str(SNIPS_CHAT), "--out", str(out_dir), "--force")
    assert suite.labels == SNIPS_INTENTS and sorted(p.name for p in tmp_path.iterdir()) == ["s"]
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"x")
    code, _, err = run_import(capsys, str(SNIPS_CHAT), "--out", str(other), "--force")
    assert code == 2 and "--force replaces only a suite folder" in err and (other / "a.jpg").exists()


def test_a_hub_name_offline_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = run_import(capsys, "someone/customer-intents", "--out", str(tmp_path / "s"))
    assert code == 2 and not (tmp_path / "s").exists()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "'someone/customer-intents' is no local file or folder, and the Hugging Face Hub cannot be reached" in err
    code, _, err = run_import(capsys, "data/missing.csv", "--out", str(tmp_path / "s"))
    assert code == 2 and "data/missing.csv: no such file" in err


# -- Hugging Face datasets: a save_to_disk folder, a Parquet file ----------------------------------------
def banking_dataset():  # type: ignore[no-untyped-def]
    datasets = pytest.importorskip("datasets")
    with open(BANKING_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=list(BANKING_INTENTS))})
    data = {"text": [r["text"] for r in rows], "label": [BANKING_INTENTS.index(r["category"]) for r in rows]}
    return datasets.Dataset.from_dict(data, features=features)


def test_save_to_disk_folder_keeps_its_splits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = banking_dataset().train_test_split(test_size=0.25, seed=0)
    import datasets

    ds["unsupervised"] = ds["test"].select(range(3))
    ds = datasets.DatasetDict(ds)
    ds.save_to_disk(str(tmp_path / "hf"))
    suite, out = imported(capsys, str(tmp_path / "hf"), "--out", str(tmp_path / "s"))
    assert "format: hf (save_to_disk)" in out and "splits: kept as given (train 120, test 40)" in out
    assert f"split(s) left out: {tmp_path / 'hf'}[unsupervised] (3 rows)" in out
    assert suite.labels == BANKING_INTENTS  # ClassLabel ids as their names
    assert all(ex.id.startswith("train-") for ex in suite.train) and all(ex.id.startswith("test-") for ex in suite.test)


def test_parquet_through_datasets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    banking_dataset().to_parquet(str(tmp_path / "banking.parquet"))
    suite, out = imported(capsys, str(tmp_path / "banking.parquet"), "--test-size", "40", "--validation-size", "0",
                          "--out", str(tmp_path / "s"))
    assert "format: hf (data file) (the name ends in .parquet: read by datasets' parquet builder" in out
    assert suite.labels == BANKING_INTENTS and (len(suite.train), len(suite.test), len(suite.validation)) == (120, 40, 0)


def test_missing_datasets_package_is_an_install_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(__import__("sys").modules, "datasets", None)  # `import datasets` raises ImportError
    code, _, err = run_import(capsys, str(tmp_path / "x.parquet"), "--out", str(tmp_path / "s"))
    assert code == 2 and 'is not installed: run `pip install "datasets>=3"`' in err


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "1"))
