"""Forgetting (`run --control`): a real LoRA adapter trained on one suite, scored on a built-in
control suite against the base model, on a tiny random Llama; perplexity against transformers' own loss."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from harness.core.errors import HarnessError
from harness.engine.backends.transformers import TransformersBackend
from harness.engine.models import load_generator
from harness.engine.perplexity import perplexity
from harness.runner import RunOptions, run
from harness.runner.control import CONTROL_FILE

SFT = "sft:epochs=2:lr=0.05:rank=4:alpha=16:batch_size=4:max_len=128:name=sft"
TOML = """name = "tiny-food"
task = "classification"
instruction = "Is the sentence about food?"
labels = ["no", "yes"]
metrics = ["accuracy", "f1"]
[splits]
train = "train.jsonl"
test = "test.jsonl"
[generation]
max_new_tokens = 4
"""
FOOD = ["I baked bread", "the soup is hot", "we ate pasta", "apples are sweet", "rice with beans", "a cheese pizza"]
OTHER = ["the train is late", "my car is blue", "it rained today", "she plays chess", "the door is open", "a tall tree"]


def write_food_suite(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.toml").write_text(TOML)
    rows = [{"id": f"f{i}", "input": t, "target": "yes"} for i, t in enumerate(FOOD)]
    rows += [{"id": f"o{i}", "input": t, "target": "no"} for i, t in enumerate(OTHER)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4] + rows[6:10]))
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[4:6] + rows[10:]))
    return folder


def control_records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / CONTROL_FILE).read_text().splitlines()]


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_control_scores_the_adapter_against_the_base_on_another_suite(
    tmp_path: Path, tiny_model_dir: Path, cache: Path
) -> None:
    opts = RunOptions(suite=str(write_food_suite(tmp_path / "food")), strategies=f"prompt,{SFT}",
                      model=str(tiny_model_dir), out=tmp_path / "runs", device="cpu", limit=6,
                      control=("poem-sentiment",), leakage_check=False)
    run_dir = run(opts)
    results = json.loads((run_dir / "results.json").read_text())
    section = results["forgetting"]
    assert [c["name"] for c in section["controls"]] == ["poem-sentiment"] and section["limit"] == 6
    assert list(section["strategies"]) == ["sft"]  # prompt has no adapter: not a forgetting candidate
    entry = section["strategies"]["sft"]["poem-sentiment"]
    assert entry["n"] == 6 and set(entry["metrics"]) == {"accuracy", "f1"}

    records = control_records(run_dir)
    assert {r["control"] for r in records} == {"poem-sentiment"}
    by = {name: {r["example_id"]: r for r in records if r["strategy"] == name} for name in ("base", "sft")}
    assert len(by["base"]) == len(by["sft"]) == 6 and by["base"].keys() == by["sft"].keys()
    # The zero-shot prompt of the control suite, the adapter applied: outputs that differ from the base's.
    assert any(by["base"][i]["output"] != by["sft"][i]["output"] for i in by["base"])
    acc = entry["metrics"]["accuracy"]
    base_acc = sum(r["score"] for r in by["base"].values()) / 6
    sft_acc = sum(r["score"] for r in by["sft"].values()) / 6
    assert acc["base"] == pytest.approx(base_acc) and acc["adapter"] == pytest.approx(sft_acc)
    assert acc["diff"] == pytest.approx(sft_acc - base_acc) and acc["ci"][0] <= acc["diff"] <= acc["ci"][1]
    assert acc["test"] == "mcnemar_exact" and 0 < acc["p_value"] <= 1

    ppl = entry["perplexity"]
    assert ppl["texts"] == 64 and ppl["tokens"] > 64 and ppl["base"] > 1 and ppl["adapter"] > 1
    assert ppl["change"] == pytest.approx(ppl["adapter"] - ppl["base"]) and ppl["base"] != ppl["adapter"]

    # A rerun decodes nothing and loads no weights: the control predictions and perplexities are cached too.
    again = json.loads((run(opts) / "results.json").read_text())
    assert again["work"]["generator_loaded"] is False
    assert again["forgetting"]["strategies"] == section["strategies"]


def test_perplexity_matches_the_models_own_loss(tiny_model_dir: Path) -> None:
    import torch

    loaded = load_generator(str(tiny_model_dir), device="cpu")
    tok, model = loaded.tokenizer, loaded.model
    texts = ["the quick brown fox jumps over the lazy dog", "a", "bread and butter", "one two three four five six"]
    got = perplexity(TransformersBackend(loaded), texts)  # one padded batch of unequal lengths
    nll, n = 0.0, 0
    for text in texts:
        ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
        if len(ids) < 2:
            continue
        with torch.inference_mode():
            loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss
        nll += float(loss) * (len(ids) - 1)
        n += len(ids) - 1
    assert got.tokens == n and got.texts == 4
    assert got.perplexity == pytest.approx(math.exp(nll / n), rel=1e-4)


def test_unknown_control_suite_is_refused_before_any_model_work(tmp_path: Path) -> None:
    opts = RunOptions(suite="poem-sentiment", model="no-such-model", out=tmp_path / "runs", control=("poem-sentimen",))
    with pytest.raises(HarnessError, match=r"^--control poem-sentimen: suite 'poem-sentimen' is neither") as e:
        run(opts)
    assert "\n" not in str(e.value) and not (tmp_path / "runs").exists()
    with pytest.raises(HarnessError, match=r"^--control poem-sentiment: this is the suite under test"):
        run(RunOptions(suite="poem-sentiment", model="no-such-model", out=tmp_path / "runs", control=("poem-sentiment",)))


def test_control_in_run_toml_is_blamed_on_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    config = tmp_path / "run.toml"
    config.write_text(f'suite = "poem-sentiment"\nout = "{tmp_path / "runs"}"\ncontrol = "e2e-nlg,nope"\n')
    assert main(["run", "--config", str(config)]) == 2
    assert f"error: {config}:3: control nope: suite 'nope' is neither" in capsys.readouterr().err
    for value, said in (("3", "'control' should be control suites"), ('["e2e-nlg", 2]', "'control' must be suite names")):
        config.write_text(f'suite = "poem-sentiment"\ncontrol = {value}\n')
        assert main(["run", "--config", str(config)]) == 2
        assert f"error: {config}:2: {said}" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_control_flags_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    base = ["run", "poem-sentiment", "--out", str(tmp_path / "runs"), "--no-leakage-check"]
    assert main([*base, "--control", "e2e-nlg,banking-intent"]) == 2
    assert "error: --control banking-intent: suite 'banking-intent' is neither" in capsys.readouterr().err
    assert main([*base, "--control", "e2e-nlg", "--control-limit", "0"]) == 2
    assert "error: --control-limit must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
