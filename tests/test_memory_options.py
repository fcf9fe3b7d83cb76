"""Memory options for large models: gradient checkpointing trains the same adapter; QLoRA is refused
where it cannot run; running out of GPU memory is one line naming the options that help."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.cli import main
from harness.core.errors import HarnessError
from harness.engine.models import load_tokenizer
from harness.engine.training import train_adapter
from tests.test_training import FAST, pairs


def losses(model_dir: Path, tok: Any, cache: Path, **changes: Any) -> list[float]:
    trained = train_adapter(model_path=str(model_dir), model_id=str(model_dir), tokenizer=tok,
                            train_pairs=pairs(8), config=replace(FAST, precision="fp32", **changes),
                            device="cpu", cache_dir=cache)
    return [loss for _, loss in trained.report.loss_curve]


def test_gradient_checkpointing_gives_the_same_training(tiny_model_dir: Path, tmp_path: Path) -> None:
    tok = load_tokenizer(str(tiny_model_dir))
    plain = losses(tiny_model_dir, tok, tmp_path / "a")
    checkpointed = losses(tiny_model_dir, tok, tmp_path / "b", gradient_checkpointing=True)
    assert checkpointed == pytest.approx(plain, rel=1e-4, abs=1e-5)


def test_qlora_on_a_cpu_is_refused_before_any_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["run", "poem-sentiment", "--strategies", "sft:quantize=4bit", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "quantize=4bit (QLoRA) needs a CUDA GPU" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_out_of_gpu_memory_names_the_options(tiny_model_dir: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The error path only: a CPU cannot run out of GPU memory, so the step raises what CUDA would."""
    from harness.engine.training import loop

    def oom(*args: Any, **kwargs: Any) -> float:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(loop, "_train_step", oom)
    tok = load_tokenizer(str(tiny_model_dir))
    with pytest.raises(HarnessError, match="out of GPU memory while training .*gradient_checkpointing=true.*quantize=4bit"):
        losses(tiny_model_dir, tok, tmp_path / "c")
