"""Benchmark: the batched engine against a plain one-example-at-a-time `generate` loop.

Same model (the default, unless --model), same prompts, same greedy settings. Prints examples/s
and tokens/s of both and, last, `speedup: N.NNx` (engine examples/s over the plain loop's).
With `--vllm` (a CUDA machine with `pip install 'sft-harness[vllm]'`) it also decodes the same
prompts with the vllm backend and prints its throughput and how many greedy answers equal the
transformers backend's (the issue asks for at least 95%).

    .venv/bin/python bench/generate.py [--suite support-faq] [--n 32] [--max-new-tokens 48] [--vllm]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.cli import _quiet_libraries  # noqa: E402
from harness.core.suites import load_suite  # noqa: E402
from harness.core.types import GenerationConfig  # noqa: E402
from harness.engine.backends.transformers import TransformersBackend  # noqa: E402
from harness.engine.models import load_generator  # noqa: E402
from harness.engine.prompting import build_messages  # noqa: E402
from harness.runner import default_batch_size  # noqa: E402


def plain_loop(loaded, chats, max_new_tokens: int) -> tuple[float, int, list[str]]:
    """What most scripts do: template, generate, decode, one example at a time."""
    import torch

    tok, model = loaded.tokenizer, loaded.model
    tokens, texts = 0, []
    start = time.perf_counter()
    for chat in chats:
        enc = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        new = out[0, enc["input_ids"].shape[1]:]
        tokens += int(new.numel())
        texts.append(tok.decode(new, skip_special_tokens=True).strip())
    return time.perf_counter() - start, tokens, texts


def vllm_line(loaded, chats, config: GenerationConfig, reference) -> None:
    """The vllm backend on the same prompts: throughput, and agreement with the transformers backend."""
    from harness.engine.backends.vllm import VLLMBackend, check_vllm

    check_vllm(loaded.device, "--vllm")
    backend = VLLMBackend(loaded)
    backend.generate(chats[:2], config)  # engine start-up and CUDA graphs outside the timing
    start = time.perf_counter()
    gens = backend.generate(chats, config)
    seconds = time.perf_counter() - start
    same = sum(a.text == b.text for a, b in zip(reference, gens, strict=True))
    n = len(chats)
    print(f"vllm       : {n / seconds:7.2f} examples/s  {sum(g.output_tokens for g in gens) / seconds:8.1f} tokens/s  "
          f"({seconds:.1f} s); same answers as transformers: {same}/{n} ({same / n:.0%})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--suite", default="support-faq")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--batch-size", type=int, help="default: what `run` uses on this device")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--vllm", action="store_true", help="also decode with the vllm backend (CUDA)")
    args = p.parse_args()
    _quiet_libraries()

    suite = load_suite(args.suite)
    chats = [build_messages(suite, ex.input) for ex in suite.test[: args.n]]
    loaded = load_generator(args.model)
    config = GenerationConfig(max_new_tokens=args.max_new_tokens)
    batch_size = args.batch_size or default_batch_size(loaded.device)
    engine = TransformersBackend(loaded, batch_size=batch_size)
    engine.generate(chats[:2], config)  # warm-up: first calls pay one-off allocation costs

    plain_s, plain_tokens, plain_texts = plain_loop(loaded, chats, args.max_new_tokens)
    start = time.perf_counter()
    gens = engine.generate(chats, config)
    engine_s = time.perf_counter() - start
    engine_tokens = sum(g.output_tokens for g in gens)
    same = sum(a == g.text for a, g in zip(plain_texts, gens, strict=True))

    n = len(chats)
    print(f"model {loaded.name} on {loaded.device}, {n} prompts from {suite.name}, max_new_tokens {args.max_new_tokens}")
    print(f"plain loop : {n / plain_s:7.2f} examples/s  {plain_tokens / plain_s:8.1f} tokens/s  ({plain_s:.1f} s)")
    print(f"engine     : {n / engine_s:7.2f} examples/s  {engine_tokens / engine_s:8.1f} tokens/s  ({engine_s:.1f} s, batch {batch_size})")
    print(f"identical outputs: {same}/{n}")
    if args.vllm:
        vllm_line(loaded, chats, config, gens)
    print(f"speedup: {plain_s / engine_s:.2f}x")


if __name__ == "__main__":
    main()
