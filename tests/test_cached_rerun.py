"""README's promise, tested: a rerun of an unchanged comparison loads no model weights and no embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_suites import smaller_builtin


def test_a_cached_rerun_loads_no_weights(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.runner import RunOptions, run

    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache"))
    suite = smaller_builtin("support-faq", tmp_path / "support-faq", test=3, train=24, corpus=40)
    opts = RunOptions(
        suite=str(suite), model=str(tiny_model_dir), out=tmp_path / "runs", limit=3, device="cpu",
        strategies="prompt,prompt:k=2:select=knn,rag:k=1:budget=120:shots=1,"
                   "sft:epochs=1:rank=2:batch_size=8:max_len=256,sft+rag:k=1:budget=120:epochs=1:rank=2:max_len=512",
    )
    first = json.loads((run(opts) / "results.json").read_text())
    assert first["work"] == {"generator_loaded": True, "embedder_loaded": True}
    again = run(opts)
    second = json.loads((again / "results.json").read_text())
    assert second["work"] == {"generator_loaded": False, "embedder_loaded": False}
    for name, strategy in first["strategies"].items():
        assert second["strategies"][name]["metrics"] == strategy["metrics"]
    assert (again / "adapters").is_dir()  # the run folder is still self-contained
