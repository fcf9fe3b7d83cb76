"""`gate --max-forgetting` and the report's Forgetting section, on run folders whose `forgetting`
section is scored by the runner's own code (harness.scoring.forgetting) from constructed answers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.core.results import ControlMetric, to_json
from harness.core.runrecord import PredictionRecord, load_run
from harness.report.formats.html import render_html
from harness.report.formats.markdown import render_markdown
from harness.report.sections.forgetting import sentence
from harness.scoring.forgetting import control_metrics, perplexity_change
from tests.fixtures_runs import make_suite, recorded, triage_examples, triage_run

N = 60


def predictions(name: str, answers: list[str]) -> list[PredictionRecord]:
    examples = triage_examples(N)
    return recorded(make_suite(examples), name, answers)


def with_forgetting(run_dir: Path, forgotten: int) -> dict[str, Any]:
    """Add a forgetting section to run_dir's results.json: on a control suite where the base is
    right on 48 of 60 examples, sft's adapter gets `forgotten` of those wrong (nothing else changes)."""
    examples = triage_examples(N)
    control = make_suite(examples, name="control-triage", metrics_=("accuracy",))
    base = [str(e.target) if i % 5 else "billing" if e.target != "billing" else "bug" for i, e in enumerate(examples)]
    adapter = list(base)
    right = [i for i, e in enumerate(examples) if base[i] == e.target]
    for i in right[:forgotten]:
        adapter[i] = "bug" if examples[i].target != "bug" else "account"
    metrics = to_json(control_metrics(control, examples, predictions("base", base), predictions("sft", adapter), seed=0))
    section = {"controls": [{"name": control.name, "task": control.task, "sha256": control.sha256, "path": "suites/c",
                             "metrics": ["accuracy"], "primary_metric": "accuracy", "n": N}],
               "limit": N, "alpha": 0.05,
               "strategies": {"sft": {control.name: {"n": N, "model": "m", "metrics": metrics,
                                                     "perplexity": to_json(perplexity_change(200.0, 100, 230.0, 100, 64))}}}}
    path = run_dir / "results.json"
    results = json.loads(path.read_text())
    path.write_text(json.dumps({**results, "forgetting": section}))
    return section


@pytest.fixture()
def runs(tmp_path: Path) -> tuple[Path, Path]:
    accuracies = {"prompt": 0.5, "sft": 0.9}
    return triage_run(tmp_path / "base", accuracies), triage_run(tmp_path / "cand", accuracies)


def test_control_metrics_are_the_paired_difference(runs: tuple[Path, Path]) -> None:
    acc = with_forgetting(runs[1], forgotten=18)["strategies"]["sft"]["control-triage"]["metrics"]["accuracy"]
    assert acc["base"] == pytest.approx(48 / 60) and acc["adapter"] == pytest.approx(30 / 60)
    assert acc["diff"] == pytest.approx(-0.3) and acc["ci"][0] < -0.3 < acc["ci"][1] < 0
    assert acc["test"] == "mcnemar_exact" and acc["p_value"] == pytest.approx(2 / 2**18) and acc["significant"]


def test_gate_fails_on_forgetting_beyond_the_tolerated_drop(runs: tuple[Path, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    base, cand = runs
    with_forgetting(cand, forgotten=18)
    assert main(["gate", str(base), str(cand)]) == 0  # no --max-forgetting: the main checks alone
    assert main(["gate", str(base), str(cand), "--max-forgetting", "accuracy=0.5"]) == 0
    capsys.readouterr()
    out = tmp_path / "gate.json"
    assert main(["gate", str(base), str(cand), "--max-forgetting", "accuracy=0.1", "--json", str(out)]) == 1
    text = capsys.readouterr().out
    assert "forgetting FAILED: sft on control-triage: accuracy drops by 0.300" in text and "FORGETTING: 1 of 1" in text
    verdict = json.loads(out.read_text())
    assert verdict["passed"] is False and verdict["forgetting_failures"] == 1
    assert verdict["forgetting"][0]["cost"] == pytest.approx(0.3) and verdict["max_forgetting"] == {"accuracy": 0.1}
    # CI reads JUnit: the forgetting check is a failed testcase there too
    junit = tmp_path / "gate.xml"
    assert main(["gate", str(base), str(cand), "--max-forgetting", "accuracy=0.1", "--junit", str(junit)]) == 1
    import xml.etree.ElementTree as ET

    root = ET.parse(junit).getroot()
    cases = [c for c in root.iter("testcase") if ".forgetting." in c.get("classname", "")]
    assert [c.get("name") for c in cases] == ["control-triage.accuracy"]
    assert cases[0].find("failure") is not None and cases[0].find("failure").get("type") == "forgetting"
    assert int(root.get("failures")) >= 1 and int(root.get("tests")) == len(list(root.iter("testcase")))


def test_gate_tolerates_a_drop_that_is_not_significant(runs: tuple[Path, Path]) -> None:
    base, cand = runs
    with_forgetting(cand, forgotten=2)  # 0.033 lower, McNemar p = 0.5
    assert main(["gate", str(base), str(cand), "--max-forgetting", "accuracy=0.01"]) == 0


def test_max_forgetting_mistakes_exit_2_with_one_line(runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base, cand = runs
    assert main(["gate", str(base), str(cand), "--max-forgetting", "accuracy=0.1"]) == 2  # no --control in that run
    assert "--max-forgetting: candidate run" in capsys.readouterr().err
    with_forgetting(cand, forgotten=5)
    assert main(["gate", str(base), str(cand), "--max-forgetting", "accuracy"]) == 2
    assert "expected METRIC=X" in capsys.readouterr().err
    assert main(["gate", str(base), str(cand), "--max-forgetting", "bleu=1"]) == 2  # not scored on the control suite
    assert "no forgetting score of that metric" in capsys.readouterr().err


def test_report_shows_the_change_and_a_plain_sentence(runs: tuple[Path, Path]) -> None:
    with_forgetting(runs[1], forgotten=18)
    run = load_run(runs[1])
    md = render_markdown(run.results)
    assert "## Forgetting" in md
    assert re.search(r"sft costs 0\.300 accuracy on control-triage \(95% CI 0\.\d+ to 0\.\d+, p < 0\.001\)", md)
    assert "| sft | control-triage | accuracy | 0.800 | 0.500 | -0.300 [" in md and "7.39 → 9.97 (+35.0%)" in md
    html = render_html(run)
    assert 'id="forgetting"' in html and "sft costs 0.300 accuracy" in html and 'href="#forgetting"' in html
    assert "## Forgetting" not in render_markdown(load_run(runs[0]).results)  # no --control: no section


def test_sentence_says_no_significant_change() -> None:
    def row(diff: float, ci: tuple[float, float], p: float) -> ControlMetric:
        return ControlMetric(0.5, 0.5 + diff, diff, ci, p, "mcnemar_exact", p < 0.05)

    assert sentence("sft", "e2e-nlg", "accuracy", row(-0.02, (-0.08, 0.04), 0.41)) == (
        "sft: no significant change in accuracy on e2e-nlg (-0.020, 95% CI -0.080 to 0.040, p = 0.410)")
    gain = sentence("sft", "x", "accuracy", row(0.1, (0.05, 0.15), 0.001))
    assert gain == "sft gains 0.100 accuracy on x (95% CI 0.050 to 0.150, p = 0.001)"
