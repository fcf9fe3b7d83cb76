"""Log-likelihood of given continuations on local weights: what `answer=choice` ranks labels by and
what the forgetting check's perplexity is made of (`Backend.score` on the transformers backend).

A request is a prompt (token ids) and continuations (token ids each). With several continuations
the prompt is run once and its key/value cache is repeated for every continuation, so twelve
labels after a 200-token prompt cost one prompt and twelve short rows, not twelve prompts. With one
continuation (plain text: perplexity) requests are batched whole, right-padded, shortest together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Encoded:
    prompt: list[int]  # at least one token: the first continuation token is predicted from it
    continuations: list[list[int]]


def continuation_logprobs(model: Any, requests: Sequence[Encoded], *, pad_id: int,
                          batch_tokens: int = 8192) -> list[list[tuple[float, int]]]:
    """Per request, per continuation: (summed log-probability, tokens scored), in order."""
    out: list[list[tuple[float, int]] | None] = [None] * len(requests)
    single = [i for i, r in enumerate(requests) if len(r.continuations) == 1]
    for i, scores in zip(single, _whole(model, [requests[i] for i in single], pad_id, batch_tokens), strict=True):
        out[i] = [scores]
    for i, r in enumerate(requests):
        if len(r.continuations) != 1:
            out[i] = _shared_prompt(model, r, pad_id) if r.continuations else []
    return [o if o is not None else [] for o in out]


def _cache_name(model: Any) -> str:
    """What the model calls its key/value cache: `cache` from transformers 5.24, `past_key_values` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def _whole(model: Any, requests: Sequence[Encoded], pad_id: int, batch_tokens: int) -> list[tuple[float, int]]:
    """Prompt + its one continuation as one sequence; rows of like length batched together."""
    import torch

    seqs = [(r.prompt + r.continuations[0], len(r.prompt)) for r in requests]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]))
    results: list[tuple[float, int]] = [(0.0, 0)] * len(seqs)
    start = 0
    while start < len(order):
        width = len(seqs[order[start]][0])
        end = start + 1
        while end < len(order) and len(seqs[order[end]][0]) * (end - start + 1) <= max(batch_tokens, width):
            end += 1
        batch = [seqs[i] for i in order[start:end]]
        width = max(len(s) for s, _ in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (s, _) in enumerate(batch):  # right padding: positions stay those of the unpadded text
            ids[row, : len(s)] = torch.tensor(s)
            mask[row, : len(s)] = 1
        device = _device(model)
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1].float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
        for row, (s, n_prompt) in enumerate(batch):  # position t predicts token t + 1
            scored = logp[row, n_prompt - 1 : len(s) - 1]
            results[order[start + row]] = (float(scored.sum()), len(s) - n_prompt)
        start = end
    return results


def _shared_prompt(model: Any, request: Encoded, pad_id: int) -> list[tuple[float, int]]:
    """The prompt once, its cache repeated for every continuation (right-padded rows)."""
    import torch

    device = _device(model)
    prompt = torch.tensor([request.prompt], device=device)
    conts = request.continuations
    with torch.inference_mode():
        first = model(input_ids=prompt, use_cache=True)
        head = torch.log_softmax(first.logits[0, -1].float(), dim=-1)  # predicts each continuation's first token
        rest = max(len(c) for c in conts) - 1
        if rest <= 0:
            return [(float(head[c[0]]), 1) if c else (0.0, 0) for c in conts]
        name = _cache_name(model)
        cache = getattr(first, name)
        cache.batch_repeat_interleave(len(conts))
        ids = torch.full((len(conts), rest), pad_id, dtype=torch.long)
        mask = torch.zeros((len(conts), len(request.prompt) + rest), dtype=torch.long)
        mask[:, : len(request.prompt)] = 1
        for row, c in enumerate(conts):  # feed all but the last token; each predicts the next
            ids[row, : len(c) - 1] = torch.tensor(c[:-1], dtype=torch.long)
            mask[row, len(request.prompt) : len(request.prompt) + len(c) - 1] = 1
        positions = torch.arange(len(request.prompt), len(request.prompt) + rest).expand(len(conts), -1)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                       use_cache=True, **{name: cache}).logits.float()
        logp = torch.log_softmax(logits, dim=-1)
    out = []
    for row, c in enumerate(conts):
        if not c:
            out.append((0.0, 0))
            continue
        total = float(head[c[0]]) + sum(float(logp[row, t, c[t + 1]]) for t in range(len(c) - 1))
        out.append((total, len(c)))
    return out
