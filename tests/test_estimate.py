"""The time estimate said before a run: its FLOPs from the planned work's token counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.engine.models import load_generator
from harness.engine.probe import linear_params, machine_gflops, matmul_gflops
from harness.runner.estimate import Estimate, estimate_run, weight_count


def test_the_weights_a_token_meets_are_read_from_the_headers(tiny_model_dir: Path) -> None:
    model = load_generator(str(tiny_model_dir), device="cpu").model
    norms = sum(p.numel() for n, p in model.named_parameters() if "norm" in n)
    # every linear layer (the tied head once), plus the norms' few weights; the embedding lookup is not work
    assert weight_count(str(tiny_model_dir)) == linear_params(model) + norms


def test_the_probe_measures_this_machine() -> None:
    assert 0.1 < matmul_gflops("cpu", "float32", n=256, seconds=0.05) < 1e5


def test_the_estimate_probes_a_machine_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import torch

    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path))
    monkeypatch.delenv("SFT_HARNESS_PROBES")  # the cache's own probe/ (the tests share one elsewhere)
    first = machine_gflops("float32")
    (kept,) = (tmp_path / "probe").glob("*.json")
    assert json.loads(kept.read_text())["gflops"] == first > 0.1
    kept.write_text(json.dumps({"gflops": 123.5}))  # a second call reads it instead of measuring again
    assert machine_gflops("float32") == 123.5
    kept.write_text("{damaged")  # measured again, and kept again
    assert machine_gflops("float32") > 0.1 and json.loads(kept.read_text())["gflops"] > 0.1
    threads = torch.get_num_threads()
    try:  # another thread count is another machine as far as the probe goes
        torch.set_num_threads(1)
        machine_gflops("float32")
    finally:
        torch.set_num_threads(threads)
    assert len(list((tmp_path / "probe").glob("*.json"))) == 2
    monkeypatch.setenv("SFT_HARNESS_PROBES", str(tmp_path / "shared"))  # one folder for several caches
    assert machine_gflops("float32") > 0.1 and len(list((tmp_path / "shared").glob("*.json"))) == 1


def test_a_run_plan_gets_an_estimate_that_grows_with_its_work(tiny_model_dir: Path, tmp_path: Path) -> None:
    from harness.runner import RunOptions
    from harness.runner.plan import plan_run

    def estimate(strategies: str, limit: int) -> Estimate:
        opts = RunOptions(suite="banking-intents", model=str(tiny_model_dir), strategies=strategies, limit=limit,
                          out=tmp_path / "runs", device="cpu", leakage_check=False)
        plan = plan_run(opts, None)
        found = estimate_run(plan, plan.build_models())
        assert found is not None
        return found

    prompt = estimate("prompt", 10)
    assert prompt.train_s == 0 and prompt.decode_s > 0
    assert estimate("prompt", 20).decode_s == pytest.approx(2 * prompt.decode_s, rel=0.25)  # the probe is noisy
    both = estimate("prompt,sft:epochs=2", 10)
    assert both.train_s > 0 and both.decode_s > prompt.decode_s
    assert estimate("prompt,sft:epochs=4", 10).train_s == pytest.approx(2 * both.train_s, rel=0.25)
    assert Estimate(200, 100).line() == "estimate: about 5 min on this CPU if nothing is cached (training 3 min, decoding 2 min)"
    assert Estimate(0, 12).line() == "estimate: about 12 s on this CPU if nothing is cached (decoding 12 s)"


def test_long_work_is_estimated_again_from_a_fresh_probe(tiny_model_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from rich.console import Console

    from harness.runner import RunOptions
    from harness.runner.estimate import say_estimate
    from harness.runner.plan import plan_run

    monkeypatch.setenv("SFT_HARNESS_PROBES", str(tmp_path / "probe"))
    opts = RunOptions(suite="banking-intents", model=str(tiny_model_dir), strategies="prompt", limit=10,
                      out=tmp_path / "runs", device="cpu", leakage_check=False)
    plan = plan_run(opts, None)
    models = plan.build_models()
    assert estimate_run(plan, models) is not None  # measures this machine and keeps the probes
    for kept in (tmp_path / "probe").glob("*.json"):
        entry = json.loads(kept.read_text())
        if "gflops" in entry:  # as if kept from a time this machine ran a million times slower
            kept.write_text(json.dumps({**entry, "gflops": entry["gflops"] / 1e6}))
    stale = estimate_run(plan, models)
    assert stale is not None and stale.decode_s > 3600  # the kept probe alone: hours
    console = Console(record=True, width=200)
    say_estimate(plan, models, console)
    said = console.export_text()
    assert said.startswith("estimate: about") and " s on this CPU" in said  # the machine as it is now: seconds
