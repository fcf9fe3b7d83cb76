"""How long a run will take on this CPU, said before the work starts.

FLOPs from the token counts of the planned work, divided by what this machine's matmul does (a
probe of a fraction of a second, harness.engine.probe) times the share of it each kind of work
reaches (measured on the cold demo; bench/sft.py `peak:` and bench/generate.py `roofline:` say
the same for training and decoding alone):

- training: 4 FLOPs per base weight and token (forward, and the input gradient LoRA layers below
  need; the LoRA weights themselves are a rounding error), 2 per validation token, over every epoch
  and training seed;
- decoding: 2 FLOPs per weight for every prompt token (prefill) and every answer token, taken as
  long as the example's reference up to the generation cap (a finished row leaves the batch).
  `answer=choice` scores its labels instead: prompt tokens only.

Prompts are counted with the model's tokenizer: the zero-shot prompt of each example, plus the
mean train example per shot, plus k chunks (at most the passage budget) for retrieval, less the system
turn every prompt of a batch begins with (run once a batch, in prefill and training). What is in the cache is not
known before the strategies prepare, so the figure is for a cold run; a cached rerun is faster.
The rate is the probe kept for this machine; where that puts the work at a minute or more, a fresh
probe of the machine as it runs now (its speed moves: power states, throttling, shared hosts).
CPU only: on a GPU decoding is bound by memory, not FLOPs, and this model would mislead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.engine.prompting import build_messages, system_prompt, target_text

# Shares of the matmul probe reached on 2 cores, measured by the cold demo (support-faq, its four
# strategies; README "Benchmarks"): prefill and decode steps together 0.35-0.45 of the fp32 probe.
# Training runs in bf16 where the CPU multiplies it natively (precision=auto), against that probe:
# 0.28-0.36 of it on the demo here (Zen 4, avx512_bf16); in fp32 0.6 of the fp32 probe (the 2-core
# Zen 3 of issue 23: 96 tokens/s at 85 GFLOP/s).
# fp32 training through oneDNN (where it beats MKL here) against oneDNN's probe: 375 tokens/s here
# (0.54 GFLOP a token, a 399 GFLOP/s probe).
TRAIN_SHARE = {"bf16": 0.33, "fp32": 0.60, "fp32-onednn": 0.50}
# Decoding through oneDNN (harness.engine.onednn, where it beats MKL) against oneDNN's own probe: the
# cold demo here (Zen 4/5, oneDNN probe 317 GFLOP/s) decoded in 64 s against 66 s estimated at 0.40.
DECODE_SHARE = {"torch": 0.40, "onednn": 0.40}
PASSAGE_TITLE_TOKENS = 8  # "[i] title" before each passage

@dataclass(frozen=True)
class Estimate:
    train_s: float
    decode_s: float

    def line(self) -> str:
        total = self.train_s + self.decode_s
        parts = [f"training {_duration(self.train_s)}"] if self.train_s >= 1 else []
        parts.append(f"decoding {_duration(self.decode_s)}")
        return f"estimate: about {_duration(total)} on this CPU if nothing is cached ({', '.join(parts)})"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


def weight_count(model_path: str) -> int | None:
    """Weights a token multiplies with, read from the safetensors headers (no weights load): every
    tensor but the embedding, which counts once as the output head when the head is tied to it."""
    try:
        from safetensors import safe_open
    except ImportError:
        return None
    files = sorted(Path(model_path).glob("*.safetensors"))
    if not files:
        return None
    total, embed, head = 0, 0, False
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():  # noqa: SIM118  # safe_open has keys(), not iteration
                shape = st.get_slice(key).get_shape()
                n = 1
                for d in shape:
                    n *= int(d)
                total += n
                if "embed_tokens" in key or key.endswith("wte.weight"):
                    embed += n
                head = head or "lm_head" in key
    return total - embed if head else total  # a separate head is counted; the lookup is not


class _Counter:
    """Token counts of one tokenizer, each text counted once (every strategy asks for the same prompts)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.seen: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        if text not in self.seen:
            self.seen[text] = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self.seen[text]


MESSAGE_TOKENS = 5  # what a chat template adds around each message (role markers, newlines)


def _strategy_flops(s: Any, plan: Any, n: int, count: _Counter) -> tuple[float, float, float]:
    """(training, prefill, decoding) FLOPs of one strategy on a model of `n` weights."""
    p = s.params
    suite = plan.suite
    shots = int(p.get("k", 0) if s.kind == "prompt" else p.get("shots", 0) if s.kind == "rag" else 0)
    passages = 0
    if s.kind in ("rag", "sft+rag"):  # k chunks, as long as the budget lets them be
        passages = min(int(p["budget"]), int(p["k"]) * (int(p["chunk_tokens"]) + PASSAGE_TITLE_TOKENS))

    def prompt_tokens(text: str) -> int:  # the chat's messages and the generation prompt
        return sum(count(m["content"]) + MESSAGE_TOKENS for m in build_messages(suite, text)) + 3 + passages

    def answer_tokens(ex: Any) -> int:
        return count(target_text(ex)) + 1  # and its end token

    train = suite.train
    per_shot = (sum(count(ex.input) + answer_tokens(ex) for ex in train) / len(train) + 2 * MESSAGE_TOKENS
                if train and shots else 0.0)
    # The system turn every prompt begins with runs once per batch, in decoding's prefill and in
    # training (harness.engine.greedy, harness.engine.training.shared_start; one CPU process)
    shared = count(system_prompt(suite)) + MESSAGE_TOKENS

    def once_per_batch(examples: int, batch: int) -> int:
        return shared * (examples - math.ceil(examples / max(1, batch)))

    prompts = sum(prompt_tokens(ex.input) for ex in plan.examples) + len(plan.examples) * shots * per_shot
    prompts -= once_per_batch(len(plan.examples), int(getattr(plan, "batch_size", 64)))
    decode = 0.0
    if plan.answers[s.name].mode != "choice":
        # A finished row leaves the batch (harness.engine.greedy): the steps follow the answers'
        # lengths, about the references' (prompted models run longer, fine-tuned ones shorter).
        cap = suite.generation.max_new_tokens
        decode = 2.0 * n * sum(min(cap, answer_tokens(ex)) for ex in plan.examples)
    training = 0.0
    if s.kind in ("sft", "sft+rag"):
        seeds = p.get("seeds", 1)
        n_seeds = len(seeds) if isinstance(seeds, tuple) else int(seeds)
        train_tokens = sum(prompt_tokens(ex.input) + answer_tokens(ex) for ex in train)
        val_tokens = sum(prompt_tokens(ex.input) + answer_tokens(ex) for ex in suite.validation)
        if float(p.get("dropout", 0)) == 0 and int(p.get("processes", 1)) == 1:
            train_tokens -= once_per_batch(len(train), int(p["batch_size"]))
            val_tokens -= once_per_batch(len(suite.validation), int(p["batch_size"]))
        # forward and backward on the train split, a forward on the validation split, every epoch
        training = (4.0 * train_tokens + 2.0 * val_tokens) * n * int(p["epochs"]) * n_seeds
    return training, 2.0 * n * prompts, decode


