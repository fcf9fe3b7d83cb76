"""`report` and `gate` on hostile run folders and unwritable outputs: one line, exit 2, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.core.results import ResultsError, results_from_json
from tests.fixtures_runs import qa_run, triage_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    return triage_run(root / "base", {"prompt": 0.6, "sft": 0.8}), qa_run(root / "qa")


def test_gate_junit_to_a_folder_is_exit_2_before_any_verdict(runs: tuple[Path, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    base, _ = runs
    assert main(["gate", str(base), str(base), "--junit", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "--junit" in captured.err and "is a folder" in captured.err
    assert "OK" not in captured.out  # no verdict printed when it cannot be written


def test_gate_json_in_a_missing_or_unwritable_place_is_exit_2(runs: tuple[Path, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    base, _ = runs
    assert main(["gate", str(base), str(base), "--json", str(tmp_path / "no" / "such" / "v.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["gate", str(base), str(base), "--json", str(locked / "v.json")]) == 2
        assert "not writable" in capsys.readouterr().err
    assert main(["gate", str(base), str(base), "--json", str(tmp_path / "v.json")]) == 0
    assert json.loads((tmp_path / "v.json").read_text())["passed"] is True


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            out += _paths(v, (*prefix, i))
    return out


WRONG_VALUES = [None, "text", -1, 1e308, [], {}, [1, "a"], {"x": None}, True, "NaN"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_report_and_gate_on_results_with_wrong_types(runs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory,
                                                      data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(runs))
    run_dir = tmp_path_factory.mktemp("mut") / "run"
    shutil.copytree(source, run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    path = data.draw(st.sampled_from(_paths(results)))
    value = data.draw(st.sampled_from(WRONG_VALUES))
    node = results
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (run_dir / "results.json").write_text(json.dumps(results))
    try:  # what the typed records make of the edit: refused with the value's JSON path, or read
        results_from_json(results)
        refused = None
    except ResultsError as e:
        refused = e.path
    if path == ("schema",):  # any schema but the readable ones is refused before the records are read
        refused = path
    for argv in (["report", str(run_dir)], ["gate", str(source), str(run_dir)], ["gate", str(run_dir), str(run_dir)]):
        code = main(argv)
        if refused is not None:  # exit 2, one line naming the file and where in it
            assert code == 2, (argv, path, value, code)
        else:  # a value of the declared type: the readers work (a gate may fail on it: 1), never 3
            assert code in ((0,) if argv[0] == "report" else (0, 1, 2)), (argv, path, value, code)


@pytest.mark.parametrize(("key", "value", "said"), [
    (("strategies", "sft", "metrics", "accuracy", "ci"), "x", "strategies.sft.metrics.accuracy.ci: expected a list"),
    (("strategies", "sft", "n"), 2.5, "strategies.sft.n: expected a whole number, got 2.5"),
    (("comparisons", 0, "p_value"), None, "comparisons[0].p_value: expected a number, got None"),
    (("suite",), [], "suite: expected an object, got []"),
])
def test_a_hand_edited_results_json_is_exit_2_naming_the_value(runs: tuple[Path, Path], tmp_path: Path, key: tuple,
                                                               value: Any, said: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(runs[0], run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    node = results
    for k in key[:-1]:
        node = node[k]
    node[key[-1]] = value
    (run_dir / "results.json").write_text(json.dumps(results))
    for argv in (["report", str(run_dir)], ["gate", str(runs[0]), str(run_dir)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {run_dir / 'results.json'}: {said}") and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("text", ["[" * 200_000, '{"schema": ' + "9" * 5000 + "}"])
def test_report_on_a_hostile_results_json_is_one_line(text: str, runs: tuple[Path, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(runs[0], run_dir)
    (run_dir / "results.json").write_text(text)
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "results.json: not valid JSON" in err and len(err.strip().splitlines()) == 1
