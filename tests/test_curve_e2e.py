"""`sft-harness curve` end to end on the tiny random model: curve.json's shape, the report files,
and a second curve with one more size computing only the new cells (the rest from the caches)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main

STRATEGIES = "prompt,prompt:k=2,sft:epochs=1:rank=2:batch_size=4:max_len=96:name=sft"


def _curve(out: Path, model: Path, sizes: str) -> dict:
    before = set(out.glob("*-curve-*")) if out.exists() else set()
    argv = ["curve", "poem-sentiment", "--strategies", STRATEGIES, "--sizes", sizes, "--seeds", "2", "--limit", "4",
            "--model", str(model), "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    (folder,) = set(out.glob("*-curve-*")) - before
    for name in ("curve.json", "cells.jsonl", "curve.md", "curve.html"):
        assert (folder / name).is_file(), name
    return json.loads((folder / "curve.json").read_text())


def test_curve_end_to_end_and_only_new_cells_computed(tmp_path: Path, tiny_model_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "runs"
    first = _curve(out, tiny_model_dir, "4")
    assert "estimate: about" in capsys.readouterr().err  # said before the grid's work
    assert first["sizes"] == [4] and first["seeds"] == [0, 1] and first["metric"] in ("accuracy", "f1")
    cells = {(c["strategy"], c["size"], c["seed"]) for c in first["cells"]}
    assert cells == {("prompt", None, 0)} | {(s, n, seed) for s in ("prompt:k=2", "sft") for n in (4,) for seed in (0, 1)}
    for c in first["cells"]:
        assert set(c) >= {"strategy", "size", "seed", "metrics", "n_train"}
        assert c["n_train"] == (c["size"] or first["suite"]["n_train"])
        assert set(c["metrics"]) == set(first["suite"]["metrics"]) and c["work"]["computed"]
    assert first["curves"]["prompt"]["uses_train"] is False and first["curves"]["sft"]["uses_train"] is True
    for point in first["curves"]["sft"]["points"]:
        assert point["ci"][0] <= point["mean"] <= point["ci"][1] and point["sd"] >= 0
    pairs = {(c["a"], c["b"]) for c in first["crossovers"]}
    assert len(pairs) == 3 and all(set(c) >= {"at", "ci", "no_crossover_share"} for c in first["crossovers"])
    assert first["work"]["generator_loaded"] is True

    second = _curve(out, tiny_model_dir, "4,8")
    computed = {(c["strategy"], c["size"], c["seed"]) for c in second["cells"] if c["work"]["computed"]}
    assert computed == {(s, 8, seed) for s in ("prompt:k=2", "sft") for seed in (0, 1)}
    assert len(second["curves"]["sft"]["points"]) == 2
    old = {(c["strategy"], c["size"], c["seed"]): c["metrics"] for c in first["cells"]}
    for c in second["cells"]:
        if (c["strategy"], c["size"], c["seed"]) in old:
            assert c["metrics"] == old[(c["strategy"], c["size"], c["seed"])]  # the same cell, from the cache
    html = next(out.glob("*-curve-*/curve.html"))
    assert "<svg" in html.read_text() and "train examples (log scale)" in html.read_text()


def test_curve_refuses_a_size_beyond_the_train_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["curve", "poem-sentiment", "--sizes", "16,100000", "--out", str(tmp_path)])
    assert code == 2
    assert "--sizes: 100000 is more than the" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before any folder was made
