"""`torchrun --nproc_per_node 2 -m harness run ...` and `accelerate launch ... -m harness run ...` on the
CPU (gloo): one run folder, one history line, and the adapter that one process trains with the same
global batch; the refusals under a launcher."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.core.errors import HarnessError
from harness.engine.training.launch import check_processes, free_port
from tests.test_distributed import _assert_same_adapter

REPO = Path(__file__).resolve().parent.parent
TOML = """name = "tiny-mood"
task = "classification"
instruction = "Classify the sentiment."
labels = ["negative", "positive"]
metrics = ["accuracy", "f1"]
[splits]
train = "train.jsonl"
test = "test.jsonl"
validation = "validation.jsonl"
[generation]
max_new_tokens = 4
"""
WORDS = ["sunny", "gloomy", "bright", "dark", "warm", "cold", "joy", "grief"]
# 13 train examples: the last global micro-batch of 4 holds one, so rank 1 trains a weight-0 stand-in
# there; grad_accum 2 takes the no_sync path. fp32: only the gradient summation order differs.
SFT = "sft:epochs=2:lr=0.02:rank=4:alpha=16:grad_accum=2:max_len=96:warmup=0:precision=fp32:name=sft:batch_size="
RTOL = 1e-4


def _suite(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "suite.toml").write_text(TOML)
    rows = [{"id": f"m{i}", "input": f"a {WORDS[i % 8]} day " + "and more " * (i % 4),
             "target": "positive" if i % 2 == 0 else "negative"} for i in range(21)]
    for name, part in (("train", rows[:13]), ("validation", rows[13:18]), ("test", rows[18:])):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    return folder


def _argv(suite: Path, model: Path, out: Path, batch: int | str) -> list[str]:
    return ["run", str(suite), "--strategies", f"{SFT}{batch}", "--model", str(model), "--device", "cpu",
            "--limit", "2", "--out", str(out), "--no-leakage-check"]


def _only_run(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


def _training(run: Path) -> dict[str, Any]:
    results = json.loads((run / "results.json").read_text())
    assert list(results["strategies"]) == ["sft"]
    return dict(results["strategies"]["sft"]["training"])


def _files_per_folder(cache: Path) -> Counter[str]:
    return Counter(p.relative_to(cache).parts[0] for p in cache.rglob("*") if p.is_file())


# The launchers, each starting 2 processes on this machine (accelerate's plain CPU mode starts one;
# --multi_gpu starts them through torchrun's code, and the processes train on the CPU with gloo).
LAUNCHERS = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
                   "0"],
}


def accelerate_config(distributed_type: str) -> str:
    """The part of an `accelerate config` file (what `accelerate config` writes) that is the same for
    every backend: 2 processes on this machine."""
    return f"""compute_environment: LOCAL_MACHINE
distributed_type: {distributed_type}
num_processes: 2
num_machines: 1
machine_rank: 0
main_process_port: 0
mixed_precision: 'no'
use_cpu: false
"""


# An accelerate config file for FSDP: accelerate launch starts 2 processes with ACCELERATE_USE_FSDP and
# the FSDP_* settings; each adapter then trains with FSDP2.
FSDP_CONFIG = accelerate_config("FSDP") + """fsdp_config:
  fsdp_version: 2
  fsdp_reshard_after_forward: true
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_state_dict_type: FULL_STATE_DICT
  fsdp_offload_params: false
  fsdp_activation_checkpointing: false
"""
# An accelerate DeepSpeed config naming the user's DeepSpeed JSON, HF style ("auto" entries, bf16 "auto"):
# each adapter trains at its ZeRO stage (3), with the strategy's batch layout and precision.
DEEPSPEED_CONFIG = accelerate_config("DEEPSPEED") + """deepspeed_config:
  deepspeed_config_file: {json}
  zero3_init_flag: true
