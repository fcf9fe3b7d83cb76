"""One adapter trained five ways on the CPU: one process, and 2 processes under DDP, FSDP2, ZeRO-2 and
ZeRO-3 (the 13 examples and settings of tests/test_distributed.py, on its tiny random Llama). Prints each
run's curves and the largest gap of its adapter to the one-process adapter (README, "Scaling out").

    .venv/bin/python scripts/compare_sharded.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.engine import training
    from harness.engine.models import load_tokenizer, materialize, resolve
    from harness.engine.training.launch import launch_training
    from harness.engine.training.loop import train_lora
    from tests.test_distributed import CONFIG, pairs

    out = Path(tempfile.mkdtemp(prefix="compare-sharded-"))
    tok = load_tokenizer(materialize(resolve("smollm2-135m-instruct")))
    torch.manual_seed(0)  # the tiny model of tests/conftest.py
    LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, initializer_range=0.2, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, tie_word_embeddings=True,
    )).save_pretrained(out / "tiny")
    tok.save_pretrained(out / "tiny")
    end = training.end_token_ids(tok)
    train, _ = training.encode_all(tok, pairs(13), end, CONFIG.max_len)
    val, _ = training.encode_all(tok, pairs(5), end, CONFIG.max_len)
    two = replace(CONFIG, batch_size=2, processes=2)
    runs = {"one": CONFIG, "ddp": two, "fsdp": replace(two, shard="fsdp"), "zero2": replace(two, shard="zero2"),
            "zero3": replace(two, shard="zero3")}
    reference = None
    for name, cfg in runs.items():
        started = time.perf_counter()
        trainer = train_lora if cfg.processes == 1 else launch_training
        r = trainer(str(out / "tiny"), tok, train, out / name, cfg, validation=val)
        wall = time.perf_counter() - started
        w = load_file(str(out / name / "adapter_model.safetensors"))
        reference = reference or w
        gap = torch.cat([(w[k] - reference[k]).abs().flatten() for k in reference])
        print(f"{name:>5}: processes={r.processes} shard={r.shard} global_batch={r.global_batch} "
              f"loss={[v for _, v in r.loss_curve]} val={[v for _, v in r.val_loss]} max|dW|={float(gap.max()):.1e} "
              f"share|dW|>1e-5={float((gap > 1e-5).float().mean()):.4f} wall={wall:.1f}s", flush=True)


if __name__ == "__main__":
    main()
