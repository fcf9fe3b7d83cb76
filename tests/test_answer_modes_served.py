"""The answer modes through the openai backend against real llama.cpp servers on 127.0.0.1:
constrained decoding (response_format with a JSON schema) leaves no unparsable answer; label choice
from /completions log-probabilities works where the endpoint's echoed log-probabilities are the
model's (Gemma 3 270M, which has a BOS token) and is refused in one line where they are not
(llama-cpp-python shifts them for SmolLM2, which has none)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed: `make install` builds it")

from harness.cli import main  # noqa: E402
from tests.test_backend_openai import ALIAS, Server  # noqa: E402
from tests.test_suites import short_sentiment_suite  # noqa: E402


@pytest.fixture(scope="module")
def smol(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("smol") / "server.log", logits_all=True)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("gemma") / "server.log", alias="gemma-3-270m", logits_all=True)
    yield srv
    srv.stop()


def config(tmp_path: Path, srv: Server, suite: str, alias: str, extra: str, strategies: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(f'suite = "{suite}"\nout = "{tmp_path / "runs"}"\nleakage_check = false\nstrategies = "{strategies}"\n'
                    f'[[models]]\nname = "served"\nbackend = "openai"\nid = "{alias}"\nbase_url = "{srv.base_url}"\n'
                    f'tokenizer = "{alias}"\n{extra}')
    return path


def predictions(tmp_path: Path) -> list[dict]:
    [run_dir] = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    return [json.loads(x) for x in (run_dir / "predictions.jsonl").read_text().splitlines()]


def test_constrained_decoding_through_a_server_leaves_no_unparsable_answer(
        smol: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache"))
    path = config(tmp_path, smol, "snips-slots", ALIAS, "", "prompt:model=served,prompt:model=served:answer=constrained")
    assert main(["run", "--config", str(path), "--limit", "3"]) == 0  # grammar-constrained decoding is slow here
    by: dict[str, list[dict]] = {}
    for r in predictions(tmp_path):
        by.setdefault(r["strategy"], []).append(r)
    constrained = by["prompt:model=served:answer=constrained"]
    assert len(constrained) == 3 and all(isinstance(r["answer"], dict) and r["error"] is None for r in constrained)
    assert all(isinstance(json.loads(r["output"]), dict) for r in constrained)  # JSON, every one
    free = by["prompt:model=served"]
    assert sum(r["answer"] is None for r in free) >= sum(r["answer"] is None for r in constrained) == 0


def _short_suite(tmp_path: Path) -> Path:
    """Two labels and short inputs: llama-cpp-python sorts the whole vocabulary (262k for Gemma)
    for every echoed token, some 0.3 s a token here, so prompt length is what this test costs."""
    # One test example: two label requests and the probe's at ~0.3 s per echoed token, ~45 s in all here.
    return short_sentiment_suite(tmp_path / "short", "short", ("awful", "negative"))


def test_choice_through_a_server_that_echoes_the_models_log_probabilities(
        gemma: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache"))
    suite_dir = _short_suite(tmp_path)
    path = config(tmp_path, gemma, str(suite_dir), "gemma-3-270m", "prompt_logprobs = true\n",
                  "prompt:model=served:answer=choice")
    assert main(["run", "--config", str(path)]) == 0
    labels = ["negative", "positive"]
    records = predictions(tmp_path)
    assert len(records) == 1 and all(r["answer"] in labels and len(r["choice_scores"]) == 2 for r in records)
    # the served model's scores are the local model's (the same Q4 weights, dequantised): the same winners
    from harness.core.suites import load_suite
    from harness.core.types import ScoreRequest
    from harness.engine.backends.transformers import TransformersBackend
    from harness.engine.models import load_generator
    from harness.engine.prompting import build_messages

    suite = load_suite(str(suite_dir))
    local = TransformersBackend(load_generator("gemma-3-270m", device="cpu"))
    scored = local.score([ScoreRequest(build_messages(suite, e.input), suite.labels) for e in suite.test])
    for r, s in zip(records, scored, strict=True):
        assert max(abs(a - b) for a, b in zip(r["choice_scores"], s.logprobs, strict=True)) < 1.0


def test_choice_is_refused_where_the_echoed_log_probabilities_are_not_the_models(
        smol: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, smol, "poem-sentiment", ALIAS, "prompt_logprobs = true\n", "prompt:model=served:answer=choice")
    assert main(["run", "--config", str(path), "--limit", "5"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "echoes prompt log-probabilities that are not the model's" in err and "use answer=constrained" in err
    assert not (tmp_path / "runs").exists() or not any(p.is_dir() for p in (tmp_path / "runs").iterdir())
