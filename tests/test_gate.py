"""The regression gate: verdicts, tolerance, suite checks, strategy pairing, JUnit and JSON."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from harness import gate as G
from harness.cli import main
from harness.core.errors import HarnessError
from tests.fixtures_runs import (
    LABELS,
    answers_with_accuracy,
    make_suite,
    qa_run,
    triage_examples,
    triage_run,
    write_run,
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return triage_run(tmp_path_factory.mktemp("g") / "base", {"prompt": 0.5, "sft": 0.9})


def results_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def drop_runs(root: Path, n: int, base_acc: float, extra_wrong: int) -> tuple[Path, Path]:
    """Baseline right on base_acc * n examples; the candidate is the baseline with `extra_wrong`
    of its right answers made wrong and nothing else changed."""
    examples = triage_examples(n)
    suite = make_suite(examples, metrics_=("accuracy",))
    b = answers_with_accuracy(examples, base_acc, seed=3)
    c = list(b)
    flipped = 0
    for i, e in enumerate(examples):
        if flipped < extra_wrong and c[i] == e.target:
            c[i] = "bug" if e.target != "bug" else "billing"
            flipped += 1
    return (write_run(root / "b", suite, {"sft": b}, n_resamples=100),
            write_run(root / "c", suite, {"sft": c}, n_resamples=100))


def test_identical_runs_pass(tmp_path: Path, base: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(base, copy)
    report = G.gate(str(base), str(copy))
    assert report.passed and not report.regressions and not report.improvements
    assert [(c.pair, c.metric) for c in report.checks] == [
        ("prompt", "accuracy"), ("prompt", "f1"), ("sft", "accuracy"), ("sft", "f1")]
    assert all(c.diff == 0 and c.p_value == 1.0 and c.verdict == "ok" for c in report.checks)
    # The recomputed values are the ones results.json reports.
    results = results_of(base)
    for c in report.checks:
        assert c.baseline == pytest.approx(results["strategies"][c.baseline_strategy]["metrics"][c.metric]["value"])
    assert [p.n_shared for p in report.pairings] == [60, 60]


def test_clearly_worse_candidate_is_a_regression(tmp_path: Path, base: Path) -> None:
    worse = triage_run(tmp_path / "worse", {"prompt": 0.5, "sft": 0.4})
    report = G.gate(base, worse)
    assert not report.passed
    failing = {(c.pair, c.metric) for c in report.regressions}
    assert failing == {("sft", "accuracy"), ("sft", "f1")}
    acc = next(c for c in report.checks if c.pair == "sft" and c.metric == "accuracy")
    assert acc.test == "mcnemar_exact" and acc.p_value < 0.001
    assert acc.diff == pytest.approx(-0.5) and acc.ci[1] < 0
    f1 = next(c for c in report.checks if c.pair == "sft" and c.metric == "f1")
    assert f1.test == "paired_bootstrap" and f1.verdict == "REGRESSION"
    # the other way round it is an improvement, and improvements never fail the gate
    back = G.gate(worse, base)
    assert back.passed and {(c.pair, c.metric) for c in back.improvements} == failing


def test_max_drop_tolerates_a_small_significant_drop(tmp_path: Path) -> None:
    b, c = drop_runs(tmp_path, 200, 0.9, extra_wrong=20)  # accuracy 0.90 -> 0.80, McNemar p ~ 2e-6
    strict = G.gate(b, c)
    [check] = strict.checks
    assert check.diff == pytest.approx(-0.1) and check.p_value < 1e-5 and check.verdict == "REGRESSION"
    assert not G.gate(b, c, max_drop=0.15).regressions
    assert not G.gate(b, c, max_drop=0.1).regressions  # a drop of exactly max_drop is tolerated
    assert G.gate(b, c, max_drop=0.05).regressions


def test_max_drop_per_metric_overrides_the_default(tmp_path: Path) -> None:
    b, c = drop_runs(tmp_path, 200, 0.9, extra_wrong=20)  # accuracy -0.10, significant
    assert not G.gate(b, c, max_drop_by_metric={"accuracy": 0.15}).regressions
    report = G.gate(b, c, max_drop=0.15, max_drop_by_metric={"accuracy": 0.05, "bleu": 2.0})
    [check] = report.regressions
    assert check.max_drop == 0.05 and "exceeds 0.05 " in check.describe(report.alpha)
    assert report.drop_text() == "0.15, accuracy=0.05, bleu=2"
    assert any("--max-drop given for bleu" in n for n in report.notes)  # a tolerance no check used
    assert G.gate(b, c, max_drop_by_metric={"accuracy": 0.15}).to_json()["max_drop_by_metric"] == {"accuracy": 0.15}
    with pytest.raises(HarnessError, match=r"--max-drop bleu=-1: a tolerated drop must be >= 0"):
        G.gate(b, c, max_drop_by_metric={"bleu": -1})
    # a name is checked against the runs (a judged metric is theirs, not the registry's)
    with pytest.raises(HarnessError, match="unknown metric 'blue'.*did you mean 'bleu'"):
        G.gate(b, c, max_drop_by_metric={"blue": 1.0})


def test_parse_max_drops() -> None:
    assert G.parse_max_drops([]) == (0.0, {})
    assert G.parse_max_drops(["0.02", "bleu=1.5", "rouge_l = 0.01"]) == (0.02, {"bleu": 1.5, "rouge_l": 0.01})
    with pytest.raises(HarnessError, match="expected a number or METRIC=NUMBER"):
        G.parse_max_drops(["lots"])


def test_holm_correction_across_checks(tmp_path: Path) -> None:
    """One strategy of three drops with McNemar p = 2 * 0.5**6 = 0.031: a regression on its own,
    not once the three checks share the 5% error budget (Holm: 3 * 0.031 = 0.094)."""
    examples = triage_examples(60)
    suite = make_suite(examples, metrics_=("accuracy",))
    b = answers_with_accuracy(examples, 0.8, seed=1)
    c = list(b)
    wrong = [i for i, e in enumerate(examples) if b[i] == e.target][:6]
    for i in wrong:
        c[i] = "bug" if examples[i].target != "bug" else "billing"
    base = write_run(tmp_path / "b", suite, {"x": b, "y": b, "z": b}, n_resamples=100)
    cand = write_run(tmp_path / "c", suite, {"x": c, "y": b, "z": b}, n_resamples=100)
    plain = G.gate(base, cand)
    [failed] = plain.regressions
    assert failed.pair == "x" and failed.p_value == pytest.approx(0.03125) and failed.p_holm is None
    corrected = G.gate(base, cand, correction="holm")
    assert corrected.passed
    x = next(ch for ch in corrected.checks if ch.pair == "x")
    assert x.p_value == pytest.approx(0.03125) and x.p_holm == pytest.approx(0.09375) and x.p == x.p_holm
    assert corrected.to_json()["correction"] == "holm"
    assert G.gate(base, cand, correction="holm", alpha=0.1).regressions  # still caught at a laxer alpha
    with pytest.raises(HarnessError, match="--correction must be one of none, holm"):
        G.gate(base, cand, correction="bonferroni")


def test_a_drop_that_is_not_significant_passes(tmp_path: Path) -> None:
    b, c = drop_runs(tmp_path, 40, 0.8, extra_wrong=2)  # 2 discordant pairs: McNemar p = 0.5
    [check] = G.gate(b, c).checks
    assert check.diff < 0 and check.p_value == pytest.approx(0.5) and check.verdict == "ok"
    assert G.gate(b, c, alpha=0.6).regressions  # with a lax enough alpha it counts


def test_different_suites_are_refused_unless_allowed(tmp_path: Path, base: Path) -> None:
    other = triage_run(tmp_path / "other", {"prompt": 0.5, "sft": 0.9}, sha256="f" * 64)
    with pytest.raises(HarnessError, match="--allow-suite-change"):
        G.gate(base, other)
    report = G.gate(base, other, allow_suite_change=True)
    assert report.suite_changed and any("suites differ" in n for n in report.notes)
    assert report.passed


def test_different_tasks_are_refused_even_when_allowed(tmp_path: Path, base: Path) -> None:
    qa = qa_run(tmp_path / "qa")
    with pytest.raises(HarnessError, match="cannot compare a classification run"):
        G.gate(base, qa, allow_suite_change=True)


def test_strategy_references(tmp_path: Path, base: Path) -> None:
    report = G.gate(f"{base}:sft", f"{base}:prompt")
    assert {c.pair for c in report.checks} == {"sft → prompt"}
    assert {c.verdict for c in report.checks} == {"REGRESSION"}  # prompt is far worse than sft
    one_side = G.gate(f"{base}:prompt", str(base))  # the other side defaults to the same name
    assert {c.pair for c in one_side.checks} == {"prompt"}
    with pytest.raises(HarnessError, match="did you mean 'sft'"):
        G.gate(f"{base}:sfft", str(base))
    lone = write_run(tmp_path / "lone", make_suite(triage_examples(60)), {"rag": ["bug"] * 60})
    with pytest.raises(HarnessError, match="share no strategy"):
        G.gate(base, lone)


def test_parse_run_ref(tmp_path: Path) -> None:
    assert G.parse_run_ref("reports/r1:sft") == (Path("reports/r1"), "sft")
    assert G.parse_run_ref("reports/r1") == (Path("reports/r1"), None)
    odd = tmp_path / "run:with:colons"
    odd.mkdir()
    assert G.parse_run_ref(str(odd)) == (odd, None)  # an existing path wins
    assert G.parse_run_ref(f"{odd}:sft+rag") == (odd, "sft+rag")
    for bad in ("reports/r1:", ":sft", ""):
        with pytest.raises(HarnessError, match="RUN_DIR:STRATEGY"):
            G.parse_run_ref(bad)


def test_examples_only_one_run_scored_are_dropped_and_counted(tmp_path: Path) -> None:
    examples = triage_examples(60)
    suite = make_suite(examples)
    answers = answers_with_accuracy(examples, 0.8, seed=1)
    b = write_run(tmp_path / "b", suite, {"sft": answers})
    c = write_run(tmp_path / "c", suite, {"sft": answers[:45]})  # interrupted: 15 never predicted
    report = G.gate(b, c)
    [pairing] = report.pairings
    assert (pairing.n_shared, pairing.only_baseline, pairing.only_candidate) == (45, 15, 0)
    assert all(ch.n == 45 and ch.diff == 0 for ch in report.checks)
    assert any("dropped 15" in n for n in report.notes)


def test_metric_selection(base: Path) -> None:
    report = G.gate(base, base, metrics=["accuracy"])
    assert {c.metric for c in report.checks} == {"accuracy"}
    with pytest.raises(HarnessError, match="unknown metric 'acuracy'.*did you mean 'accuracy'"):
        G.gate(base, base, metrics=["acuracy"])
    with pytest.raises(HarnessError, match="max-drop"):
        G.gate(base, base, max_drop=-1)


def test_junit_json_and_console(tmp_path: Path, base: Path) -> None:
    worse = triage_run(tmp_path / "worse", {"prompt": 0.5, "sft": 0.4})
    report = G.gate(base, worse)
    G.write_junit(report, tmp_path / "gate.xml")
    root = ET.parse(tmp_path / "gate.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == int(suite.get("tests")) == int(root.get("tests")) == 4
    assert int(suite.get("failures")) == int(root.get("failures")) == 2
    failed = {(c.get("classname").rsplit(".", 1)[-1], c.get("name")) for c in cases if c.find("failure") is not None}
    assert failed == {("sft", "accuracy"), ("sft", "f1")}

    G.write_json(report, tmp_path / "gate.json")
    data = json.loads((tmp_path / "gate.json").read_text())
    assert data["schema"] == "sft-harness/gate/v2" and data["passed"] is False and data["regressions"] == 2
    assert len(data["checks"]) == 4 and data["pairings"][0]["n_shared"] == 60

    console = Console(record=True, width=160)
    G.render_gate(report, console)
    out = console.export_text()
    assert "REGRESSION: 2 of 4 checks failed" in out
    for col in ("strategy", "metric", "baseline", "candidate", "diff [95% CI]", "p", "verdict"):
        assert col in out
    console = Console(record=True, width=160)
    G.render_gate(G.gate(base, base), console)
    assert "OK: no regression in 4 checks" in console.export_text()


def test_strategy_names_with_colons_parse(tmp_path) -> None:
    from harness.gate import parse_run_ref

    run = tmp_path / "run1"
    run.mkdir()
    assert parse_run_ref(f"{run}:sft:epochs=3") == (run, "sft:epochs=3")
    assert parse_run_ref(f"{run}:prompt") == (run, "prompt")
    assert parse_run_ref(str(run)) == (run, None)


def test_command_line_exit_codes_and_files(tmp_path: Path, base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    worse = triage_run(tmp_path / "worse", {"prompt": 0.5, "sft": 0.4})
    junit, js = tmp_path / "gate.xml", tmp_path / "gate.json"
    assert main(["gate", str(base), str(base)]) == 0
    assert main(["gate", str(base), str(worse), "--junit", str(junit), "--json", str(js)]) == 1
    assert ET.parse(junit).getroot().get("failures") == "2" and json.loads(js.read_text())["passed"] is False
    # sft's 0.5 drop tolerated on accuracy only; f1 still fails
    assert main(["gate", f"{base}:sft", f"{worse}:sft", "--max-drop", "accuracy=0.6", "--json", str(js)]) == 1
    assert [c["metric"] for c in json.loads(js.read_text())["checks"] if c["verdict"] == "REGRESSION"] == ["f1"]
    assert main(["gate", f"{base}:sft", f"{worse}:sft", "--max-drop", "0.6", "--correction", "holm"]) == 0
    capsys.readouterr()
    assert main(["gate", str(base), str(worse), "--max-drop", "accuracy=lots"]) == 2
    assert "expected a number or METRIC=NUMBER" in capsys.readouterr().err
    other = triage_run(tmp_path / "other", {"prompt": 0.5, "sft": 0.9}, sha256="f" * 64)
    assert main(["gate", str(base), str(other)]) == 2
    assert "--allow-suite-change" in capsys.readouterr().err


def test_the_gate_pairs_the_statistics_each_run_stored(tmp_path: Path, base: Path) -> None:
    """The same numbers as results.json, from the rows stored with the predictions; a metric the
    runs did not score is refused (the gate never scores an answer itself), an alias is found."""
    report = G.gate(base, base, metrics=["exact_match"])  # stored under the suite's name, accuracy
    [check] = [c for c in report.checks if c.pair == "sft"]
    assert check.baseline == results_of(base)["strategies"]["sft"]["metrics"]["accuracy"]["value"]
    with pytest.raises(HarnessError, match=r"predictions\.jsonl: prompt has no stored statistics of metric "
                                           r"'rouge_l' \(it has: accuracy, f1\)"):
        G.gate(base, base, metrics=["rouge_l"])


def test_a_changed_label_list_cannot_be_paired(tmp_path: Path) -> None:
    examples = triage_examples(30)
    answers = answers_with_accuracy(examples, 0.8, seed=1)
    b = write_run(tmp_path / "b", make_suite(examples), {"sft": answers})
    c = write_run(tmp_path / "c", make_suite(examples, labels=("bug", "billing", "account"), sha256="e" * 64),
                  {"sft": answers})
    with pytest.raises(HarnessError, match="list different labels"):
        G.gate(b, c, allow_suite_change=True)


def test_the_gate_lists_what_flipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Which examples passed in the baseline and fail in the candidate, and the reverse: counted by
    hand from the answers both runs stored, in the console, the JSON and the page beside the JUnit file."""
    from harness.core.runrecord import load_run

    examples = triage_examples(60)
    suite = make_suite(examples)
    base_answers = answers_with_accuracy(examples, 0.8, seed=1)
    cand_answers = list(base_answers)
    right = [i for i, e in enumerate(examples) if base_answers[i] == e.target]
    wrong = [i for i, e in enumerate(examples) if base_answers[i] != e.target]
    for i in right[:7]:  # 7 broke
        cand_answers[i] = LABELS[(LABELS.index(str(examples[i].target)) + 1) % 3]
    for i in wrong[:2]:  # 2 fixed
        cand_answers[i] = str(examples[i].target)
    base = write_run(tmp_path / "b", suite, {"sft": base_answers})
    cand = write_run(tmp_path / "c", suite, {"sft": cand_answers})
    report = G.gate(base, cand)
    [f] = report.flips
    assert [x.example_id for x in f.broke] == [examples[i].id for i in right[:7]]
    assert [x.example_id for x in f.fixed] == [examples[i].id for i in wrong[:2]]
    assert f.both_pass == len(right) - 7 and f.both_fail == len(wrong) - 2 and f.pass_score == 1.0
    assert f.broke[0].baseline_answer == str(examples[right[0]].target) and f.broke[0].candidate_score == 0.0

    junit, js = tmp_path / "ci" / "gate.xml", tmp_path / "ci" / "gate.json"
    junit.parent.mkdir()
    # 7 broke against 2 fixed is no significant drop (McNemar p 0.18): the gate passes, and says what broke.
    assert main(["gate", str(base), str(cand), "--junit", str(junit), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "sft: 7 example(s) broke (passed in the baseline, fail in the candidate), 2 fixed" in out
    assert all(f"broke {examples[i].id}" in out for i in right[:7])
    data = json.loads(js.read_text())["flips"][0]
    assert data["pair"] == "sft" and len(data["broke"]) == 7 and len(data["fixed"]) == 2
    page = (tmp_path / "ci" / "gate.flips.html").read_text()  # beside the JUnit file
    assert page.count("<tr>") == 1 + 7 + 1 + 2 and examples[right[0]].id in page and "broke (7)" in page
    # graded tasks: an example passes from --pass-score on
    qa = load_run(qa_run(tmp_path / "qa"))
    sft = {r.example_id: r.score for r in qa.predictions_for("sft")}
    rag = {r.example_id: r.score for r in qa.predictions_for("rag")}
    strict = G.gate((qa.dir, "sft"), (qa.dir, "rag"), pass_score=0.99).flips[0]
    assert {x.example_id for x in strict.broke} == {i for i in sft if sft[i] >= 0.99 > rag[i]} != set()
    assert {x.example_id for x in strict.fixed} == {i for i in sft if rag[i] >= 0.99 > sft[i]}
    assert G.gate((qa.dir, "sft"), (qa.dir, "rag")).flips[0].pass_score == 0.5
    assert main(["gate", str(base), str(cand), "--pass-score", "2"]) == 2
    assert "--pass-score must lie in [0, 1]" in capsys.readouterr().err
