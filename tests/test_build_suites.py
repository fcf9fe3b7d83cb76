"""The committed suites/ are exactly what scripts/build_suites.py writes, and keep their promises."""

from __future__ import annotations

import importlib.util
import json
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "build_suites.py"
SUITES = REPO / "suites"
NAMES = ["banking-intents", "e2e-nlg", "poem-sentiment", "snips-slots", "support-faq"]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_suites", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


build_suites = _load_script()
SRC = build_suites.DEFAULT_SRC.resolve()
needs_data = pytest.mark.skipif(
    not SRC.is_dir(), reason=f"raw datasets not found at {SRC} (shared/datasets beside the repository)"
)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@needs_data
def test_build_is_deterministic_and_matches_committed_suites(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert build_suites.main(["--src", str(SRC), "--out", str(first)]) == 0
    assert build_suites.main(["--src", str(SRC), "--out", str(second)]) == 0
    built = _files(first)
    assert built == _files(second), "two runs of build_suites.py differ"
    committed = _files(SUITES)
    stale = sorted(k for k in built.keys() | committed.keys() if built.get(k) != committed.get(k))
    assert not stale, f"suites/ differs from the script's output (run scripts/build_suites.py): {stale}"


@pytest.mark.parametrize("name", NAMES)
def test_committed_suite_invariants(name: str) -> None:
    folder = SUITES / name
    conf = tomllib.loads((folder / "suite.toml").read_text(encoding="utf-8"))
    assert conf["name"] == name
    assert (folder / "README.md").is_file()
    splits = {s: _rows(folder / rel) for s, rel in conf["splits"].items()}
    corpus_ids = set()
    if "corpus" in conf:
        corpus_ids = {d["id"] for d in _rows(folder / conf["corpus"]["path"])}
    ids = [r["id"] for rows in splits.values() for r in rows]
    assert len(ids) == len(set(ids)), "ids must be unique across splits"
    assert 40 <= len(splits["test"]) <= 120 and 100 <= len(splits["train"]) <= 250  # quick on a CPU
    for rows in splits.values():
        for r in rows:
            assert r["input"].strip() and r["target"]
            if conf["task"] == "classification":
                assert r["target"] in conf["labels"]
            if conf["task"] == "extraction":
                assert set(r["target"]) <= set(conf["fields"])
                assert all(isinstance(v, str) and v in r["input"] for v in r["target"].values())
            assert set(r.get("doc_ids", [])) <= corpus_ids
    if conf["task"] == "classification":
        # every label is used in test, so macro F1 covers the whole label set
        assert {r["target"] for r in splits["test"]} == set(conf["labels"])


def test_support_faq_splits_by_faq_entry() -> None:
    folder = SUITES / "support-faq"
    train_docs = {d for r in _rows(folder / "train.jsonl") for d in r["doc_ids"]}
    test_docs = {d for r in _rows(folder / "test.jsonl") for d in r["doc_ids"]}
    assert train_docs and test_docs and not train_docs & test_docs


def test_generation_test_targets_hold_all_references() -> None:
    rows = _rows(SUITES / "e2e-nlg" / "test.jsonl")
    assert all(isinstance(r["target"], list) and len(r["target"]) == r["meta"]["n_refs"] for r in rows)


def test_answer_lead_cuts_at_sentence_boundary() -> None:
    lead = build_suites.answer_lead(["One two. Three four five.", "Six."], max_words=3)
    assert lead == "One two."
    # a list introduced by a colon keeps its first items
    assert (
        build_suites.answer_lead(["Symptoms include:", "Fever", "Cough"]) == "Symptoms include: Fever; Cough."
    )
    # abbreviations do not end a sentence
    assert build_suites.sentences("People in the U.S. may worry. Yes.") == [
        "People in the U.S. may worry.",
        "Yes.",
    ]