@dataclass(frozen=True)
class Work:
    """FLOPs of one kind of planned work, the probe its rate comes from (dtype, kernel) and the share
    of that probe the work reaches."""
    training: bool
    flops: float
    dtype: str
    kernel: str
    share: float


Rate = Callable[[str, str], float]  # (dtype, kernel) -> GFLOP/s of this machine's matmul probe
FRESH_PROBE_ABOVE_S = 60.0  # work estimated this long gets a probe of the machine as it is now


def planned_work(plan: Any, models: Any, counters: dict[str, _Counter] | None = None) -> list[Work] | None:
    """The cold run's work on this CPU, or None where the model does not apply (a GPU, an API).
    `counters`: token counts already made (a curve's cells ask for the same prompts)."""
    from harness.engine.onednn import faster_here
    from harness.engine.training import resolve_precision

    if plan.device != "cpu":
        return None
    work: list[Work] = []
    decode_flops = 0.0
    dtype = "float32"
    counters = {} if counters is None else counters
    for s in plan.strategies:
        weights = models.of(s.name).local_weights()
        if weights is None or getattr(s, "given_outputs", None) is not None:
            continue  # an API model's time is the server's; outputs brought in take none
        n = weight_count(weights.path)
        if n is None:
            return None
        dtype = weights.dtype
        count = counters.setdefault(weights.path, _Counter(weights.tokenizer))
        training, prefill, decode = _strategy_flops(s, plan, n, count)
        decode_flops += prefill + decode
        if training:
            precision = resolve_precision(str(s.params.get("precision", "auto")), "cpu")
            if precision == "fp32" and faster_here(training=True):  # the kernel its base linears run on
                work.append(Work(True, training, "float32", "onednn", TRAIN_SHARE["fp32-onednn"]))
            else:
                work.append(Work(True, training, "bfloat16" if precision == "bf16" else "float32", "torch",
                                 TRAIN_SHARE[precision]))
    if decode_flops:
        kernel = "onednn" if dtype == "float32" and faster_here() else "torch"  # what decoding's linears run on
        work.append(Work(False, decode_flops, dtype, kernel, DECODE_SHARE[kernel]))
    return work or None


def cached_rate(dtype: str, kernel: str) -> float:
    from harness.engine.probe import machine_gflops

    return machine_gflops(dtype, kernel)


def fresh_rate(dtype: str, kernel: str) -> float:
    from harness.engine.probe import matmul_gflops

    return matmul_gflops("cpu", dtype, seconds=0.2, kernel=kernel)


def estimate_from(work: list[Work], rate: Rate) -> Estimate:
    def seconds(w: Work) -> float:
        return w.flops / (rate(w.dtype, w.kernel) * 1e9 * w.share)

    return Estimate(sum(seconds(w) for w in work if w.training), sum(seconds(w) for w in work if not w.training))


def estimate_run(plan: Any, models: Any, rate: Rate = cached_rate) -> Estimate | None:
    """The cold run's time on this CPU at the probe's `rate` (by default this machine's, measured once
    and kept), or None where the model does not apply (a GPU, an API)."""
    work = planned_work(plan, models)
    return None if work is None else estimate_from(work, rate)


def say_estimate(plans: Any, models: Any, console: Any) -> None:
    """Print the estimate line for a run's plan (or a curve's, one plan per cell); an estimate that
    cannot be made must never stop a run.

    The kept probe says what this machine did once; a laptop on battery, a throttled or shared VM (one
    2-core VM here read 111 to 237 GFLOP/s within an hour) does something else now. So long work is
    estimated again from a fresh probe (a fraction of a second against minutes of work)."""
    try:
        counters: dict[str, _Counter] = {}
        work: list[Work] = []
        for plan in plans if isinstance(plans, list) else [plans]:
            found_work = planned_work(plan, models, counters)
            if found_work is None:
                return
            work += found_work
        found = estimate_from(work, cached_rate)
        if found.train_s + found.decode_s >= FRESH_PROBE_ABOVE_S:
            found = estimate_from(work, fresh_rate)
    except Exception:  # noqa: BLE001  # a tokenizer or header oddity: the run goes on without it
        return
    console.print(found.line(), highlight=False)
