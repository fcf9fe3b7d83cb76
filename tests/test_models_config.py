"""Models named in the run config ([[models]]) and picked per strategy (`model=NAME`): every error
in a [[models]] table at its run.toml line, and refusals before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.cli.options import load_run_config as load_config  # the keys, then each backend's own
from harness.core.errors import HarnessError

MODELS = """suite = "poem-sentiment"
model = "smollm2-135m-instruct"

[[models]]
name = "small"
backend = "transformers"
id = "smollm2-135m-instruct"

[[models]]
name = "served"
backend = "openai"
id = "gpt-4o-mini"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "SFT_HARNESS_TEST_KEY"
usd_per_1m_input = 0.15
usd_per_1m_output = 0.60
max_concurrency = 8
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_a_good_models_config_loads(tmp_path: Path) -> None:
    conf = load_config(write(tmp_path, MODELS + '\n[[strategies]]\nkind = "prompt"\nmodel = "served"\n'))
    assert [t["name"] for t in conf.model_tables()] == ["small", "served"]
    assert conf.where_model(None, 1).endswith("run.toml:9")
    assert conf.where_model("base_url", 1).endswith("run.toml:13")
    assert conf.where("model", entry=0).endswith("run.toml:21")


@pytest.mark.parametrize(("old", "new", "line", "message"), [
    ('max_concurrency = 8', 'max_concurency = 8', 17, "unknown key 'max_concurency' in [[models]] (did you mean 'max_concurrency'?)"),
    ('max_concurrency = 8', 'max_concurrency = 0', 17, "'max_concurrency' must be at least 1"),
    ('max_concurrency = 8', 'max_concurrency = true', 17, "'max_concurrency' should be a whole number"),
    ('usd_per_1m_input = 0.15', 'usd_per_1m_input = -1', 15, "'usd_per_1m_input' must be a price of 0 or more"),
    ('usd_per_1m_output = 0.60', 'usd_per_1m_output = "cheap"', 16, "'usd_per_1m_output' should be a price"),
    ('name = "served"', 'name = "small"', 10, "model name 'small' is already used by [[models]] entry 1"),
    ('backend = "openai"', 'backend = "vllm"', 13, "'base_url' is for backend = \"openai\" models; model 'served' is vllm"),
    ('backend = "openai"', 'backend = "opneai"', 11, "backend 'opneai' is not one of transformers, openai, vllm (did you mean 'openai'?)"),
    ('id = "smollm2-135m-instruct"', 'id = "smollm2-135m-instruct"\ntensor_parallel_size = 2', 8,
     "'tensor_parallel_size' is for backend = \"vllm\" models; model 'small' is transformers"),
    ('base_url = "http://127.0.0.1:9/v1"\n', '', 9, "model 'served' (backend openai) needs a base_url"),
    ('id = "gpt-4o-mini"\n', '', 9, "[[models]] entry 2 needs 'id'"),
    ('id = "smollm2-135m-instruct"', 'id = ""', 7, "'id' should be a model alias"),
])
def test_models_errors_name_their_line(tmp_path: Path, old: str, new: str, line: int, message: str) -> None:
    assert old in MODELS
    path = write(tmp_path, MODELS.replace(old, new, 1))
    with pytest.raises(HarnessError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}:{line}: "), str(e.value)
    assert message in str(e.value)


def test_a_local_model_refuses_api_keys(tmp_path: Path) -> None:
    path = write(tmp_path, MODELS.replace('id = "smollm2-135m-instruct"\n', 'id = "smollm2-135m-instruct"\nmax_concurrency = 2\n', 1))
    with pytest.raises(HarnessError, match=r"run\.toml:8: 'max_concurrency' is for backend = \"openai\" models"):
        load_config(path)


def test_every_strategy_accepts_model_and_it_stays_out_of_params() -> None:
    import strategies as registry

    for kind in registry.registry():
        if kind in ("adapter", "outputs"):  # check their folder or file when built
            continue
        s = registry.build(kind, {"model": "small"})
        assert s.model == "small" and "model" not in s.params
    assert sorted(k for k, cls in registry.registry().items() if cls.needs_local_weights) == ["adapter", "sft", "sft+rag"]
    with pytest.raises(HarnessError, match="options: .*model"):
        registry.build("prompt", {"modle": "small"})


