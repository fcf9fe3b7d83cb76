"""Data-parallel training (sft:processes=N) on the CPU with gloo: two worker processes train the adapter
that one process trains with the same global batch."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.progress import Progress

from harness.core.errors import HarnessError
from harness.engine import training
from harness.engine.models import load_tokenizer
from harness.engine.training import REPORT_FILE, Encoded, TrainConfig, end_token_ids, train_adapter
from harness.engine.training.distributed import group_counts, shard
from harness.engine.training.launch import check_processes
from harness.engine.training.warm import FRESH_ENV

SYSTEM = {"role": "system", "content": "Classify the sentiment. Answer with exactly one label: negative; positive."}
WORDS = ["sunny", "gloomy", "bright", "dark", "warm", "cold", "joy", "grief"]
# 13 examples: the last global micro-batch of 4 holds one, so the second process trains a weight-0
# stand-in there; grad_accum 2 exercises the no_sync micro-batches.
CONFIG = TrainConfig(epochs=2, lr=2e-2, rank=8, alpha=16, batch_size=4, grad_accum=2, max_len=128, warmup=0.0,
                     seed=0, precision="fp32", checkpoint_every=0)
RTOL = 1e-4  # per step, fp32: only the summation order of the gradients differs


def pairs(n: int) -> list[tuple[list[dict[str, str]], str]]:
    return [
        ([SYSTEM, {"role": "user", "content": f"a {WORDS[i % 8]} day " + "and more " * (i % 4)}],
         "positive" if i % 2 == 0 else "negative")
        for i in range(n)
    ]


def _train(model_dir: Path, tok: Any, cache: Path, config: TrainConfig,
           progress: Any = None) -> training.TrainedAdapter:
    return train_adapter(model_path=str(model_dir), model_id="tiny", tokenizer=tok, train_pairs=pairs(13),
                         validation_pairs=pairs(5), config=config, cache_dir=cache, progress=progress)


def _greedy(model_dir: Path, adapter: Path, tok: Any) -> list[list[int]]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    out = []
    for chat, _ in pairs(4):
        ids = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        gen = model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
        out.append(gen[0, ids["input_ids"].shape[1]:].tolist())
    return out


def test_two_processes_train_the_adapter_of_one_with_the_same_global_batch(tiny_model_dir: Path,
                                                                           tmp_path: Path) -> None:
    tok = load_tokenizer(str(tiny_model_dir))
    one = _train(tiny_model_dir, tok, tmp_path / "one", CONFIG)
    progress = Progress(disable=True)  # worker 0 reports its steps to this process's bar
    two_config = replace(CONFIG, batch_size=2, processes=2, checkpoint_every=1)
    two = _train(tiny_model_dir, tok, tmp_path / "two", two_config, progress)
    assert (progress.tasks[0].completed, progress.tasks[0].total) == (4, 4)
    assert not two.cached and one.key == two.key  # the same optimizer steps: one cache entry
    r1, r2 = one.report, two.report
    assert (r1.processes, r1.global_batch, r2.processes, r2.global_batch) == (1, 8, 2, 8)
    assert r1.steps == r2.steps == 4 and [s for s, _ in r1.loss_curve] == [s for s, _ in r2.loss_curve]
    for (_, a), (_, b) in zip(r1.loss_curve, r2.loss_curve, strict=True):
        assert b == pytest.approx(a, rel=RTOL)
    for (_, a), (_, b) in zip(r1.val_loss, r2.val_loss, strict=True):
        assert b == pytest.approx(a, rel=RTOL)
    assert r1.train_tokens == r2.train_tokens and r1.target_tokens == r2.target_tokens
    # The loss fell: a curve of zeros or a frozen adapter would also "match".
    assert r2.loss_curve[-1][1] < r2.loss_curve[0][1]
    # Only the main process wrote the entry: one adapter, one report, no stray files.
    assert sorted(p.name for p in two.path.iterdir()) == sorted(p.name for p in one.path.iterdir())
    assert json.loads((two.path / REPORT_FILE).read_text())["processes"] == 2
    assert not list((tmp_path / "two" / "checkpoints").glob("*/step-*"))
    assert _greedy(tiny_model_dir, one.path, tok) == _greedy(tiny_model_dir, two.path, tok)
    # The test can fail: a different global batch gives another curve.
    other = _train(tiny_model_dir, tok, tmp_path / "other", replace(CONFIG, batch_size=2))
    assert other.key != one.key
    assert other.report.loss_curve[0][1] != pytest.approx(r1.loss_curve[0][1], rel=RTOL)


def test_shards_split_each_global_micro_batch_evenly() -> None:
    assert [shard(list(range(8)), r, 2) for r in range(2)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [shard([7, 8, 9], r, 2) for r in range(2)] == [[7, 8], [9]]
    assert [shard([5], r, 2) for r in range(2)] == [[5], []]  # the stand-in case
    seqs = [Encoded(tuple(range(n)), p) for n, p in [(5, 2), (6, 2), (9, 4), (3, 1)]]
    # padded: each process pads to its own longest sequence
    assert group_counts(seqs, [[0, 1, 2, 3]], 2, packing=False) == (23, 14, 2 * 6 + 2 * 9)
    assert group_counts(seqs, [[0, 1, 2, 3]], 1, packing=False) == (23, 14, 4 * 9)
    assert group_counts(seqs, [[0, 1, 2, 3]], 2, packing=True) == (23, 14, 23)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_processes_must_be_a_whole_number_of_at_least_one(bad: Any) -> None:
    with pytest.raises(HarnessError, match="sft:processes must be a whole number"):
        check_processes(bad, "cpu")


def test_processes_need_a_cpu_or_enough_gpus() -> None:
    assert check_processes(2, "cpu") == 2
    with pytest.raises(HarnessError, match="CPU \\(gloo\\) or on CUDA"):
        check_processes(2, "mps")
    if torch.cuda.device_count() < 64:
        with pytest.raises(HarnessError, match="one CUDA device per process"):
            check_processes(64, "cuda")


# Forked from the helper (warm.py, on a Linux machine without CUDA) and fresh processes, as on a GPU machine.
@pytest.mark.parametrize("fresh", ["", "1"], ids=["forked", "fresh"])
def test_a_failing_worker_is_one_line_error(tiny_model_dir: Path, tmp_path: Path, fresh: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FRESH_ENV, fresh)
    tok = load_tokenizer(str(tiny_model_dir))
    bad = replace(CONFIG, batch_size=2, processes=2, target_modules=("no_such_layer",))
    with pytest.raises(HarnessError) as e:
        train_adapter(model_path=str(tiny_model_dir), model_id="tiny", tokenizer=tok,
                      train_pairs=pairs(4), config=bad, cache_dir=tmp_path, end_ids=end_token_ids(tok))
    assert "no_such_layer" in str(e.value) and "\n" not in str(e.value)
    assert list((tmp_path / "adapters").iterdir()) == []  # no half-written entry


def test_one_process_key_is_unchanged_by_the_processes_field() -> None:
    seq = [Encoded((1, 2, 3), 1)]
    k = training.adapter_key
    assert k("m", "cpu", seq, [], CONFIG) == k("m", "cpu", seq, [], replace(CONFIG, batch_size=2, processes=2))
    assert k("m", "cpu", seq, [], CONFIG) != k("m", "cpu", seq, [], replace(CONFIG, processes=2))


def _weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def _checkpoint_tensors(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    (step,) = folder.glob("step-*")
    return load_file(str(step / training.CHECKPOINT_LORA))


def _assert_same_adapter(got: dict[str, Any], want: dict[str, Any], lr: float) -> None:
    """Equal up to summation order. AdamW moves an element whose gradient is float noise (~1e-10) by up to
    lr * |g| / eps per step, whatever the noise's sign: such elements (seen: 1 of 512, 3e-4 apart) may
    differ by a fraction of lr; every other element agrees to 1e-5. A lost or doubled shard moves them all."""
    assert got.keys() == want.keys() and want
    diffs = torch.cat([(got[k] - want[k]).abs().flatten() for k in want])
    assert float(diffs.max()) < lr / 10
    assert float((diffs > 1e-5).float().mean()) < 0.01


def test_fsdp_shards_train_the_adapter_of_one_process_and_checkpoints_cross_over(tiny_model_dir: Path,
                                                                                tmp_path: Path) -> None:
    """sft:shard=fsdp with 2 processes (FSDP2 on gloo): the adapter of one process with the same global
    batch; a checkpoint one process wrote resumes under FSDP and one FSDP wrote resumes in one process."""
    from harness.engine.training.launch import launch_training
    from harness.engine.training.loop import train_lora

    tok = load_tokenizer(str(tiny_model_dir))
    end = end_token_ids(tok)
    train, _ = training.encode_all(tok, pairs(13), end, CONFIG.max_len)
    val, _ = training.encode_all(tok, pairs(5), end, CONFIG.max_len)
    one_cfg = replace(CONFIG, checkpoint_every=1)
    fsdp_cfg = replace(one_cfg, batch_size=2, processes=2, shard="fsdp")

    def run(kind: str, cfg: TrainConfig, ckpt: Path, out: Path) -> training.TrainReport:
        trainer = train_lora if cfg.processes == 1 else launch_training
        return trainer(str(tiny_model_dir), tok, train, out, cfg, validation=val, checkpoint_dir=ckpt)

    one = run("one", one_cfg, tmp_path / "ckpt-one" / "k", tmp_path / "one")
    fsdp = run("fsdp", fsdp_cfg, tmp_path / "ckpt-fsdp" / "k", tmp_path / "fsdp")
    assert (fsdp.processes, fsdp.shard, fsdp.global_batch, one.shard) == (2, "fsdp", 8, "none")
    assert fsdp.steps == one.steps == 4 and fsdp.resumed_from_step == 0
    for (_, a), (_, b) in zip(one.loss_curve + one.val_loss, fsdp.loss_curve + fsdp.val_loss, strict=True):
        assert b == pytest.approx(a, rel=RTOL)
    assert fsdp.loss_curve[-1][1] < fsdp.loss_curve[0][1]  # it trained
    w1, w2 = _weights(tmp_path / "one"), _weights(tmp_path / "fsdp")
    assert w1.keys() == w2.keys() and w1
    _assert_same_adapter(w2, w1, CONFIG.lr)
    assert sorted(p.name for p in (tmp_path / "fsdp").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert _greedy(tiny_model_dir, tmp_path / "one", tok) == _greedy(tiny_model_dir, tmp_path / "fsdp", tok)
    # The FSDP checkpoint (step 3 of 4) holds the whole tensors, in one process's format.
    c1, c2 = _checkpoint_tensors(tmp_path / "ckpt-one" / "k"), _checkpoint_tensors(tmp_path / "ckpt-fsdp" / "k")
    assert {k: v.shape for k, v in c1.items()} == {k: v.shape for k, v in c2.items()}
    # Crossed over: each resumes the other's checkpoint at step 3 and ends on the same adapter.
    fsdp_resumed = run("fsdp", fsdp_cfg, tmp_path / "ckpt-one" / "k", tmp_path / "fsdp-resumed")
    one_resumed = run("one", one_cfg, tmp_path / "ckpt-fsdp" / "k", tmp_path / "one-resumed")
    assert fsdp_resumed.resumed_from_step == one_resumed.resumed_from_step == 3
    for folder in ("fsdp-resumed", "one-resumed"):
        _assert_same_adapter(_weights(tmp_path / folder), w1, CONFIG.lr)


def test_deepspeed_zero_trains_the_adapter_of_one_process_and_checkpoints_cross_over(tiny_model_dir: Path,
                                                                                      tmp_path: Path) -> None:
    """sft:shard=zero3 and zero2 with 2 processes (DeepSpeed on its CPU accelerator, gloo): the adapter of
    one process with the same global batch; checkpoints cross over: ZeRO-2 resumes one process's, one
    process resumes ZeRO-3's."""
    pytest.importorskip("deepspeed")
    from harness.engine.training.launch import launch_training
    from harness.engine.training.loop import train_lora

    tok = load_tokenizer(str(tiny_model_dir))
    end = end_token_ids(tok)
    train, _ = training.encode_all(tok, pairs(13), end, CONFIG.max_len)
    val, _ = training.encode_all(tok, pairs(5), end, CONFIG.max_len)
    one_cfg = replace(CONFIG, checkpoint_every=1)

    def run(cfg: TrainConfig, ckpt: Path, out: Path) -> training.TrainReport:
        trainer = train_lora if cfg.processes == 1 else launch_training
        return trainer(str(tiny_model_dir), tok, train, out, cfg, validation=val, checkpoint_dir=ckpt)

    one = run(one_cfg, tmp_path / "ckpt-one" / "k", tmp_path / "one")
    zero3_cfg = replace(one_cfg, batch_size=2, processes=2, shard="zero3")
    zero3 = run(zero3_cfg, tmp_path / "ckpt-zero3" / "k", tmp_path / "zero3")
    assert (zero3.processes, zero3.shard, zero3.global_batch) == (2, "zero3", 8)
    assert zero3.steps == one.steps == 4 and zero3.resumed_from_step == 0
    for (_, a), (_, b) in zip(one.loss_curve + one.val_loss, zero3.loss_curve + zero3.val_loss, strict=True):
        assert b == pytest.approx(a, rel=RTOL)
    w1 = _weights(tmp_path / "one")
    _assert_same_adapter(_weights(tmp_path / "zero3"), w1, CONFIG.lr)
    assert sorted(p.name for p in (tmp_path / "zero3").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    # The ZeRO-3 checkpoint (step 3 of 4) holds the whole tensors, in one process's format.
    c1, c3 = _checkpoint_tensors(tmp_path / "ckpt-one" / "k"), _checkpoint_tensors(tmp_path / "ckpt-zero3" / "k")
    assert {k: v.shape for k, v in c1.items()} == {k: v.shape for k, v in c3.items()}
    zero2_resumed = run(replace(zero3_cfg, shard="zero2"), tmp_path / "ckpt-one" / "k", tmp_path / "zero2-resumed")
    one_resumed = run(one_cfg, tmp_path / "ckpt-zero3" / "k", tmp_path / "one-resumed")
    assert zero2_resumed.resumed_from_step == one_resumed.resumed_from_step == 3
    assert zero2_resumed.shard == "zero2"
    for folder in ("zero2-resumed", "one-resumed"):
        _assert_same_adapter(_weights(tmp_path / folder), w1, CONFIG.lr)


def test_zero3_resumes_partitions_that_do_not_divide_and_saves_the_step_it_reached(tiny_model_dir: Path,
                                                                                   tmp_path: Path) -> None:
    """3 ZeRO-3 processes: every LoRA tensor (a multiple of 64 elements) leaves the last partition padded.
    Resumed at step 1 from one process's checkpoint, they write checkpoints at steps 2 and 3 that hold
    AdamW's true step, and one process resumed from step 3 ends on the one-process adapter."""
    pytest.importorskip("deepspeed")
    from harness.engine.training.launch import launch_training
    from harness.engine.training.loop import train_lora

    tok = load_tokenizer(str(tiny_model_dir))
    end = end_token_ids(tok)
    train, _ = training.encode_all(tok, pairs(13), end, CONFIG.max_len)
    one_cfg = replace(CONFIG, checkpoint_every=1, batch_size=6)

    def run(cfg: TrainConfig, ckpt: Path, out: Path) -> training.TrainReport:
        trainer = train_lora if cfg.processes == 1 else launch_training
        return trainer(str(tiny_model_dir), tok, train, out, cfg, checkpoint_dir=ckpt)

    one = run(one_cfg, tmp_path / "ckpt-one" / "k", tmp_path / "one")
    assert one.steps == 4
    # One epoch of the same steps leaves its step-1 checkpoint (only the latest is kept, and none at the end).
    run(replace(one_cfg, epochs=1), tmp_path / "ckpt-zero3" / "k", tmp_path / "one-epoch")
    assert [p.name for p in (tmp_path / "ckpt-zero3" / "k").glob("step-*")] == ["step-00000001"]
    zero3 = run(replace(one_cfg, batch_size=2, processes=3, shard="zero3"), tmp_path / "ckpt-zero3" / "k",
                tmp_path / "zero3")
    assert (zero3.resumed_from_step, zero3.processes, zero3.global_batch) == (1, 3, 12)
    _assert_same_adapter(_weights(tmp_path / "zero3"), _weights(tmp_path / "one"), CONFIG.lr)
    last = sorted((tmp_path / "ckpt-zero3" / "k").glob("step-*"))[-1]
    state = torch.load(last / training.CHECKPOINT_STATE, weights_only=True)["optimizer"]["state"]
    assert {float(slots["step"]) for slots in state.values()} == {3.0}
    one_resumed = run(one_cfg, tmp_path / "ckpt-zero3" / "k", tmp_path / "one-resumed")
    assert one_resumed.resumed_from_step == 3
    _assert_same_adapter(_weights(tmp_path / "one-resumed"), _weights(tmp_path / "one"), CONFIG.lr)


def test_deepspeed_config_keeps_the_users_zero_section_and_the_strategys_layout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.engine.training.zero import engine_config, launched_stage, zero3_init_wanted

    user = {"train_micro_batch_size_per_gpu": "auto", "bf16": {"enabled": True}, "gradient_clipping": 1.0,
            "optimizer": {"type": "AdamW"}, "zero_optimization": {"stage": 3, "overlap_comm": True,
            "reduce_bucket_size": "auto", "offload_optimizer": {"device": "cpu", "pin_memory": True}}}
    (tmp_path / "ds.json").write_text(json.dumps(user))
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", str(tmp_path / "ds.json"))
    assert launched_stage() == "zero3"
    assert zero3_init_wanted()  # ZeRO-3 loads partitioned unless the config's zero3_init_flag says false
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO3_INIT", "false")
    assert not zero3_init_wanted()
    cuda = engine_config("zero3", batch_size=2, grad_accum=4, world=8, cuda=True)
    assert (cuda["train_micro_batch_size_per_gpu"], cuda["gradient_accumulation_steps"], cuda["train_batch_size"]) \
        == (2, 4, 64)
    assert cuda["zero_optimization"] == {"stage": 3, "overlap_comm": True,
                                         "offload_optimizer": {"device": "cpu", "pin_memory": True}}
    assert "bf16" not in cuda and "optimizer" not in cuda and cuda["gradient_clipping"] == 0.0
    # On the CPU the offload is dropped: the weights are in CPU memory already.
    assert engine_config("zero2", 2, 4, 8, cuda=False)["zero_optimization"] == {"stage": 2, "overlap_comm": True}
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 3,
                                                                         "offload_param": {"device": "nvme"}}}))
    with pytest.raises(HarnessError, match="offload_param to nvme is not supported"):
        engine_config("zero3", 2, 4, 8, cuda=True)
    (tmp_path / "ds.json").write_text("{not json")
    with pytest.raises(HarnessError, match="ds.json: the DeepSpeed config cannot be read"):
        launched_stage()
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "0")
    with pytest.raises(HarnessError, match="stage 0 is not supported"):
        launched_stage()


