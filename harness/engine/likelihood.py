"""Log-likelihood of given continuations on local weights: what `answer=choice` ranks labels by and
what the forgetting check's perplexity is made of (`Backend.score` on the transformers backend).

A request is a prompt (token ids) and continuations (token ids each). With several continuations
the prompt is run once and its key/value cache is repeated for every continuation, so twelve
labels after a 200-token prompt cost one prompt and twelve short rows, not twelve prompts; and
prompts are run together (left-padded, like lengths batched), since on a CPU one prompt at a time
leaves the matrix units half idle. With one continuation (plain text: perplexity) requests are
batched whole, right-padded, shortest together.
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
    shared = [i for i, r in enumerate(requests) if len(r.continuations) > 1]
    for group in _prompt_batches(requests, shared, batch_tokens):
        for i, per_continuation in zip(group, _shared_prompts(model, [requests[i] for i in group], pad_id), strict=True):
            out[i] = per_continuation
    return [o if o is not None else [] for o in out]


def _prompt_batches(requests: Sequence[Encoded], indices: list[int], batch_tokens: int) -> list[list[int]]:
    """Requests with the same number of continuations and like prompt lengths, at most about
    `batch_tokens` prompt tokens (and continuation rows of logits) a batch."""
    order = sorted(indices, key=lambda i: (len(requests[i].continuations), len(requests[i].prompt)))
    groups: list[list[int]] = []
    for i in order:
        r = requests[i]
        if groups:
            g = groups[-1]
            head = requests[g[0]]
            rows = (len(g) + 1) * len(r.continuations)
            if (len(head.continuations) == len(r.continuations)
                    and (len(g) + 1) * len(r.prompt) <= max(batch_tokens, len(r.prompt)) and rows <= 256):
                g.append(i)
                continue
        groups.append([i])
    return groups


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


def _shared_prompts(model: Any, requests: Sequence[Encoded], pad_id: int) -> list[list[tuple[float, int]]]:
    """Prompts left-padded and run once, each one's cache repeated for its continuations (as many
    for every request of the batch), which are fed right-padded after it; positions are each
    row's own, so padding changes no score."""
    import torch

    device = _device(model)
    k = len(requests[0].continuations)
    width = max(len(r.prompt) for r in requests)
    ids = torch.full((len(requests), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(requests), width), dtype=torch.long)
    for row, r in enumerate(requests):  # left padding: every prompt ends where its continuations start
        ids[row, width - len(r.prompt):] = torch.tensor(r.prompt)
        mask[row, width - len(r.prompt):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    conts = [c for r in requests for c in r.continuations]
    rest = max(len(c) for c in conts) - 1
    with torch.inference_mode():
        first = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                      use_cache=True, logits_to_keep=1)
        head = torch.log_softmax(first.logits[:, -1].float(), dim=-1)  # predicts each continuation's first token
        firsts = [float(head[row, c[0]]) if c else 0.0 for row, r in enumerate(requests) for c in r.continuations]
        if rest <= 0:
            return _per_request(requests, [(f, len(c)) for f, c in zip(firsts, conts, strict=True)])
        from harness.engine.kv_cache import cache_keyword

        name = cache_keyword(model)
        cache = getattr(first, name)
        cache.batch_repeat_interleave(k)
        cont_ids = torch.full((len(conts), rest), pad_id, dtype=torch.long)
        cont_mask = torch.zeros((len(conts), rest), dtype=torch.long)
        targets = torch.zeros((len(conts), rest), dtype=torch.long)
        for row, c in enumerate(conts):  # feed all but the last token; each predicts the next
            cont_ids[row, : len(c) - 1] = torch.tensor(c[:-1], dtype=torch.long)
            cont_mask[row, : len(c) - 1] = 1
            targets[row, : len(c) - 1] = torch.tensor(c[1:], dtype=torch.long)
        lengths = torch.tensor([len(r.prompt) for r in requests]).repeat_interleave(k)
        cont_pos = lengths.unsqueeze(1) + torch.arange(rest).unsqueeze(0)
        full_mask = torch.cat([mask.repeat_interleave(k, dim=0), cont_mask], dim=1)
        logits = model(input_ids=cont_ids.to(device), attention_mask=full_mask.to(device),
                       position_ids=cont_pos.to(device), use_cache=True, **{name: cache}).logits.float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.to(device).unsqueeze(-1)).squeeze(-1)
        totals = (logp * cont_mask.to(device)).sum(dim=1).tolist()
    return _per_request(requests, [(f + t, len(c)) if c else (0.0, 0)
                                   for f, t, c in zip(firsts, totals, conts, strict=True)])


def _per_request(requests: Sequence[Encoded], flat: list[tuple[float, int]]) -> list[list[tuple[float, int]]]:
    out, at = [], 0
    for r in requests:
        out.append(flat[at : at + len(r.continuations)])
        at += len(r.continuations)
    return out