def test_an_unknown_model_is_refused_before_any_model_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.engine import models

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("harness.engine.modelset.load_generator", no_loading)
    monkeypatch.setattr(models, "load_generator", no_loading)
    out = tmp_path / "runs"
    assert main(["run", "poem-sentiment", "--strategies", "prompt:model=nope", "--out", str(out),
                 "--no-leakage-check"]) == 2
    err = capsys.readouterr().err
    assert "strategy 'prompt:model=nope': unknown model 'nope'" in err and "models: none" in err
    config = write(tmp_path, MODELS)
    assert main(["run", "--config", str(config), "--strategies", "prompt:model=smal", "--out", str(out),
                 "--no-leakage-check"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'smal' (did you mean 'small'?); models: small, served" in err
    assert not out.exists() or not any(out.iterdir())  # no run folder


@pytest.mark.parametrize("spec", ["sft:model=served", "sft+rag:model=served"])
def test_fine_tuning_refuses_an_api_model(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setattr("harness.engine.modelset.load_generator", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    config = write(tmp_path, MODELS)
    assert main(["run", "--config", str(config), "--strategies", spec, "--out", str(tmp_path / "runs"),
                 "--no-leakage-check"]) == 2
    assert "fine-tuning needs local weights" in capsys.readouterr().err


def test_a_strategy_table_with_an_unknown_model_is_blamed_at_its_line(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, MODELS + '\n[[strategies]]\nkind = "sft"\nmodel = "served"\n')
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "runs"), "--no-leakage-check"]) == 2
    err = capsys.readouterr().err
    assert f"{config}:21: strategy 'sft': model 'served' is served by an API" in err


def test_model_column_only_with_more_than_one_model() -> None:
    from harness.core.results import Recommendation, RunResults, SuiteInfo
    from harness.report.views import model_names
    from tests.fixtures_runs import strategy_results

    def run(strategies: dict[str, dict]) -> RunResults:
        return RunResults("s", "r", "", SuiteInfo("s", "qa"), strategy_results(strategies), [], Recommendation(None, "f1"))

    one = run({"a": {"model": {"name": "default"}}, "b": {"model": {"name": "default"}}})
    two = run({"a": {"model": {"name": "default", "id": "smollm2-135m-instruct", "backend": "transformers"}},
               "b": {"model": {"name": "served", "id": "gpt-4o-mini", "backend": "openai"}},
               "c": {"model": {"name": "local", "id": "/models/qwen/", "backend": "vllm"}}})
    assert model_names(one) is None and model_names(run({"a": {}})) is None
    assert model_names(two) == {"a": "smollm2-135m-instruct (transformers)", "b": "served: gpt-4o-mini (openai)",
                                "c": "local: qwen (vllm)"}


def test_api_cost_comes_from_token_prices() -> None:
    from harness.scoring.compare import cost_summary

    class P:
        latency_s, prompt_tokens, output_tokens = 0.5, 1000, 100

    cost = cost_summary([P(), P()], prepare_s=1.0, predict_s=1.0, usd_per_hour=100.0, token_prices=(0.15, 0.60))
    assert cost.training_usd == 0.0
    assert cost.usd_per_1k_requests == pytest.approx((1000 * 0.15 + 100 * 0.60) / 1e6 * 1000)


def test_a_local_model_is_freed_after_its_last_strategy(tiny_model_dir: Path) -> None:
    from harness.core.config import ModelSpec
    from harness.engine.modelset import build_models, share_key

    small, same, other = (ModelSpec(name="small", id=str(tiny_model_dir)), ModelSpec(name="x", id=str(tiny_model_dir)),
                          ModelSpec(name="other", id="smollm2-135m-instruct"))
    assert share_key(same) == share_key(small) != share_key(other)  # same weights: loaded once
    models = build_models({"a": small, "b": same, "c": other}, device="cpu", trust_remote_code=False, batch_size=2)
    assert len(models.backends) == 2 and models.of("a") is models.of("b")
    models.of("a").local_weights().model  # noqa: B018  # the weights, loaded
    models.free_unless_needed("a", ["b", "c"])
    assert models.of("a").local_weights().loaded  # b still decodes with them
    models.free_unless_needed("b", ["c"])
    assert not models.of("a").local_weights().loaded and models.weights_loaded  # freed, and said to have loaded
    assert models.record("a") == {"name": "small", **models.of("a").record()}


@pytest.mark.parametrize(("extra", "message"), [
    ("tensor_parallel_size = 0", "'tensor_parallel_size' must be at least 1, got 0"),
    ("gpu_memory_utilization = 1.5", "'gpu_memory_utilization' must be above 0 and at most 1, got 1.5"),
    ("gpu_memory_utilization = 0", "'gpu_memory_utilization' must be above 0 and at most 1, got 0"),
])
def test_vllm_options_are_checked_at_their_line(tmp_path: Path, extra: str, message: str) -> None:
    path = write(tmp_path, f'[[models]]\nname = "gpu"\nbackend = "vllm"\nid = "smollm2-135m-instruct"\n{extra}\n')
    with pytest.raises(HarnessError) as e:
        load_config(path)
    assert str(e.value) == f"{path}:5: {message}"


def test_a_vllm_model_on_a_machine_without_it_is_one_line_before_any_model_loads(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """No vLLM package here (or no CUDA): exit 2 naming the [[models]] table, no model, no run folder."""
    monkeypatch.setattr("harness.engine.modelset.load_generator", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    runs = tmp_path / "runs"
    path = write(tmp_path, f'suite = "poem-sentiment"\nout = "{runs}"\nleakage_check = false\n'
                           '[[models]]\nname = "gpu"\nbackend = "vllm"\nid = "smollm2-135m-instruct"\n'
                           '[[strategies]]\nkind = "prompt"\nmodel = "gpu"\n')
    assert main(["run", "--config", str(path), "--device", "cpu"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{path}:4" in err and "backend vllm" in err
    assert ("pip install 'sft-harness[vllm]'" in err) or ("needs a CUDA GPU" in err)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
