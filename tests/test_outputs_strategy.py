"""`outputs:path=FILE`: outputs produced elsewhere, scored and paired like generated ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.suites import load_suite


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_given_outputs_reproduce_the_accuracy_computed_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache"))
    suite = load_suite("banking-intents")
    test = list(suite.test)
    other = {e.id: next(label for label in suite.labels if label != e.target) for e in test}
    # Right on every third example, a wrong label on the others, nothing for the last five.
    answered = test[:-5]
    rows = [{"id": e.id, "output": e.target if i % 3 == 0 else other[e.id], "latency_s": 0.2,
             "prompt_tokens": 50, "output_tokens": 3, "usd": 0.001} for i, e in enumerate(answered)]
    right = sum(1 for i in range(len(answered)) if i % 3 == 0)
    mine = _write(tmp_path / "prod.jsonl", rows)
    csv = tmp_path / "theirs.csv"  # another system: always the first label, as a CSV
    csv.write_text("id,output\n" + "".join(f"{e.id},{suite.labels[0]}\n" for e in test))
    theirs_right = sum(1 for e in test if e.target == suite.labels[0])
    out = tmp_path / "runs"
    assert main(["run", "banking-intents", "--strategies", f"outputs:path={mine}:name=prod,outputs:path={csv}:name=theirs",
                 "--out", str(out), "--no-leakage-check"]) == 0
    [run_dir] = [p for p in out.iterdir() if p.is_dir()]
    r = json.loads((run_dir / "results.json").read_text())
    prod = r["strategies"]["prod"]
    assert prod["metrics"]["accuracy"]["value"] == pytest.approx(right / len(test))
    assert r["strategies"]["theirs"]["metrics"]["accuracy"]["value"] == pytest.approx(theirs_right / len(test))
    assert prod["invalid_rate"] == pytest.approx(5 / len(test)) and prod["outputs"]["missing"] == 5
    assert prod["outputs"]["missing_ids"] == [e.id for e in test[-5:]]
    assert prod["cost"]["predict_s"] == pytest.approx(0.2 * len(answered))
    assert prod["cost"]["usd_per_1k_requests"] == pytest.approx(0.001 * len(answered) / len(test) * 1000)
    assert any({c["a"], c["b"]} == {"prod", "theirs"} and c["metric"] == "accuracy" for c in r["comparisons"])
    assert r["work"]["generator_loaded"] is False  # nothing was decoded


@pytest.mark.parametrize(("rows", "said"), [
    ([{"id": "nope", "output": "x"}], "prod.jsonl:1: id 'nope' is no test example of suite 'banking-intents'"),
    ([{"id": "a", "output": "x"}, {"id": "a", "output": "y"}], "prod.jsonl:2: id 'a' is given twice"),
    ([{"id": "a"}], "prod.jsonl:1: 'output' must be"),
    ([{"id": "a", "output": "x", "latency_s": -1}], "prod.jsonl:1: 'latency_s' must be"),
    ([{"id": "a", "output": "x", "cost": 1}], "prod.jsonl:1: unknown key 'cost'"),
])
def test_bad_outputs_files_are_refused_in_one_line(rows: list[dict], said: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "prod.jsonl", rows)
    assert main(["run", "banking-intents", "--strategies", f"outputs:path={path}", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_given_outputs_take_no_answer_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "prod.jsonl", [{"id": load_suite("banking-intents").test[0].id, "output": "x"}])
    assert main(["run", "banking-intents", "--strategies", f"outputs:path={path}:answer=choice",
                 "--out", str(tmp_path / "runs")]) == 2
    assert "answer=free only" in capsys.readouterr().err
