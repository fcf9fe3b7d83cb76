"""Perplexity of a local model (with or without its LoRA adapter) on plain held-out text.

The forgetting check (harness.runner.control) asks how much an adapter changed the model's
language modelling on text it never trained on: base versus adapter on the same texts, mean token
negative log-likelihood -> perplexity. It needs no labels and costs one forward pass per batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_TEXTS = 64  # held-out texts per control suite
MAX_TOKENS = 256  # per text: perplexity of a prefix is as telling as of a whole passage, and cheaper


@dataclass(frozen=True)
class Perplexity:
    nll_sum: float  # summed negative log-likelihood (nats) over the scored tokens
    tokens: int  # tokens scored (each predicted from the ones before it)
    texts: int

    @property
    def mean_nll(self) -> float:
        return self.nll_sum / self.tokens if self.tokens else math.nan

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean_nll) if self.tokens else math.nan


def token_ids(tokenizer: Any, texts: Sequence[str], max_tokens: int = MAX_TOKENS) -> list[list[int]]:
    """Each text's ids, BOS first where the tokenizer has one (so its first word is scored too),
    cut to `max_tokens`; texts of fewer than two tokens score nothing and are left out."""
    bos = getattr(tokenizer, "bos_token_id", None)
    out = []
    for text in texts:
        ids = ([bos] if isinstance(bos, int) else []) + list(tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(ids) >= 2:
            out.append(ids[:max_tokens])
    return out


def perplexity(model: Any, tokenizer: Any, texts: Sequence[str], *, max_tokens: int = MAX_TOKENS,
               batch_size: int = 8) -> Perplexity:
    """Token-weighted mean NLL of `texts` under `model` (whatever adapter is applied to it now)."""
    import torch

    seqs = token_ids(tokenizer, texts, max_tokens)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    nll, tokens = 0.0, 0
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # like lengths together: little padding
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = [seqs[i] for i in order[start : start + batch_size]]
            width = max(len(s) for s in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, s in enumerate(batch):  # right padding: positions stay those of the unpadded text
                ids[row, : len(s)] = torch.tensor(s)
                mask[row, : len(s)] = 1
            ids, mask = ids.to(device), mask.to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            targets, keep = ids[:, 1:], mask[:, 1:].bool()
            losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
            nll += float(losses[keep].sum())
            tokens += int(keep.sum())
    return Perplexity(nll, tokens, len(seqs))
