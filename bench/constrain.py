"""Benchmark: what answer=constrained costs per generated token on the transformers backend.

The real default model decodes the same left-padded batch (test prompts of banking-intents under
its label set, of snips-slots under a JSON object of its fields) at batch 1 and 16, greedy, with
and without the constraint. The runs alternate and repeat and the medians are kept, so a busy
machine slows both alike. A token costs the free decoding's time per step (a fixed number of steps
after the prefill) plus the constraint's own time per step (measured around the processor, the only
extra work); the wall-clock ratio of the same batch over the same steps is printed beside it. Ends
with `overhead labels: N.NNx` and `overhead json: N.NNx`, the larger of the two batch sizes.

    .venv/bin/python bench/constrain.py [--model smollm2-135m-instruct] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.cli import _quiet_libraries  # noqa: E402
from harness.core.suites import load_suite  # noqa: E402
from harness.engine.constrain import Constraint, compile_constraint, logits_processor  # noqa: E402
from harness.engine.models import load_generator  # noqa: E402
from harness.engine.prompting import build_messages, render_chat  # noqa: E402

FREE_STEPS = 16  # the free decoding's fixed length for its time per step


class Timed:
    """The constraint's processor, with the time spent in it."""

    def __init__(self, inner: Any):
        self.inner, self.seconds, self.calls = inner, 0.0, 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        start = time.perf_counter()
        out = self.inner(input_ids, scores)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def left_padded(tok: Any, prompts: list[str]) -> tuple[Any, Any]:
    import torch

    enc = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    width = max(len(e) for e in enc)
    ids = torch.full((len(enc), width), tok.pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(enc), width), dtype=torch.long)
    for row, e in enumerate(enc):
        ids[row, width - len(e):] = torch.tensor(e)
        attention[row, width - len(e):] = 1
    return ids, attention


def decode(model: Any, batch: tuple[Any, Any], ends: list[int], steps: int, processors: Any = None,
           exact: bool = False) -> tuple[Any, float]:
    """Greedy decoding; `exact` runs all `steps` (the end token suppressed until then)."""
    import torch
    from transformers import LogitsProcessorList

    ids, attention = batch
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=attention, max_new_tokens=steps, do_sample=False,
                             num_beams=1, temperature=None, top_p=None, top_k=None, pad_token_id=ends[0],
                             eos_token_id=ends, logits_processor=LogitsProcessorList(processors or []),
                             **({"min_new_tokens": steps} if exact else {}))
    return out[:, ids.shape[1]:], time.perf_counter() - start


def valid(constraint: Constraint, text: str) -> bool:
    if constraint.kind == "choice":
        return text.strip() in constraint.labels
    try:
        answer = json.loads(text)
    except ValueError:
        return False
    return isinstance(answer, dict) and set(answer) <= set(constraint.fields) and all(
        isinstance(v, str) for v in answer.values())


def texts(tok: Any, new: Any, ends: list[int]) -> list[str]:
    out = []
    for row in new.tolist():
        cut = next((i for i, t in enumerate(row) if t in ends), len(row))
        out.append(tok.decode(row[:cut], skip_special_tokens=True))
    return out


def measure(loaded: Any, constraint: Constraint, prompts: list[str], max_new: int, batch_size: int,
            reps: int) -> dict[str, float]:
    """Medians over `reps` rounds of: constrained, free over the same steps, free fixed, prefill."""
    tok, model, ends = loaded.tokenizer, loaded.model, loaded.end_token_ids()
    groups = [prompts[i:i + 1] for i in range(2)] if batch_size == 1 else [prompts[:16]]
    free_ms, proc_ms, wall, steps, ok, n = [], [], [], [], 0, 0
    for _ in range(reps):
        for group in groups:
            batch = left_padded(tok, group)
            timed = Timed(logits_processor(constraint, tok, ends, len(group), max_new_tokens=max_new)[0])
            new, t_con = decode(model, batch, ends, max_new, [timed])
            _, t_same = decode(model, batch, ends, new.shape[1], exact=True)
            _, t_fixed = decode(model, batch, ends, FREE_STEPS, exact=True)
            _, t_one = decode(model, batch, ends, 1)
            free_ms.append((t_fixed - t_one) / (FREE_STEPS - 1) * 1e3)
            proc_ms.append(timed.seconds / timed.calls * 1e3)
            wall.append(t_con / t_same)
            steps.append(new.shape[1])
            ok += sum(valid(constraint, t) for t in texts(tok, new, ends))
            n += len(group)
    free, proc = statistics.median(free_ms), statistics.median(proc_ms)
    return {"free": free, "proc": proc, "ratio": (free + proc) / free, "wall": statistics.median(wall),
            "steps": statistics.median(steps), "valid": ok, "n": n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    _quiet_libraries()

    loaded = load_generator(args.model, device="cpu")
    tok, ends = loaded.tokenizer, loaded.end_token_ids()
    print(f"model {loaded.name} on cpu ({loaded.info()['dtype']}), end tokens {ends}")
    overheads = {}
    for kind, name in (("labels", "banking-intents"), ("json", "snips-slots")):
        suite = load_suite(name)
        constraint = Constraint.choice(suite.labels) if kind == "labels" else Constraint.json_object(suite.fields)
        start = time.perf_counter()
        compile_constraint(constraint, tok, ends)  # the first one also wraps the tokenizer (once per run)
        print(f"{kind:6} {name}: grammar ready in {time.perf_counter() - start:.3f} s")
        prompts = [render_chat(tok, build_messages(suite, ex.input)) for ex in suite.test[:16]]
        decode(loaded.model, left_padded(tok, prompts[:2]), ends, 2)  # warm-up
        worst = 0.0
        for batch_size in (1, 16):
            m = measure(loaded, constraint, prompts, suite.generation.max_new_tokens, batch_size, args.reps)
            worst = max(worst, m["ratio"])
            print(f"  batch {batch_size:2}: free {m['free']:7.2f} ms/token, constraint +{m['proc']:.3f} ms/token "
                  f"= {m['free'] + m['proc']:7.2f} ms/token ({m['ratio']:.3f}x); same batch wall clock "
                  f"{m['wall']:.3f}x over {m['steps']:.0f} steps; valid {m['valid']}/{m['n']}")
        overheads[kind] = worst
    for kind, ratio in overheads.items():
        print(f"overhead {kind}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
