"""answer=choice and the answer modes end to end on a tiny random Llama: every answer a label, the
per-label scores kept, cached under the mode, refused where the suite or the model cannot give them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.types import AnswerMode
from harness.runner import RunOptions, run


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def records(run_dir: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for line in (run_dir / "predictions.jsonl").read_text().splitlines():
        r = json.loads(line)
        out.setdefault(r["strategy"], []).append(r)
    return out


def test_choice_answers_are_labels_with_their_scores(tmp_path: Path, tiny_model_dir: Path, cache: Path) -> None:
    spec = "prompt,prompt:answer=choice:name=choice,prompt:answer=choice:choice_norm=mean:name=mean," \
           "prompt:answer=choice:calibrate=true:name=calibrated"
    opts = RunOptions(suite="poem-sentiment", strategies=spec, model=str(tiny_model_dir), limit=6,
                      out=tmp_path / "runs", device="cpu", leakage_check=False)
    run_dir = run(opts)
    results = json.loads((run_dir / "results.json").read_text())
    labels = results["suite"]["labels"]
    by = records(run_dir)
    for name in ("choice", "mean", "calibrated"):
        assert all(r["output"] in labels and r["answer"] == r["output"] for r in by[name])
        assert all(len(r["choice_scores"]) == len(labels) for r in by[name])
        for r in by[name]:  # the answer is the best-scored label
            assert r["output"] == labels[max(range(len(labels)), key=lambda i: r["choice_scores"][i])]
        s = results["strategies"][name]
        assert s["invalid_rate"] == 0.0 and s["cost"]["output_tokens_per_example"] == 0.0
        assert s["choice"]["n"] == 6 and sum(map(sum, s["choice"]["confusion"])) == 6 and 0 <= s["choice"]["ece"] <= 1
    assert {results["strategies"][n]["answer"] for n in by} == {"free", "choice", "choice (mean)", "choice (calibrated)"}
    assert all("choice_scores" not in r for r in by["prompt"]) and "choice" not in results["strategies"]["prompt"]
    # sum and mean of the same token log-probabilities; calibration shifts each example's scores by one prior
    for a, b, c in zip(by["choice"], by["mean"], by["calibrated"], strict=True):
        assert a["choice_scores"] != b["choice_scores"] and all(x <= y for x, y in zip(a["choice_scores"], b["choice_scores"], strict=True))
        shift = [x - y for x, y in zip(c["choice_scores"], a["choice_scores"], strict=True)]
        assert not math.isclose(shift[0], shift[1])  # a label-specific prior, not a constant
    from harness.report import render_all

    render_all(run_dir)
    md = (run_dir / "report.md").read_text()
    assert "## Answers" in md and "| Answer |" in md and "confusion and reliability" in md
    html = (run_dir / "report.html").read_text()
    assert 'id="answers"' in html and 'class="bin"' in html

    again = run(opts)  # the scores are cached under the mode: nothing is scored or decoded again
    assert json.loads((again / "results.json").read_text())["work"]["generator_loaded"] is False
    assert records(again) == by


def test_free_decoding_keeps_its_cache_keys(tiny_model_dir: Path) -> None:
    from types import SimpleNamespace

    from harness.core.suites import load_suite
    from harness.engine.context import Prepared
    from harness.runner import prediction_identity
    from strategies import from_spec

    suite, backend = load_suite("poem-sentiment"), SimpleNamespace(identity=lambda: "weights")
    plain, = from_spec("prompt")
    free = prediction_identity(plain, Prepared(), backend, suite, AnswerMode())
    assert "answer" not in free and free == prediction_identity(plain, Prepared(), backend, suite)
    choice = prediction_identity(plain, Prepared(), backend, suite, AnswerMode("choice"))
    assert choice["answer"]["mode"] == "choice" and choice["answer"]["labels"] == list(suite.labels)
    assert prediction_identity(plain, Prepared(), backend, suite, AnswerMode("choice", calibrate=True)) != choice
    constrained = prediction_identity(plain, Prepared(), backend, suite, AnswerMode("constrained"))
    assert constrained["decoding"]["constraint"]["labels"] == list(suite.labels)


@pytest.mark.parametrize(("argv", "said"), [
    (["run", "support-faq", "--answer", "choice"], "answer=choice scores each label, and suite 'support-faq' is a qa suite"),
    (["run", "snips-slots", "--strategies", "prompt:answer=choice"], "use answer=constrained for its JSON fields"),
    (["run", "support-faq", "--strategies", "prompt:answer=constrained"], "answer=constrained limits decoding"),
    (["run", "poem-sentiment", "--strategies", "prompt:answer=choise"], "answer='choise' is not one of free, choice, "
                                                                         "constrained (did you mean 'choice'?)"),
    (["run", "poem-sentiment", "--strategies", "prompt:choice_norm=max"], "choice_norm='max' is not one of sum, mean"),
])
def test_answer_modes_a_suite_cannot_give_are_refused_before_any_model(argv: list[str], said: str, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--out", str(tmp_path / "runs"), "--no-leakage-check"]) == 2
    err = capsys.readouterr().err
    assert said in " ".join(err.split()) and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_served_model_without_prompt_logprobs_refuses_choice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "run.toml"
    config.write_text('suite = "poem-sentiment"\nanswer = "choice"\n[[models]]\nname = "api"\nbackend = "openai"\n'
                      'id = "gpt-4o-mini"\nbase_url = "http://127.0.0.1:9/v1"\n'
                      '[[strategies]]\nkind = "prompt"\nmodel = "api"\n')
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "runs")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{config}:8: strategy 'prompt': answer=choice needs the log-probabilities of given answers" in err
    assert "use answer=constrained" in err
    config.write_text(config.read_text().replace('base_url = "http://127.0.0.1:9/v1"\n',
                                                 'base_url = "http://127.0.0.1:9/v1"\nprompt_logprobs = true\n'))
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "runs")]) == 2
    assert "prompt_logprobs = true needs tokenizer" in capsys.readouterr().err
    config.write_text('suite = "poem-sentiment"\nanswer = "chioce"\n')
    assert main(["run", "--config", str(config)]) == 2
    assert f"{config}:2: 'answer' must be one of free, choice, constrained" in capsys.readouterr().err


def test_constrained_decoding_on_transformers_leaves_no_unparsable_answer(tmp_path: Path, cache: Path) -> None:
    """The real default model under the grammar (harness.engine.constrain): every snips-slots answer
    is a JSON object of the suite's fields and every banking-intents answer one of its labels."""
    for suite, limit in (("snips-slots", 6), ("banking-intents", 4)):
        opts = RunOptions(suite=suite, strategies="prompt:answer=constrained:name=constrained", limit=limit,
                          out=tmp_path / suite, device="cpu", leakage_check=False)
        run_dir = run(opts)
        results = json.loads((run_dir / "results.json").read_text())
        by = records(run_dir)
        assert len(by["constrained"]) == limit and results["strategies"]["constrained"]["invalid_rate"] == 0.0
        if suite == "snips-slots":
            fields = set(results["suite"]["fields"])
            assert all(isinstance(json.loads(r["output"]), dict) and set(r["answer"]) <= fields for r in by["constrained"])
        else:
            assert all(r["output"] in results["suite"]["labels"] for r in by["constrained"])
