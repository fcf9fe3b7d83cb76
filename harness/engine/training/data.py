"""Training data: (chat, answer) pairs tokenised exactly as decoding sees them, and batched by length (or packed)."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.core.errors import HarnessError
from harness.core.types import Chat
from harness.engine.common_start import common_start
from harness.engine.prompting import answer_ids, render_chat
from harness.engine.training.config import IGNORE

log = logging.getLogger(__name__)


# -- tokenisation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    """One training sequence: the first `n_prompt` tokens are the prompt (no loss on them)."""

    input_ids: tuple[int, ...]
    n_prompt: int

    @property
    def labels(self) -> list[int]:
        return [IGNORE] * self.n_prompt + list(self.input_ids[self.n_prompt :])

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_pair(tokenizer: Any, chat: Chat, answer: str, end_ids: Sequence[int]) -> Encoded:
    """Tokenise (prompt, answer) the way decoding will see it.

    The prompt and the completion are tokenised separately: the prompt tokens are then exactly
    the engine's (which tokenises the rendered prompt alone), and the boundary is exact even
    where a tokenizer would merge across it. The completion is cut after its first end token
    (trailing newlines after `<|im_end|>` are never generated), and gets one if it has none.
    """
    prompt_text = render_chat(tokenizer, chat)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    comp_ids = answer_ids(tokenizer, chat, answer, end_ids, prompt_text)
    if not prompt_ids:  # a first token with no loss keeps every target predictable
        raise HarnessError("empty prompt after rendering: cannot train on it")
    return Encoded(tuple(prompt_ids) + tuple(comp_ids), len(prompt_ids))


def encode_all(
    tokenizer: Any, pairs: Sequence[tuple[Chat, str]], end_ids: Sequence[int], max_len: int
) -> tuple[list[Encoded], int]:
    """Encode every pair; drop (and count) the ones longer than max_len."""
    kept: list[Encoded] = []
    skipped = 0
    for chat, answer in pairs:
        # A token spans far fewer than 32 characters: a text that long cannot fit, so it is
        # skipped without being tokenised (a 50 MB input line must not stall training).
        if sum(len(m["content"]) for m in chat) + len(answer) > max_len * 32:
            skipped += 1
            continue
        enc = encode_pair(tokenizer, chat, answer, end_ids)
        if len(enc) > max_len:
            skipped += 1
            continue
        kept.append(enc)
    return kept, skipped


def sequences_sha256(seqs: Sequence[Encoded]) -> str:
    """Hash of the exact token sequences and loss boundaries (data, template and tokenizer)."""

    h = hashlib.sha256()
    for s in seqs:
        h.update(json.dumps([s.n_prompt, list(s.input_ids)]).encode())
    return h.hexdigest()


# -- batching ----------------------------------------------------------------------------------


@dataclass
class Batch:
    tensors: dict[str, Any]  # model inputs, with logits_to_keep the boolean target mask
    targets: Any  # next-token ids at the masked positions, flattened in row-major order
    tokens: int  # non-padding tokens
    slots: int  # tokens fed including padding
    # Tokens every row begins with before any loss position (a chat template's system turn, the
    # suite's instruction): a forward may run them once for the batch (loop.batch_loss_sum).
    shared: int = 0


def shared_start(seqs: Sequence[Encoded]) -> int:
    """How many tokens all of `seqs` begin with, up to the first position that predicts an answer
    token (so every logit the loss reads comes after them); 0 for one row or a short common start."""
    cap = min((s.n_prompt for s in seqs), default=0) - 1
    return common_start([s.input_ids for s in seqs], cap)


def plan_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random, packing: bool
) -> list[list[int]]:
    """Indices per micro-batch. Packing: random order. Padding: sorted by length, then the
    batches shuffled, so each batch pads little and the order still varies per epoch."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not packing:
        order.sort(key=lambda i: lengths[i])  # stable: ties keep the shuffled order
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if not packing:
        rng.shuffle(batches)
    return batches


def collate(seqs: Sequence[Encoded], packing: bool, pad_id: int) -> Batch:
    import torch

    if packing:
        ids: list[int] = []
        pos: list[int] = []
        keep: list[bool] = []
        targets: list[int] = []
        for s in seqs:
            ids.extend(s.input_ids)
            pos.extend(range(len(s)))
            for t in range(len(s)):  # position t predicts token t+1 of the same sequence
                hit = s.n_prompt - 1 <= t < len(s) - 1
                keep.append(hit)
                if hit:
                    targets.append(s.input_ids[t + 1])
        tensors = {
            "input_ids": torch.tensor([ids]),
            "position_ids": torch.tensor([pos]),
            "logits_to_keep": torch.tensor([keep]),
        }
        return Batch(tensors, torch.tensor(targets), len(ids), len(ids))
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    keep_t = torch.zeros((len(seqs), width), dtype=torch.bool)
    targets_t: list[int] = []
    for row, s in enumerate(seqs):
        n = len(s)
        input_ids[row, :n] = torch.tensor(s.input_ids)
        attention[row, :n] = 1
        keep_t[row, s.n_prompt - 1 : n - 1] = True
        targets_t.extend(s.input_ids[s.n_prompt :])
    tensors = {"input_ids": input_ids, "attention_mask": attention, "logits_to_keep": keep_t}
    return Batch(tensors, torch.tensor(targets_t), sum(len(s) for s in seqs), len(seqs) * width, shared_start(seqs))
