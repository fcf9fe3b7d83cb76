"""Perplexity of a model (with or without its LoRA adapter) on plain held-out text.

The forgetting check (harness.runner.control) asks how much an adapter changed the model's
language modelling on text it never trained on: base versus adapter on the same texts, mean token
negative log-likelihood -> perplexity. It goes through `Backend.score` (plain-text requests), so
it is the same figure on every backend that can score, with whatever adapter is applied to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from harness.core.types import ScoreRequest
from harness.engine.backends.base import Backend

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


def perplexity(backend: Backend, texts: Sequence[str], *, max_tokens: int = MAX_TOKENS) -> Perplexity:
    """Token-weighted mean NLL of `texts` (BOS first where the model has one, cut to `max_tokens`;
    a text of fewer than two tokens scores nothing and is left out)."""
    scores = backend.score([ScoreRequest(None, (text,), max_tokens=max_tokens) for text in texts])
    scored = [s for s in scores if s.tokens and s.tokens[0] > 0]
    return Perplexity(-sum(s.logprobs[0] for s in scored), sum(s.tokens[0] for s in scored), len(scored))