ZERO3_LOAD = """
import json, sys
import torch
from safetensors.torch import load_file
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
from harness.engine.training import TrainConfig, distributed, load_for_training

config = TrainConfig(batch_size=2, grad_accum=1, shard="zero3", precision="fp32")
role = distributed.current("cpu", "zero3")
with role.loading(config):
    model = load_for_training(sys.argv[1], ["all-linear"], config, "cpu")
base = [p for n, p in model.named_parameters() if "lora_" not in n]
name, weight = next((n, p) for n, p in model.named_parameters() if n.endswith("layers.0.mlp.down_proj.base_layer.weight"))
import deepspeed
with deepspeed.zero.GatheredParameters([weight]):
    whole = weight.detach().clone()
expected = load_file(sys.argv[1] + "/model.safetensors")["model.layers.0.mlp.down_proj.weight"]
out = {"rank": role.rank, "enabled": is_deepspeed_zero3_enabled(),
       "partitioned": all(hasattr(p, "ds_id") for p in base),
       "held": sum(p.data.numel() for p in base), "local": sum(p.ds_tensor.numel() for p in base),
       "total": sum(p.ds_numel for p in base), "values": bool(torch.equal(whole, expected))}
role.release()
out["after_release"] = is_deepspeed_zero3_enabled()
open(f"{sys.argv[2]}/rank{role.rank}.json", "w").write(json.dumps(out))
# As the product's processes do (worker.py, launched.py): a process group left to interpreter exit can
# abort there ("terminate called without an active exception", exit -6), which one fresh clone's run did.
torch.distributed.destroy_process_group()
"""


def test_zero3_loads_each_process_s_partition_of_the_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Under ZeRO-3 the training model is built under deepspeed.zero.Init: each process holds its 1/N
    partition of every base weight from the start (no process holds the whole model, so a model larger
    than one GPU can be trained), and the partitions hold the checkpoint's values (read by rank 0)."""
    pytest.importorskip("deepspeed")
    import subprocess
    import sys

    script = tmp_path / "load.py"
    script.write_text(ZERO3_LOAD)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tiny_model_dir), str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("rank*.json"))]
    assert sorted(r["rank"] for r in results) == [0, 1]
    for r in results:
        assert r["enabled"] and r["partitioned"] and r["values"] and not r["after_release"]
        assert r["held"] == 0  # nothing but the partition: the gathered tensor is freed again
        assert r["total"] / 2 <= r["local"] <= r["total"] / 2 + 2 * 64  # its half (padding: a few elements)
