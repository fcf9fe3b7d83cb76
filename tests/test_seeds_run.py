"""`sft:seeds=2` end to end on a tiny random Llama: one adapter per seed, results.json and the report
carry the seeds, and a plain `sft` (one seed) is exactly what it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.core.runrecord import load_run

OPTS = "epochs=1:lr=0.02:rank=4:alpha=8:batch_size=4:max_len=256"
TRAIN = [{"id": f"t{i}", "input": f"{w} it, really", "target": "positive" if i % 2 else "negative"}
         for i, w in enumerate(["hate", "love", "loathe", "adore", "dislike", "enjoy", "detest", "like"])]
TEST = [{"id": f"e{i}", "input": w, "target": t} for i, (w, t) in
        enumerate([("great", "positive"), ("awful", "negative"), ("fine", "positive"), ("bad", "negative")])]


def test_two_seeds_train_two_adapters_and_one_seed_is_unchanged(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.core.results import to_json
    from harness.report.formats.html import render_html
    from harness.report.formats.markdown import render_markdown
    from harness.runner import RunOptions, run
    from tests.test_suites import write_suite

    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache"))
    suite = write_suite(tmp_path / "suite", train=TRAIN, test=TEST)

    def go(strategies: str) -> Path:
        return run(RunOptions(suite=str(suite), strategies=strategies, model=str(tiny_model_dir), out=tmp_path / "runs",
                              device="cpu", leakage_check=False))

    plain_dir = go(f"prompt,sft:{OPTS}:name=sft")
    seeded_dir = go(f"prompt,sft:{OPTS}:seeds=2:name=sft")
    plain, seeded = load_run(plain_dir), load_run(seeded_dir)

    # One seed: the results entry has no seed fields, and the records are the strategy's own.
    entry = to_json(plain.results)["strategies"]["sft"]
    assert not {"seeds", "per_seed", "seed_sd", "seed_runs"} & set(entry)
    assert entry["params"]["seeds"] == 1
    assert {r.strategy for r in plain.predictions} == {"prompt", "sft"}

    # Two seeds: the first is the one-seed run itself (same adapter, same answers), the second its own.
    multi = to_json(seeded.results)["strategies"]["sft"]
    assert multi["seeds"] == [0, 1] and [r["name"] for r in multi["seed_runs"]] == ["sft", "sft@seed1"]
    for metric in ("accuracy", "f1"):
        values = multi["per_seed"][metric]
        assert len(values) == 2 and multi["metrics"][metric]["value"] == pytest.approx(sum(values) / 2)
        assert values[0] == entry["metrics"][metric]["value"]
        assert metric in multi["seed_sd"]
    assert multi["training"]["adapter_key"] == entry["training"]["adapter_key"]
    assert {r.example_id: r.output for r in seeded.predictions_for("sft")} == \
        {r.example_id: r.output for r in plain.predictions_for("sft")}
    assert len(seeded.predictions_for("sft@seed1")) == len(TEST)
    first, second = (seeded_dir / r["adapter_path"] for r in multi["seed_runs"])
    assert first != second
    weights = [next(p.glob("*.safetensors")).read_bytes() for p in (first, second)]
    assert weights[0] != weights[1]  # trained with different seeds

    pairs = [c for c in to_json(seeded.results)["comparisons"] if {c["a"], c["b"]} == {"prompt", "sft"}]
    assert pairs and all(c["test"] == "hierarchical_bootstrap" and "seed_sd" in c for c in pairs)
    assert all(c.test != "hierarchical_bootstrap" for c in plain.results.comparisons)
    report = render_markdown(seeded.results)
    assert "## Training seeds" in report and "## Training seeds" not in render_markdown(plain.results)
    assert 'id="seeds"' in render_html(seeded) and 'id="seeds"' not in render_html(plain)
    json.dumps(to_json(seeded.results), allow_nan=False)  # still strict JSON
