"""<out>/index.jsonl (reports/index.jsonl by default): appending runs, loading them back, trends, and surviving corrupt lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from harness.core.results import results_from_json
from harness.report.sections import history as H
from tests.fixtures_runs import qa_run, triage_run


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Three runs of one suite, sft improving and prompt slipping, created a day apart."""
    root = tmp_path_factory.mktemp("runs")
    out = []
    for day, (p, s) in enumerate([(0.6, 0.7), (0.55, 0.8), (0.5, 0.9)], 1):
        d = triage_run(root / f"r{day}", {"prompt": p, "sft": s}, run_id=f"r{day}",
                       created=f"2026-11-0{day}T09:00:00+00:00")
        out.append(json.loads((d / "results.json").read_text()))
    return out


def test_append_and_load(tmp_path: Path, three_runs: list[dict]) -> None:
    for results in reversed(three_runs):  # appended out of order: loading sorts by creation time
        H.append_run(tmp_path, results_from_json(results))
    entries = H.load_history(tmp_path)
    assert [(e["run_id"], e["strategy"]) for e in entries] == [
        ("r1", "prompt"), ("r1", "sft"), ("r2", "prompt"), ("r2", "sft"), ("r3", "prompt"), ("r3", "sft")]
    e = entries[-1]
    sft = three_runs[2]["strategies"]["sft"]["metrics"]
    assert e["metrics"] == {"accuracy": sft["accuracy"]["value"], "f1": sft["f1"]["value"]}
    assert e["suite"] == "ticket-triage" and e["suite_sha256"] == "a" * 64
    assert e["model"] == "smollm2-135m-instruct" and e["created"] == "2026-11-03T09:00:00+00:00"
    assert e["run_dir"] == str(tmp_path / "r3")
    lines = (tmp_path / H.INDEX).read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(x) for x in lines)


def test_suite_filter_and_reappended_runs(tmp_path: Path, three_runs: list[dict]) -> None:
    H.append_run(tmp_path, results_from_json(three_runs[0]))
    H.append_run(tmp_path, results_from_json(three_runs[0]))  # `sft-harness report` again, say: counted once
    qa = json.loads((qa_run(tmp_path / "qa") / "results.json").read_text())
    H.append_run(tmp_path, results_from_json(qa))
    assert len(H.load_history(tmp_path)) == 2 + 3
    assert {e["strategy"] for e in H.load_history(tmp_path, "support-faq")} == {"prompt", "rag", "sft"}
    assert len(H.load_history(tmp_path, "ticket-triage")) == 2
    assert H.load_history(tmp_path, "no-such-suite") == []
    assert H.load_history(tmp_path / "empty") == []


def test_corrupt_lines_are_reported_and_skipped(tmp_path: Path, three_runs: list[dict], capsys: pytest.CaptureFixture[str]) -> None:
    H.append_run(tmp_path, results_from_json(three_runs[0]))
    index = tmp_path / H.INDEX
    with open(index, "ab") as f:
        f.write(b'{"not": "an entry"}\n[1, 2]\n\xff\xfe\n{"run_id": "torn", "strategy": "sf')  # no newline: torn
    H.append_run(tmp_path, results_from_json(three_runs[1]))  # must start on a fresh line
    problems: list[str] = []
    entries = H.load_history(tmp_path, problems=problems)
    assert [e["run_id"] for e in entries] == ["r1", "r1", "r2", "r2"]
    assert [p.split(": ")[0] for p in problems] == [f"{index}:3", f"{index}:4", f"{index}:5", f"{index}:6"]
    assert "missing or non-text 'run_id'" in problems[0] and "not valid JSON" in problems[3]
    H.load_history(tmp_path)  # without a list the problems go to stderr
    assert f"{index}:6" in capsys.readouterr().err
    with open(index, "ab") as f:  # hostile lines are a line's problem, never a crash
        f.write(b"[" * 200_000 + b"\n" + b'{"run_id": ' + b"9" * 5000 + b"}\n")
    problems = []
    assert len(H.load_history(tmp_path, problems=problems)) == 4
    assert "nested too deeply" in problems[-2] and "not valid JSON" in problems[-1]

    console = Console(record=True, width=160)
    H.print_history(tmp_path, "ticket-triage", console)
    out = console.export_text()
    assert f"warning: {index}:3" in out and "sft" in out


def test_print_history_trend(tmp_path: Path, three_runs: list[dict]) -> None:
    for results in three_runs:
        H.append_run(tmp_path, results_from_json(results))
    console = Console(record=True, width=160)
    H.print_history(tmp_path, "ticket-triage", console)
    out = console.export_text()
    assert "ticket-triage: 3 run(s)" in out
    rows = {tuple(line.split()[:2]): line for line in out.splitlines() if len(line.split()) >= 6}
    sft = rows["sft", "accuracy"]
    acc = [r["strategies"]["sft"]["metrics"]["accuracy"]["value"] for r in three_runs]
    assert f"{acc[-1]:.3f}" in sft and f"+{acc[-1] - acc[-2]:.3f}" in sft and "▁▅█" in sft
    assert "latest run r3" in out
    prompt = rows["prompt", "accuracy"]
    assert "-0.050" in prompt and "█▅▁" in prompt

    console = Console(record=True, width=160)
    H.print_history(tmp_path, "other", console)
    assert "no runs recorded for suite other" in console.export_text()


def test_suite_change_is_flagged(tmp_path: Path, three_runs: list[dict]) -> None:
    H.append_run(tmp_path, results_from_json(three_runs[0]))
    changed = json.loads(json.dumps(three_runs[1]))
    changed["suite"]["sha256"] = "f" * 64
    H.append_run(tmp_path, results_from_json(changed))
    console = Console(record=True, width=200)
    H.print_history(tmp_path, None, console)
    assert "the suite's files changed" in console.export_text()


def test_sparkline() -> None:
    assert H.sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert H.sparkline([0.5, 0.5]) == "▄▄"
    assert H.sparkline([0.0, None, 1.0]) == "▁ █"
    assert H.sparkline([]) == "" and H.sparkline([None]) == ""
    assert len(H.sparkline(list(range(50)))) == H.SPARK_POINTS
