"""Leakage between the test split and train / validation / corpus (harness.engine.leakage), the
clean-subset metrics (harness.scoring.clean), and the flags that act on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.core.types import Document, Example, GenerationConfig, Suite
from harness.engine.leakage import check_leakage, normalize, sentence_key

LONG = "the quarterly invoice for the enterprise plan was sent to the wrong billing address again this month"


def _suite(train: list[Example], test: list[Example], *, validation: tuple[Example, ...] = (),
           corpus: tuple[Document, ...] = (), task: str = "classification") -> Suite:
    return Suite(name="planted", task=task, instruction="", labels=("a", "b") if task == "classification" else (),  # type: ignore[arg-type]
                 metrics=("accuracy",) if task == "classification" else ("f1",), generation=GenerationConfig(),
                 train=tuple(train), test=tuple(test), validation=validation, corpus=corpus)


def planted() -> Suite:
    train = [
        Example("tr-copy", "How Do I RESET my password??", "a"),  # verbatim, up to case and punctuation
        Example("tr-long", f"Hello team, {LONG}, please fix it.", "b"),  # holds the test's 13-grams
        Example("tr-order", "My card was declined. I was at the shop. It happened twice.", "a"),
        Example("tr-para", "On Sundays, what time does the store open?", "b"),
        Example("tr-other", "Where is the nearest train station to the office?", "a"),
    ]
    test = [
        Example("te-copy", "how do i reset my password", "a"),
        Example("te-long", LONG.capitalize() + "!", "b"),
        Example("te-order", "It happened twice. My card was declined. I was at the shop.", "a"),
        Example("te-para", "What time does the store open on Sundays?", "b"),
        Example("te-dup1", "Can I change the currency of my savings account?", "a"),
        Example("te-dup2", "can I change the currency of my savings account", "a"),
        Example("te-val", "Is there a fee for topping up by bank transfer?", "b"),
        Example("te-clean", "Which colours does the new phone come in?", "b"),
    ]
    validation = (Example("va-copy", "Is there a fee for topping up by bank transfer", "b"),)
    return _suite(train, test, validation=validation)


def _ids(pairs: list, kind: str, split: str) -> set[tuple[str, str]]:
    return {(p.test_id, p.other_id) for p in pairs if p.kind == kind and p.split == split}


def test_normalisation_and_sentence_order() -> None:
    assert normalize("  Hello,\tWORLD!! ") == "hello world"
    assert sentence_key("B b. A a!") == sentence_key("a A? b, B.")
    assert sentence_key("one two. three") != sentence_key("one. two three")


def test_planted_leaks_are_caught_with_ids_without_an_embedder() -> None:
    report = check_leakage(planted())
    assert _ids(report.pairs, "exact", "train") == {("te-copy", "tr-copy")}
    assert _ids(report.pairs, "exact", "validation") == {("te-val", "va-copy")}
    assert _ids(report.pairs, "reordered", "train") == {("te-order", "tr-order")}
    assert _ids(report.pairs, "ngram", "train") == {("te-long", "tr-long")}  # the only test input of 13+ words
    assert _ids(report.test_duplicates, "exact", "test") == {("te-dup2", "te-dup1")}
    assert report.leaked_ids == {"te-copy", "te-val", "te-order", "te-long"}  # a dup inside test is not a leak
    assert report.threshold is None and "near-duplicates not checked" in report.summary()
    assert report.short_inputs == 7
    data = report.to_json()
    assert data["counts"]["exact"] == {"train": 1, "validation": 1} and data["n_leaked"] == 4
    assert json.loads(json.dumps(data)) == data


@pytest.fixture(scope="module")
def encoder():  # type: ignore[no-untyped-def]
    from harness.engine.encoder import Encoder

    return Encoder("all-minilm-l6-v2")


def test_a_paraphrase_is_a_near_duplicate_with_the_real_embedder(encoder) -> None:  # type: ignore[no-untyped-def]
    report = check_leakage(planted(), encoder=encoder)
    near = {p.test_id: p for p in report.pairs if p.kind == "near" and p.split == "train"}
    assert near["te-para"].other_id == "tr-para" and near["te-para"].score >= 0.95  # type: ignore[operator]
    assert near["te-order"].other_id == "tr-order"  # the reordered copy is close in embedding space too
    assert "te-clean" not in report.leaked_ids and "te-dup1" not in report.leaked_ids
    assert ("te-dup2", "te-dup1") in _ids(report.test_duplicates, "near", "test")
    assert report.to_json()["thresholds"] == {"ngram": 13, "near_cosine": 0.95}
    strict = check_leakage(planted(), encoder=encoder, threshold=0.999)
    assert "te-para" not in strict.leaked_ids


def test_a_clean_suite_reports_zero(encoder) -> None:  # type: ignore[no-untyped-def]
    train = [Example("a", "Where is the nearest train station to the office?", "a"),
             Example("b", "The soup was cold and the waiter ignored us for an hour.", "b")]
    test = [Example("x", "Which colours does the new phone come in?", "a"),
            Example("y", "Can I bring my dog on the flight to Lisbon next week?", "b")]
    report = check_leakage(_suite(train, test), encoder=encoder)
    assert report.pairs == [] and report.test_duplicates == [] and report.leaked_ids == set()
    assert report.summary().startswith("no leakage among 2 test examples")


def test_qa_corpus_passage_with_question_and_answer_leaks_answer_alone_does_not() -> None:
    answer = "Wash your hands with soap for twenty seconds."
    long_q = "what should i do to keep my hands clean after i come back home from the supermarket today"
    test = [Example("q-short", "How do I clean my hands?", answer),
            Example("q-long", long_q.capitalize() + "?", answer),
            Example("q-fine", "Any advice on hand hygiene?", answer)]
    corpus = (Document("d-answer", f"Hygiene. {answer} Dry them well.", "Hand hygiene"),
              Document("d-both", f"Q: how do I clean my hands? A: {answer}", ""),
              Document("d-long", f"{long_q}: {answer.lower()}", ""),
              Document("d-question-only", f"{long_q} is asked often; see the leaflet", ""))
    report = check_leakage(_suite([], test, corpus=corpus, task="qa"))
    assert _ids(report.pairs, "passage", "corpus") == {("q-short", "d-both"), ("q-long", "d-long")}
    assert report.leaked_ids == {"q-short", "q-long"}


# --------------------------------------------------------------------------- clean subset


def test_clean_subset_metrics_on_a_constructed_case() -> None:
    from harness.core.results import Leakage, from_json, to_json
    from harness.report.sections.leakage import leakage_html, leakage_markdown
    from harness.scoring.results import score_results
    from tests.fixtures_runs import recorded, run_results

    examples = [Example(f"e{i}", f"text {i}", "a") for i in range(6)]
    suite = _suite([], examples)
    answers = {"good": ["a", "a", "b", "a", "b", "b"], "bad": ["b", "b", "a", "b", "a", "a"]}
    preds = {s: recorded(suite, s, ans, examples=examples) for s, ans in answers.items()}
    sections = {s: {"name": s, "kind": "prompt", "params": {}, "prepare_s": 0.0} for s in answers}
    # e0 and e1 leaked: "good" is right on both, "bad" wrong on both.
    scored = score_results(suite, examples, preds, sections, seed=0, n_resamples=200, leaked_ids={"e0", "e1", "zz"})
    results = to_json(scored)
    good, bad = results["strategies"]["good"], results["strategies"]["bad"]
    assert good["metrics"]["accuracy"]["value"] == pytest.approx(3 / 6)
    assert good["clean_metrics"]["accuracy"]["value"] == pytest.approx(1 / 4) and good["n_clean"] == 4
    assert bad["metrics"]["accuracy"]["value"] == pytest.approx(3 / 6)
    assert bad["clean_metrics"]["accuracy"]["value"] == pytest.approx(3 / 4)
    lo, hi = bad["clean_metrics"]["accuracy"]["ci"]
    assert lo <= 0.75 <= hi
    no_leak = to_json(score_results(suite, examples, preds, sections, seed=0, n_resamples=200, leaked_ids={"zz"}))
    assert "clean_metrics" not in no_leak["strategies"]["good"]

    leakage = from_json(Leakage, {"checked": True, "summary": "2 of 6 test examples leak: 2 exact duplicate(s) of train",
                                  "pairs": [{"kind": "exact", "split": "train", "test_id": "e0", "other_id": "<t0>",
                                             "score": None}], "thresholds": {"ngram": 13, "near_cosine": None}})
    results = run_results(scored, leakage=leakage)
    md = "\n".join(leakage_markdown(results))
    assert "### Clean subset" in md and "accuracy (clean subset)" in md and "&lt;t0&gt;" in md
    assert "the best on accuracy changes: bad (on all examples: good, bad)" in md  # a tie overall, bad wins clean
    html = leakage_html(results)
    assert 'id="leakage"' in html and "&lt;t0&gt;" in html and "<t0>" not in html
    unchecked = run_results(scored)  # --no-leakage-check
    assert leakage_markdown(unchecked)[2] == "_Not checked (`--no-leakage-check`)._" and "Not checked" in leakage_html(unchecked)


# --------------------------------------------------------------------------- command line


def _write(folder: Path, leak: bool) -> Path:
    from tests.test_suites import TOML, write_suite

    test = [{"id": "e1", "input": "I love it so much" if leak else "what a lovely day", "target": "positive"},
            {"id": "e2", "input": "this is dreadful", "target": "negative"}]
    return write_suite(folder, TOML, test=test)


def test_fail_on_leakage_exits_2_before_any_model_work_and_leaves_no_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.engine.modelset
    from harness.cli import main

    def no_weights(*args: object, **kwargs: object) -> None:
        raise AssertionError("the generator must not load")

    monkeypatch.setattr(harness.engine.modelset, "load_generator", no_weights)
    folder, out = _write(tmp_path / "leaky", leak=True), tmp_path / "runs"
    (folder / "test.jsonl").write_text(json.dumps({"id": "e1", "input": "I LOVE it!", "target": "positive"}) + "\n")
    assert main(["run", str(folder), "--fail-on-leakage", "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "1 of 1 test examples leak: 1 exact duplicate(s) of train" in err and "sft-harness validate" in err
    assert not any(out.iterdir())

    assert main(["validate", str(folder)]) == 0
    printed = capsys.readouterr().out
    assert "1 of 1 test examples leak" in printed and "e1 ~ t1" in printed
    assert main(["validate", str(folder), "--fail-on-leakage"]) == 2
    clean = _write(tmp_path / "clean", leak=False)
    assert main(["validate", str(clean), "--fail-on-leakage"]) == 0
    assert "no leakage among 2 test examples (near-duplicates not checked)" in capsys.readouterr().out
    assert main(["validate", str(clean), "--leakage-threshold", "1.5"]) == 2


def test_a_run_records_leakage_and_clean_metrics(tmp_path: Path, tiny_model_dir: Path) -> None:
    from harness.core.runrecord import load_run
    from harness.report.formats.markdown import render_markdown
    from harness.runner import RunOptions, run

    folder = _write(tmp_path / "leaky", leak=False)
    rows = [{"id": "e1", "input": "I love it", "target": "positive"},
            {"id": "e2", "input": "this is dreadful", "target": "negative"},
            {"id": "e3", "input": "what a lovely day", "target": "positive"}]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_dir = run(RunOptions(suite=str(folder), model=str(tiny_model_dir), out=tmp_path / "runs", device="cpu"))
    results = json.loads((run_dir / "results.json").read_text())
    assert results["leakage"]["leaked_ids"] == ["e1"] and results["leakage"]["pairs"][0]["other_id"] == "t1"
    assert results["strategies"]["prompt"]["n_clean"] == 2
    assert "## Leakage" in render_markdown(load_run(run_dir).results)
    off = run(RunOptions(suite=str(folder), model=str(tiny_model_dir), out=tmp_path / "runs", device="cpu",
                         leakage_check=False))
    assert json.loads((off / "results.json").read_text())["leakage"]["checked"] is False


def test_fail_on_leakage_from_a_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    folder = _write(tmp_path / "leaky", leak=False)
    (folder / "test.jsonl").write_text(json.dumps({"id": "e1", "input": "i hate it", "target": "negative"}) + "\n")
    config = tmp_path / "run.toml"
    config.write_text(f'suite = "{folder}"\nfail_on_leakage = true\nout = "{tmp_path / "runs"}"\ndevice = "cpu"\n')
    assert main(["run", "--config", str(config)]) == 2
    assert "1 exact duplicate(s) of train" in capsys.readouterr().err
    assert not any((tmp_path / "runs").iterdir())
    config.write_text(f'suite = "{folder}"\nleakage_threshold = 2.0\n')
    assert main(["run", "--config", str(config)]) == 2
    assert "leakage_threshold' must be a cosine above 0 and at most 1" in capsys.readouterr().err
