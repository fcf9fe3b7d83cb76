"""Judged metrics without a model: reading grades from replies, the [[judges]] tables, people's grade
files, and the report card (agreement, PPI, pairwise flips, length bias) on grades given here.
The judges themselves run on real models in tests/test_judges_e2e.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.core.config import load_config
from harness.core.errors import HarnessError, SuiteError
from harness.core.human import read_human
from harness.core.judges import Judgement, JudgeSpec, judge_problems
from harness.core.runrecord import Output, PredictionRecord
from harness.core.suites import load_suite
from harness.core.types import Example
from harness.scoring.judge_grades import grade_value, parse_grade
from harness.scoring.judge_summary import JudgeInputs, judge_result
from harness.scoring.ppi import ppi_mean
from tests.test_suites import TOML, write_suite


@pytest.mark.parametrize(("reply", "mode", "grade"), [
    ("correct", "reference", "correct"), ("Correct.", "reference", "correct"),
    ("Partially correct: it misses the date", "reference", "partial"), ("incorrect", "reference", "wrong"),
    ("The answer is wrong.", "reference", "wrong"), ('"partial"', "reference", "partial"),
    ("I cannot tell", "reference", None), ("", "reference", None),
    ("4", "rubric", "4"), ("Score: 5/5", "rubric", "5"), ("2.5", "rubric", None), ("10", "rubric", None),
    ("A", "pairwise", "A"), ("Answer B is better", "pairwise", "B"), ("Tie", "pairwise", "tie"),
    ("a", "pairwise", None), ("Both are bad", "pairwise", None),
])
def test_a_grade_is_read_from_the_reply(reply: str, mode: str, grade: str | None) -> None:
    assert parse_grade(reply, mode) == grade


def test_an_unparsable_grade_scores_the_lowest() -> None:
    assert grade_value(None, "reference") == 0.0 == grade_value("wrong", "reference")
    assert grade_value("partial", "reference") == 0.5 and grade_value("5", "rubric") == 1.0
    assert grade_value("2", "rubric") == 0.25


def test_judge_tables_are_checked() -> None:
    assert judge_problems({"name": "correct"}) == []
    assert any(k == "mode" for k, _ in judge_problems({"name": "x", "mode": "vibes"}))
    assert any(k == "rubric" or k == "mode" for k, _ in judge_problems({"name": "x", "mode": "rubric"}))
    assert any(k == "strategies" for k, _ in judge_problems({"name": "x", "mode": "pairwise", "strategies": ["a"]}))
    assert any(k == "template" for k, _ in judge_problems({"name": "x", "template": "grade {output}"}))
    assert any(k == "modle" for k, _ in judge_problems({"name": "x", "modle": "judge"}))
    assert any(k is None for k, _ in judge_problems({"mode": "reference"}))


def test_suite_judges_load_and_their_faults_are_named_at_their_line(tmp_path: Path) -> None:
    good = TOML + '\n[[judges]]\nname = "correct"\n\n[[judges]]\nname = "tone"\nmode = "rubric"\nrubric = "5: polite"\n'
    suite = load_suite(str(write_suite(tmp_path / "ok", good)))
    assert [(j.name, j.mode) for j in suite.judges] == [("correct", "reference"), ("tone", "rubric")]
    assert "correct" not in suite.metrics  # a run adds the judged metrics it grades
    text = TOML + '\n[[judges]]\nname = "correct"\nmode = "vibes"\n\n[[judges]]\nname = "accuracy"\n'
    folder = write_suite(tmp_path / "bad", text)
    with pytest.raises(SuiteError) as e:
        load_suite(str(folder), known_metrics=lambda m, t: None if m == "accuracy" else "unknown")
    lines = text.split("\n")
    vibes, accuracy = lines.index('mode = "vibes"') + 1, lines.index('name = "accuracy"') + 1
    problems = e.value.problems
    assert any(f"suite.toml:{vibes}:" in p and "mode" in p for p in problems)
    assert any(f"suite.toml:{accuracy}:" in p and "a metric" in p for p in problems)


def test_run_toml_judges_are_checked_at_their_line(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('suite = "support-faq"\n\n[[judges]]\nname = "ok"\n\n[[judges]]\nname = "b"\nanswer = "maybe"\n')
    with pytest.raises(HarnessError, match=r"run\.toml:8: 'answer'"):
        load_config(path)
    path.write_text('suite = "support-faq"\n[[judges]]\nname = "ok"\nmodel = "big"\n')
    assert load_config(path).judge_specs() == [JudgeSpec("ok", model="big")]


def test_human_grades_jsonl_and_csv(tmp_path: Path) -> None:
    path = tmp_path / "human.jsonl"
    path.write_text('{"example_id": "e1", "strategy": "rag", "grade": "Correct"}\n'
                    '{"example_id": "e2", "output": "Paris", "grade": 4}\n'
                    '{"example_id": "e3", "strategies": ["rag", "prompt"], "grade": "tie"}\n'
                    '{"example_id": "e4", "strategy": "rag", "grade": ""}\n')
    grades = read_human(path)
    assert [(g.mode, g.grade) for g in grades.grades] == [("reference", "correct"), ("rubric", "4"), ("pairwise", "tie")]
    assert grades.ungraded == 1 and grades.grades[2].pair == ("rag", "prompt")
    csv = tmp_path / "form.csv"
    csv.write_text('sample,example_id,input,output,grade\n1,e1,q,"Paris, France",partial\n2,e2,q,x,\n')
    grades = read_human(csv)
    assert [(g.output, g.grade) for g in grades.grades] == [("Paris, France", "partial")] and grades.ungraded == 1
    for bad, why in [('{"example_id": "e1", "strategy": "rag", "grade": "great"}', "grade 'great'"),
                     ('{"example_id": "e1", "grade": "wrong"}', "needs 'strategy'"),
                     ('{"example_id": "e1", "grade": "A"}', "strategies"),
                     ('{"strategy": "rag", "grade": "wrong"}', "example_id"), ("{", ""),
                     ('{"example_id": "e1", "strategy": "rag", "grade": "wrong", "grader": "me"}', "unknown key")]:
        path.write_text('{"example_id": "e0", "strategy": "rag", "grade": "wrong"}\n' + bad + "\n")
        with pytest.raises(HarnessError, match=rf"human\.jsonl:2: .*{why}"):
            read_human(path)


def _records(name: str, outputs: list[str]) -> list[PredictionRecord]:
    return [PredictionRecord.of(Output(name, f"e{i}", text, 0.1, 10, 5), Example(f"e{i}", f"q{i}", "ref"), text, {}, 0.0)
            for i, text in enumerate(outputs)]


def _reference_judgements(name: str, grades: list[str | None]) -> list[Judgement]:
    return [Judgement("correct", name, f"e{i}", g or "??", g, grade_value(g, "reference"), prompt_tokens=100,
                      output_tokens=1, latency_s=0.01) for i, g in enumerate(grades)]


def test_the_report_card_corrects_a_lenient_judge_with_peoples_grades(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 60
    truth = {s: rng.random(n) < p for s, p in (("prompt", 0.3), ("rag", 0.6))}
    # A lenient judge: right where people say correct, "correct" on half of the wrong ones too.
    judged = {s: ["correct" if t or rng.random() < 0.5 else "wrong" for t in truth[s]] for s in truth}
    judged["prompt"][0] = None  # one unparsable reply
    records = {s: _records(s, [f"{s} answer {i} " + "word " * int(rng.integers(1, 30)) for i in range(n)]) for s in truth}
    js = [j for s in truth for j in _reference_judgements(s, judged[s])]
    labelled = rng.choice(n, 20, replace=False)
    human = tmp_path / "human.jsonl"
    human.write_text("".join(json.dumps({"example_id": f"e{i}", "strategy": s,
                                         "grade": "correct" if truth[s][i] else "wrong"}) + "\n"
                             for s in truth for i in labelled))
    inputs = JudgeInputs(JudgeSpec("correct"), "free", {"name": "judge"}, "reference-v1", "abc", "t", 120, js)
    card = judge_result(inputs, records, read_human(human))
    assert card.unparsable == 1 and card.graded == 2 * n and card.calls == 120
    a = card.agreement
    assert a is not None and a.n == 40 and a.too_low == 0 and a.too_high > 0 and (a.mean_diff or 0) > 0
    for s in truth:
        row = card.strategies[s]
        f = np.array([grade_value(g, "reference") for g in judged[s]])
        y = truth[s][labelled].astype(float)
        expected = ppi_mean(f, f[labelled], y)
        assert row.n_human == 20 and row.ppi == pytest.approx(expected.estimate)
        assert row.judge_mean == pytest.approx(f.mean()) and row.judge_mean > row.ppi  # the judge is lenient
        assert row.ppi_ci[1] - row.ppi_ci[0] > row.judge_ci[1] - row.judge_ci[0]  # its own error widens it
    [pair] = card.pairs
    assert (pair.a, pair.b) == ("prompt", "rag") and pair.ppi_diff is not None and pair.ppi_p is not None
    assert card.length_bias is not None and -1 <= card.length_bias <= 1
    assert not any("not validated" in note for note in card.notes)


def test_without_people_the_judge_is_said_to_be_unvalidated() -> None:
    records = {"prompt": _records("prompt", ["a", "b", "c"])}
    js = _reference_judgements("prompt", ["correct", "wrong", "partial"])
    card = judge_result(JudgeInputs(JudgeSpec("correct"), "choice", {}, "v", "h", "t", 0, js, ("prompt",)), records, None)
    assert card.agreement is None and card.strategies["prompt"].ppi is None
    assert card.strategies["prompt"].judge_mean == pytest.approx(0.5)
    assert any("not validated" in n for n in card.notes) and any("self-preference" in n for n in card.notes)


def test_pairwise_verdicts_that_flip_with_the_order_are_ties() -> None:
    records = {"prompt": _records("prompt", ["short", "short", "a much longer answer here", "x"]),
               "rag": _records("rag", ["a much longer answer here", "longer one here", "short", "y"])}

    def two(i: int, first: str, second: str) -> list[Judgement]:  # replies with prompt shown as A, then as B
        value = {"A": 1.0, "B": 0.0, "tie": 0.5}
        return [Judgement("pref", "prompt", f"e{i}", first, first, value[first], opponent="rag", shown_first=True),
                Judgement("pref", "prompt", f"e{i}", second, second, 1 - value[second], opponent="rag", shown_first=False)]
    # e0: rag wins both ways; e1: "A" both times (position bias: a flip); e2: prompt wins both; e3: tie
    js = two(0, "B", "A") + two(1, "A", "A") + two(2, "A", "B") + two(3, "tie", "tie")
    card = judge_result(JudgeInputs(JudgeSpec("pref", mode="pairwise"), "choice", {}, "v", "h", "t", 8, js), records, None)
    [pair] = card.pairs
    assert (pair.wins, pair.ties, pair.losses) == (1, 2, 1) and pair.win_rate == pytest.approx(0.5)
    assert pair.flip_rate == pytest.approx(0.25)
    assert pair.longer_wins == pytest.approx(1.0)  # e0 and e2: the longer answer won both decisive verdicts


def test_the_support_faq_human_grades_are_well_formed() -> None:
    """The 40 grades README's example rests on: each a reference grade of a test example's output."""
    suite = load_suite("support-faq")
    grades = read_human(suite.path / "human.jsonl")
    ids = {e.id for e in suite.test}
    assert len(grades.grades) == 40 and grades.ungraded == 0
    assert all(g.mode == "reference" and g.example_id in ids and g.output for g in grades.grades)
