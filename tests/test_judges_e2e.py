"""Judged metrics on real judges: the packaged SmolLM2 through transformers grades support-faq's
answers (reference and pairwise judges of the suite), people's grades from a judge-sample form
validate it (kappa, PPI), a cached rerun asks the judge nothing, and the gate refuses a judge
below --min-kappa. These small judges are weak: the tests show what the machinery says of them,
not that they are good."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from tests.test_suites import smaller_builtin


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def _runs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


def _fill(form: Path, human: Path) -> int:
    """People's grades, by a rule a person could apply: an answer that shares at least a third of
    the reference's distinct words is partial, half is correct, else wrong."""
    rows = [json.loads(x) for x in form.read_text().splitlines()]
    for row in rows:
        ref = set(row["reference"].lower().split())
        overlap = len(ref & set(row["output"].lower().split())) / max(len(ref), 1)
        row["grade"] = "correct" if overlap >= 0.5 else "partial" if overlap >= 1 / 3 else "wrong"
    human.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def test_a_judged_run_with_people_cached_reruns_and_the_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache"))
    # The 4 questions scored, 40 passages, answers of up to 32 tokens; no human.jsonl: people's grades
    # come from the form below.
    suite = smaller_builtin("support-faq", tmp_path / "support-faq", test=4, train=8, corpus=40, human=False,
                            max_new_tokens=32)
    out = tmp_path / "runs"
    args = ["run", str(suite), "--strategies", "prompt,rag", "--judge-model", "smollm2-135m-instruct",
            "--limit", "4", "--out", str(out), "--no-leakage-check"]
    assert main(args) == 0
    [first] = _runs(out)
    r = _results(first)
    assert r["suite"]["judged"] == ["correct"] and "correct" in r["suite"]["metrics"]
    for name in ("prompt", "rag"):
        m = r["strategies"][name]["metrics"]["correct"]
        assert 0 <= m["value"] <= 1 and m["ci"][0] <= m["value"] <= m["ci"][1]
        assert r["strategies"][name]["cost"]["judge_tokens"] > 0 and r["strategies"][name]["cost"]["judge_s"] > 0
    assert any(c["metric"] == "correct" for c in r["comparisons"])  # paired tests, like any metric
    card = r["judges"]["correct"]
    assert card["calls"] == 8 and card["graded"] == 8 and card["answer"] == "choice"
    assert card["template_version"] == "reference-v1" and len(card["template_sha256"]) == 16
    assert card["self_preference"] == ["prompt", "rag"] and card["agreement"] is None
    pref = r["judges"]["preferred"]
    [pair] = pref["pairs"]
    assert pair["n"] == 4 and 0 <= pair["flip_rate"] <= 1 and pair["wins"] + pair["ties"] + pair["losses"] == 4
    grades = [json.loads(x) for x in (first / "judgements.jsonl").read_text().splitlines()]
    assert len(grades) == 16 and all(g["grade"] is not None for g in grades)  # label choice: never unparsable
    rows = {(x["strategy"], x["example_id"]): x for x in map(json.loads, (first / "predictions.jsonl").read_text().splitlines())}
    assert all(rows[(g["strategy"], g["example_id"])]["scores"]["correct"] == [g["value"]]
               for g in grades if g["judge"] == "correct")
    report = (first / "report.md").read_text()
    assert "## Judges" in report and "not validated" in report and "flip rate" in report

    form, human = tmp_path / "form.jsonl", tmp_path / "human.jsonl"
    assert main(["judge-sample", str(first), "--n", "6", "--out", str(form)]) == 0
    assert _fill(form, human) == 6
    assert main([*args, "--human", str(human)]) == 0
    second = _runs(out)[-1]
    r2 = _results(second)
    assert r2["judges"]["correct"]["calls"] == 0 and r2["work"]["generator_loaded"] is False  # all from the cache
    a = r2["judges"]["correct"]["agreement"]
    assert a["n"] >= 6 and sum(map(sum, a["confusion"])) == a["n"]
    assert any(s["n_human"] >= 2 and s["ppi"] is not None for s in r2["judges"]["correct"]["strategies"].values())
    assert r2["strategies"]["prompt"]["metrics"]["correct"] == r["strategies"]["prompt"]["metrics"]["correct"]

    kappa = a["weighted_kappa"] if a["weighted_kappa"] is not None else a["kappa"]
    capsys.readouterr()
    gate = ["gate", f"{second}:prompt", f"{second}:prompt", "--metric", "correct"]
    assert main([*gate, "--min-kappa", "1.01" if kappa is None else f"{kappa + 0.01:.4f}"]) == 2
    assert "below --min-kappa" in capsys.readouterr().err
    if kappa is not None:
        assert main([*gate, "--min-kappa", f"{kappa - 0.01:.4f}"]) == 0


def test_a_judge_needs_its_model_and_people_need_a_judge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    human = tmp_path / "human.jsonl"
    human.write_text('{"example_id": "x", "strategy": "prompt", "grade": "wrong"}\n')
    assert main(["run", "support-faq", "--human", str(human), "--limit", "1", "--out", str(tmp_path)]) == 2
    assert "grades with none" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"example_id": "x", "strategy": "prompt", "grade": "meh"}\n')
    assert main(["run", "support-faq", "--judge-model", "smollm2-135m-instruct", "--human", str(bad), "--limit", "1",
                 "--out", str(tmp_path)]) == 2
    assert "bad.jsonl:1:" in capsys.readouterr().err
    assert not any(tmp_path.glob("*support-faq*"))  # refused before any folder


def test_a_served_judge_through_the_openai_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SmolLM2 served by llama.cpp grades through the openai backend: no prompt log-probabilities are
    asked of it, so its grades are decoded under the grade set (response_format), never unparsable."""
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed: `make install`")
    from tests.test_backend_openai import ALIAS, Server

    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache"))
    srv = Server(tmp_path / "server.log")
    try:
        config = tmp_path / "run.toml"
        config.write_text(f'suite = "support-faq"\nout = "{tmp_path / "runs"}"\nleakage_check = false\n'
                          f'strategies = "prompt"\n[[models]]\nname = "judge"\nbackend = "openai"\nid = "{ALIAS}"\n'
                          f'base_url = "{srv.base_url}"\n')
        assert main(["run", "--config", str(config), "--limit", "3"]) == 0
        [run_dir] = _runs(tmp_path / "runs")
        card = _results(run_dir)["judges"]["correct"]
        assert card["answer"] == "constrained" and card["calls"] == 3 and card["unparsable"] == 0
        assert card["model"]["backend"] == "openai" and card["self_preference"] == []
        assert "preferred" not in _results(run_dir)["judges"]  # one strategy: the pairwise judge is left out
    finally:
        srv.stop()
