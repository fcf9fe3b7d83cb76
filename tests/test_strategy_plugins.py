"""Strategies from a file, composed strategies, and a registry that says why a strategy is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import strategies as registry
from harness.core.errors import HarnessError

MY_STRATEGY = '''
from harness.engine.context import Prepared
from harness.engine.prompting import build_messages
from harness.core.types import Prompt
from strategies.base import Strategy


class ShoutStrategy(Strategy):
    """The zero-shot prompt with the input in capitals: a strategy in a file, no packaging."""

    kind = "shout"
    options = {"marks": 1}

    def prepare(self, suite, ctx):
        self.suite = suite
        return Prepared(artifacts={"style": "upper"})

    def prompts(self, examples):
        return [Prompt(build_messages(self.suite, ex.input.upper() + "!" * int(self.params["marks"])))
                for ex in examples]
'''


def test_a_strategy_from_a_file_runs_end_to_end(tmp_path: Path, tiny_model_dir: Path) -> None:
    from harness.runner import RunOptions, run

    path = tmp_path / "my_strategy.py"
    path.write_text(MY_STRATEGY)
    run_dir = run(RunOptions(suite="poem-sentiment", strategies=f"prompt,{path}:ShoutStrategy:marks=2",
                             model=str(tiny_model_dir), out=tmp_path / "runs", limit=3, device="cpu"))
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results["strategies"]) == {"prompt", "shout:marks=2"}
    assert results["strategies"]["shout:marks=2"]["kind"] == "shout"
    assert any(c["a"] == "prompt" or c["b"] == "prompt" for c in results["comparisons"])


@pytest.mark.parametrize(
    "spec, message",
    [
        ("./nope.py:X", "not found"),
        ("{file}:Missing", "no Strategy subclass named 'Missing'"),
        ("{bad}:X", "failed to import: ZeroDivisionError"),
    ],
)
def test_a_broken_strategy_file_is_one_line(spec: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text(MY_STRATEGY)
    (tmp_path / "bad.py").write_text("x = 1 / 0\n")
    spec = spec.format(file=tmp_path / "ok.py", bad=tmp_path / "bad.py")
    with pytest.raises(HarnessError, match=message):
        registry.from_spec(spec)


def test_a_builtin_that_fails_to_import_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.BUILTINS, "rag", ("strategies.no_such_module", "RagStrategy"))
    with pytest.raises(HarnessError, match=r"strategy 'rag' cannot be used: it failed to import \(ModuleNotFoundError"):
        registry.from_spec("rag")
    assert registry.from_spec("prompt")[0].kind == "prompt"  # the others still work


def test_a_plugin_with_a_builtin_name_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    fake = EntryPoint(name="prompt", value="somepkg:Prompt", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [fake] if group == registry.ENTRY_POINT_GROUP else [])
    with pytest.raises(HarnessError, match="has the name of a built-in strategy"):
        registry.from_spec("prompt")


def test_rag_with_shots_puts_worked_examples_before_the_passages(tmp_path: Path, tiny_model_dir: Path) -> None:
    from harness.core.suites import load_suite
    from harness.engine.backends.transformers import TransformersBackend
    from harness.engine.context import StrategyContext
    from harness.engine.models import load_generator

    suite = load_suite("support-faq")
    ctx = StrategyContext(seed=0, cache_dir=tmp_path / "cache", run_dir=tmp_path / "run",
                          backend=TransformersBackend(load_generator(str(tiny_model_dir), device="cpu")))
    rag = registry.build("rag", {"k": "1", "shots": "2", "budget": "200"})
    prepared = rag.prepare(suite, ctx)
    assert {"index", "shots"} <= set(prepared.artifacts)
    [prompt] = rag.prompts(suite.test[:1])
    roles = [m["role"] for m in prompt.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert prompt.messages[-1]["content"].startswith("Passages:\n") and len(prompt.retrieved) == 1
    with pytest.raises(HarnessError, match="shots must be 0 or more"):
        registry.build("rag", {"shots": "-1"})




COUNTED = MY_STRATEGY + '''
import os
with open(os.environ["SFTH_IMPORTS"], "a") as _f:  # each execution of this file leaves a line
    _f.write("imported\\n")
'''


def test_a_strategy_file_is_executed_once_per_run(tmp_path: Path, tiny_model_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's pre-flight builds the strategies once: the user's file runs once, named twice or not."""
    from harness.cli import main

    path, log = tmp_path / "counted.py", tmp_path / "imports.log"
    path.write_text(COUNTED)
    monkeypatch.setenv("SFTH_IMPORTS", str(log))
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache"))
    spec = f"{path}:ShoutStrategy,{path}:ShoutStrategy:marks=3"
    assert main(["run", "poem-sentiment", "--strategies", spec, "--model", str(tiny_model_dir), "--limit", "2",
                 "--out", str(tmp_path / "runs"), "--no-leakage-check", "--device", "cpu"]) == 0
    assert log.read_text().splitlines() == ["imported"]
    config = tmp_path / "run.toml"  # [[strategies]] tables: the same
    config.write_text(f'suite = "poem-sentiment"\nlimit = 2\nleakage_check = false\nout = "{tmp_path / "runs"}"\n'
                      f'[[strategies]]\nkind = "{path}:ShoutStrategy"\n')
    log.unlink()
    assert main(["run", "--config", str(config), "--model", str(tiny_model_dir), "--device", "cpu"]) == 0
    assert log.read_text().splitlines() == ["imported"]
