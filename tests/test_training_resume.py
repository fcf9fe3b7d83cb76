"""Checkpoints: an interrupted training resumes from its last checkpoint and trains the same
adapter, bit for bit, as an uninterrupted one (CPU, fp32); a damaged checkpoint is ignored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from harness.engine import training
from harness.engine.models import load_tokenizer
from harness.engine.training import TrainConfig, TrainedAdapter, train_adapter
from tests.test_training import FAST, pairs

N_TRAIN = 16  # 4 micro-batches of 4 per epoch


@pytest.fixture(scope="module")
def tok(tiny_model_dir: Path) -> Any:
    return load_tokenizer(str(tiny_model_dir))


def train(
    model_dir: Path, tok: Any, cache: Path | None, config: TrainConfig, progress: Any = None
) -> TrainedAdapter:
    return train_adapter(
        model_path=str(model_dir),
        model_id="tiny",
        tokenizer=tok,
        train_pairs=pairs(N_TRAIN),
        validation_pairs=pairs(3),
        config=config,
        cache_dir=cache,
        progress=progress,
    )


class StopAfter:
    """A progress bar that raises (a Ctrl-C) on its n-th update, i.e. after optimizer step n."""

    def __init__(self, n: int) -> None:
        self.n, self.updates = n, 0

    def add_task(self, *a: Any, **k: Any) -> int:
        return 0

    def update(self, *a: Any, **k: Any) -> None:
        self.updates += 1
        if self.updates == self.n:
            raise KeyboardInterrupt


def assert_same_training(a: TrainedAdapter, b: TrainedAdapter) -> None:
    wa = load_file(str(a.path / "adapter_model.safetensors"))
    wb = load_file(str(b.path / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys() and wa
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "the adapters differ"
    for field in ("loss_curve", "val_loss", "train_tokens", "target_tokens", "padding_share", "steps"):
        assert getattr(a.report, field) == getattr(b.report, field), field


def checkpoint_steps(cache: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in cache.glob("checkpoints/*/step-*"))


# (config changes, stop after step, the step the rerun resumes from); 4 micro-batches an epoch
CASES = [
    pytest.param({"checkpoint_every": 3}, 7, 6, id="mid-epoch"),
    pytest.param({"checkpoint_every": 0}, 7, 4, id="epoch-end-only"),
    pytest.param({"checkpoint_every": 1, "grad_accum": 2, "dropout": 0.1}, 4, 3, id="accum-dropout"),
]


@pytest.mark.parametrize(("changes", "stop", "resume_at"), CASES)
def test_interrupted_training_resumes_to_the_same_adapter(
    tiny_model_dir: Path, tok: Any, tmp_path: Path, changes: dict[str, Any], stop: int, resume_at: int
) -> None:
    config = replace(FAST, **changes)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model_dir, tok, tmp_path / "a", config, progress=StopAfter(stop))
    assert checkpoint_steps(tmp_path / "a") == [resume_at]  # only the latest one is kept
    [folder] = (tmp_path / "a").glob("checkpoints/*/step-*")
    spent = json.loads((folder / training.CHECKPOINT_MANIFEST).read_text())["seconds"]
    assert list((tmp_path / "a" / "adapters").iterdir()) == []

    resumed = train(tiny_model_dir, tok, tmp_path / "a", config)
    assert resumed.report.resumed_from_step == resume_at and not resumed.cached
    assert resumed.report.seconds >= spent > 0  # the interrupted run's time counts
    saved = json.loads((resumed.path / training.REPORT_FILE).read_text())
    assert saved["resumed_from_step"] == resume_at
    assert list((tmp_path / "a" / "checkpoints").iterdir()) == []  # deleted once the adapter is cached
    whole = train(tiny_model_dir, tok, tmp_path / "b", config)
    assert whole.report.resumed_from_step == 0 and whole.key == resumed.key
    assert_same_training(resumed, whole)
    assert checkpoint_steps(tmp_path / "b") == []


@pytest.mark.parametrize(
    "damage",
    [
        training.CHECKPOINT_LORA,
        training.CHECKPOINT_STATE,
        training.CHECKPOINT_MANIFEST,
        "key",  # a checkpoint of another training, copied in
        "flipped",  # one byte changed, the length intact
    ],
)
def test_damaged_checkpoint_is_ignored(
    tiny_model_dir: Path, tok: Any, tmp_path: Path, caplog: Any, damage: str
) -> None:
    config = replace(FAST, epochs=2, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model_dir, tok, tmp_path / "a", config, progress=StopAfter(3))
    [folder] = (tmp_path / "a").glob("checkpoints/*/step-*")
    if damage == "key":
        manifest = json.loads((folder / training.CHECKPOINT_MANIFEST).read_text())
        (folder / training.CHECKPOINT_MANIFEST).write_text(json.dumps({**manifest, "key": "other"}))
    elif damage == "flipped":
        blob = bytearray((folder / training.CHECKPOINT_LORA).read_bytes())
        blob[-1] ^= 1
        (folder / training.CHECKPOINT_LORA).write_bytes(bytes(blob))
    else:
        with open(folder / damage, "r+b") as f:
            f.truncate(os.path.getsize(folder / damage) // 2)

    with caplog.at_level("WARNING", logger="harness.engine.training"):
        restarted = train(tiny_model_dir, tok, tmp_path / "a", config)
    assert "ignoring checkpoint" in caplog.text
    assert restarted.report.resumed_from_step == 0 and restarted.report.steps == 8
    assert_same_training(restarted, train(tiny_model_dir, tok, tmp_path / "b", config))


def test_checkpoint_interval_is_not_part_of_the_adapter_key() -> None:
    keys = {
        training.adapter_key("tiny", "cpu", [], [], replace(FAST, checkpoint_every=n)) for n in (0, 1, 50)
    }
    assert len(keys) == 1


# -- a real SIGKILL ----------------------------------------------------------------------------

KILL_CONFIG = replace(FAST, dropout=0.1, checkpoint_every=2)  # 12 steps; dropout: the torch RNG resumes too
KILL_AFTER = 6  # the parent kills the child once a checkpoint at this step or later exists
STEP_SLEEP = 0.4  # seconds the child sleeps per optimizer step, so the kill lands mid-training


def child_main() -> None:
    """The subprocess: train into $SFT_HARNESS_CACHE, slowed down, until the parent kills it."""
    model_dir = sys.argv[1]
    real_step = training.loop._train_step

    def slow_step(*a: Any, **k: Any) -> float:
        time.sleep(STEP_SLEEP)
        return real_step(*a, **k)

    training.loop._train_step = slow_step  # type: ignore[assignment]
    train(Path(model_dir), load_tokenizer(model_dir), None, KILL_CONFIG)
    print("finished without being killed")


def test_sigkilled_training_resumes_to_the_same_adapter(
    tiny_model_dir: Path, tok: Any, tmp_path: Path
) -> None:
    cache = tmp_path / "killed"
    env = {**os.environ, "SFT_HARNESS_CACHE": str(cache)}
    code = "from tests.test_training_resume import child_main; child_main()"
    root = Path(__file__).resolve().parent.parent
    with open(tmp_path / "child.log", "w") as log:
        child = subprocess.Popen(
            [sys.executable, "-c", code, str(tiny_model_dir)], cwd=root, env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 120
        while max(checkpoint_steps(cache), default=0) < KILL_AFTER:
            assert child.poll() is None, (tmp_path / "child.log").read_text()
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    last = max(checkpoint_steps(cache))  # (a kill between writing one and deleting the older leaves two)
    assert KILL_AFTER <= last < 12

    resumed = train(tiny_model_dir, tok, cache, KILL_CONFIG)
    assert resumed.report.resumed_from_step == last and resumed.report.steps == 12
    assert not (cache / "checkpoints" / resumed.key).exists()
    entries = [p.name for p in (cache / "adapters").iterdir()]
    assert entries == [resumed.key]  # and the killed run's temp folder was swept
    assert_same_training(resumed, train(tiny_model_dir, tok, tmp_path / "whole", KILL_CONFIG))