"""
DEEPSPEED_JSON = {"train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
                  "bf16": {"enabled": "auto"}, "gradient_clipping": "auto",
                  "zero_optimization": {"stage": 3, "overlap_comm": True, "stage3_prefetch_bucket_size": "auto",
                                        "stage3_gather_16bit_weights_on_model_save": True}}


def test_launched_runs_train_the_adapter_of_one_process_and_rank_0_alone_writes(
        tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = _suite(tmp_path / "suite")
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache-one"))
    assert main(_argv(suite, tiny_model_dir, tmp_path / "one", 4)) == 0
    (tmp_path / "fsdp.yaml").write_text(FSDP_CONFIG)
    (tmp_path / "ds.json").write_text(json.dumps(DEEPSPEED_JSON))
    (tmp_path / "ds.yaml").write_text(DEEPSPEED_CONFIG.format(json=tmp_path / "ds.json"))
    launchers = {**LAUNCHERS, "accelerate-fsdp": [sys.executable, "-m", "accelerate.commands.launch",
                                                  "--config_file", str(tmp_path / "fsdp.yaml")]}
    if importlib.util.find_spec("deepspeed") is not None:  # the [dev] extra installs it
        launchers["accelerate-zero3"] = [sys.executable, "-m", "accelerate.commands.launch",
                                         "--config_file", str(tmp_path / "ds.yaml")]
    for name, launcher in launchers.items():
        env = {**os.environ, "SFT_HARNESS_CACHE": str(tmp_path / f"cache-{name}"), "OMP_NUM_THREADS": "1"}
        cmd = [*launcher, "-m", "harness", *_argv(suite, tiny_model_dir, tmp_path / name, 2)]
        done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{name}: {done.stderr[-3000:]}"
        _same_as_one_process(tmp_path, name)
    # Two "nodes" of one process each (two torchrun commands meeting at a master address, as on two
    # machines), training with sft:shard=fsdp: node 1's process is local rank 0 but global rank 1.
    name = "two-nodes-fsdp"
    env = {**os.environ, "SFT_HARNESS_CACHE": str(tmp_path / f"cache-{name}"), "OMP_NUM_THREADS": "1"}
    port = str(free_port())
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(rank),
         "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", port, "-m", "harness",
         *_argv(suite, tiny_model_dir, tmp_path / name, "2:shard=fsdp")],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    for node in nodes:
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, f"{name}: {err[-3000:]}"
    _same_as_one_process(tmp_path, name)


def _same_as_one_process(tmp_path: Path, name: str) -> None:
    from safetensors.torch import load_file

    one, two = _only_run(tmp_path / "one"), _only_run(tmp_path / name)
    t1, t2 = _training(one), _training(two)
    assert (t1["processes"], t1["global_batch"], t2["processes"], t2["global_batch"]) == (1, 8, 2, 8)
    sharded = name.rsplit("-", 1)[-1]
    assert t2["shard"] == (sharded if sharded in ("fsdp", "zero3") else "none")
    assert t1["adapter_key"] == t2["adapter_key"] and not t2["cached"]  # the same optimizer steps: one key
    assert [s for s, _ in t1["loss_curve"]] == [s for s, _ in t2["loss_curve"]] and len(t1["loss_curve"]) == 4
    for (_, a), (_, b) in zip(t1["loss_curve"] + t1["val_loss"], t2["loss_curve"] + t2["val_loss"], strict=True):
        assert b == pytest.approx(a, rel=RTOL)
    assert t2["loss_curve"][-1][1] < t2["loss_curve"][0][1]  # it trained
    w1 = load_file(one / "adapters" / "sft" / "adapter_model.safetensors")
    w2 = load_file(two / "adapters" / "sft" / "adapter_model.safetensors")
    assert w1.keys() == w2.keys()
    _assert_same_adapter(w2, w1, 0.02)  # the lr of SFT
    p1, p2 = ([json.loads(x)["output"] for x in (r / "predictions.jsonl").read_text().splitlines()] for r in (one, two))
    assert p1 == p2 and len(p1) == 2
    # Rank 1 wrote nothing: the same files as one process wrote, one history line per run.
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert [p.name for p in (tmp_path / name).iterdir() if p.is_file()] == ["index.jsonl"]
    assert len((tmp_path / name / "index.jsonl").read_text().splitlines()) == \
        len((tmp_path / "one" / "index.jsonl").read_text().splitlines())
    # probe/ (where a cache keeps its own; the tests share one, SFT_HARNESS_PROBES) is per machine and thread
    # count: under torchrun rank 0's estimate probes at one thread, its decoding at two; it holds no run's work.
    launched, alone = (_files_per_folder(tmp_path / f"cache-{n}") for n in (name, "one"))
    launched.pop("probe", None)
    alone.pop("probe", None)
    assert launched == alone


def test_only_run_runs_under_a_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets; no process group: `curve` is refused first
    assert main(["curve", "poem-sentiment", "--sizes", "16", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "only `sft-harness run` runs under one" in err
    # An accelerate config for ZeRO stage 0 or NVMe offload, or for FSDP's hybrid sharding: refused on
    # rank 0 before any work.
    refused = [("FSDP_SHARDING_STRATEGY", "HYBRID_SHARD", "FSDP sharding HYBRID_SHARD is not supported")]
    if importlib.util.find_spec("deepspeed") is not None:
        refused += [("ACCELERATE_DEEPSPEED_ZERO_STAGE", "0", "DeepSpeed ZeRO stage 0 is not supported"),
                    ("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE", "nvme", "offload_param to nvme is not supported")]
    for var, value, says in refused:
        monkeypatch.setenv(var, value)
        monkeypatch.setenv("ACCELERATE_USE_FSDP", "true" if var.startswith("FSDP") else "false")
        monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "false" if var.startswith("FSDP") else "true")
        assert main(["run", "poem-sentiment", "--strategies", "sft", "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err, err
        assert not list(tmp_path.iterdir())
        monkeypatch.delenv(var)
    with pytest.raises(HarnessError, match="sft:processes=3 in a run launched with 2 processes"):
        check_processes(3, "cpu")
    assert check_processes(2, "cpu") == 2 and check_processes(1, "cpu") == 1
