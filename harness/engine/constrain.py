"""Constrained decoding on the transformers backend (answer=constrained): the answer is exactly one
of the suite's labels, or a JSON object of its fields, so it always parses.

The grammar engine is llguidance, chosen by measuring four (issue 20; bench/constrain.py): one 3 MB
wheel with no dependencies (xgrammar pulls triton, 286 MB), a grammar ready in milliseconds (once
a 0.5 s wrap of the tokenizer) where outlines-core took 13-16 s for snips-slots' 18 optional
fields, and about 0.1 ms per row and token (1.01x the free decoding's time per token on the
default model) where lm-format-enforcer's Python took 74 ms a step at batch 16 (and its
transformers hook no longer imports).

Labels are matched as token sequences (each label's own tokens, with or without a leading space),
not as text: an answer then takes a known number of tokens, never a spelling the model was not
trained to produce. A JSON answer is closed in time when `max_new_tokens` runs out (see
`_Masker._budget`): a degenerate model gets a short object, never a cut one.
"""

from __future__ import annotations

import functools
import json
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.core.errors import HarnessError, MissingPackageError
from harness.core.types import Constraint

__all__ = ["Compiled", "Constraint", "compile_constraint", "logits_processor"]

# JSON options: compact or single-spaced (never a run of whitespace or newlines between tokens),
# and values on one line: of the escapes only \" \\ \t (no \n, \r, \uXXXX).
_JSON_OPTIONS = {"whitespace_pattern": r"[ ]?", "json_allowed_escapes": '"\\t'}


# -- the compiled grammar, cached per tokenizer -------------------------------------------------
@dataclass(frozen=True)
class Compiled:
    """A constraint's grammar for one tokenizer: the template matcher each batch row copies, and
    what the budget needs (the most tokens an answer takes; for JSON, the ways to close it)."""

    kind: str
    matcher: Any  # llguidance.LLMatcher, never advanced itself
    vocab_size: int
    end_ids: tuple[int, ...]
    longest: int  # choice: the longest answer in tokens, end token included; json: the reserve
    minimum: int  # the fewest new tokens that always leave room for an answer (end token included)
    closers: tuple[tuple[int, ...], ...] = ()  # json: shortest first


_CACHE: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _llguidance() -> Any:
    try:
        import llguidance
        import llguidance.hf
    except ImportError:
        raise MissingPackageError("the llguidance package (for answer=constrained)",
                                  "pip install 'llguidance>=1.9'") from None
    return llguidance


def compile_constraint(constraint: Constraint, tokenizer: Any, end_token_ids: Sequence[int]) -> Compiled:
    """The grammar of `constraint` for `tokenizer`, built once per constraint and tokenizer (a run
    decodes many batches with it) and cached for as long as the tokenizer lives."""
    if not end_token_ids:
        raise HarnessError("answer=constrained needs the model's end-of-turn token ids")
    llg = _llguidance()
    ends = tuple(int(i) for i in end_token_ids)
    key = (json.dumps(constraint.fingerprint(), sort_keys=True), ends)
    with _LOCK:
        per_tokenizer = _CACHE.setdefault(tokenizer, {})
        if key in per_tokenizer:
            return per_tokenizer[key]  # type: ignore[no-any-return]
        if ("tokenizer", ends) not in per_tokenizer:
            per_tokenizer["tokenizer", ends] = _lltokenizer(llg, tokenizer, ends)
        lltok = per_tokenizer["tokenizer", ends]
        compiled = _build(llg, constraint, tokenizer, lltok, ends)
        per_tokenizer[key] = compiled
        return compiled


def _lltokenizer(llg: Any, tokenizer: Any, ends: tuple[int, ...]) -> Any:
    try:
        return llg.hf.from_tokenizer(tokenizer, n_vocab=len(tokenizer), eos_token=list(ends))
    except ValueError as e:  # llguidance reads fast (Rust) tokenizers only
        raise HarnessError(f"answer=constrained needs a fast tokenizer ({type(tokenizer).__name__}: {e})") from None


def _ids(tokenizer: Any, text: str) -> tuple[int, ...]:
    return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])


def _build(llg: Any, constraint: Constraint, tokenizer: Any, lltok: Any, ends: tuple[int, ...]) -> Compiled:
    if constraint.kind == "choice":
        # Each label as its own tokens, bare (a chat reply) or after a space (a plain prompt's
        # "Answer:"): the text, stripped, is the label, and the answer has a known length.
        sequences = sorted({_ids(tokenizer, p + label) for label in constraint.labels for p in ("", " ")})
        grammar = "start: " + " | ".join(" ".join(f"<[{i}]>" for i in seq) for seq in sequences if seq)
        longest = minimum = max(len(s) for s in sequences) + 1
        closers: tuple[tuple[int, ...], ...] = ()
    else:
        grammar = llg.LLMatcher.grammar_from_json_schema(constraint.json_schema(), overrides=_JSON_OPTIONS)
        closers = _json_closers(tokenizer, constraint.fields)
        longest, minimum = max(len(c) for c in closers) + 1, len(_ids(tokenizer, "{}")) + 1
    matcher = llg.LLMatcher(lltok, grammar, log_level=0)
    if matcher.is_error():
        raise HarnessError(f"answer=constrained: the grammar for this {constraint.kind} constraint does not "
                           f"build: {matcher.get_error()}")
    return Compiled(constraint.kind, matcher, int(lltok.vocab_size), ends, longest, minimum, closers)


def _json_closers(tokenizer: Any, fields: Sequence[str]) -> tuple[tuple[int, ...], ...]:
    """Every way to finish a JSON object from any point of it, as tokens, shortest first: close the
    value or the object, or end a key (or its start) with an empty value. One of them always fits."""
    texts = ["", "}", '"}', '\\"}', '""}', ':""}', '":""}', '"":""}', "{}"]
    for field in fields:
        name = json.dumps(field, ensure_ascii=False)[1:-1]
        texts += [name[k:] + '":""}' for k in range(len(name) + 1)] + [f'"{name}":""}}']
    return tuple(sorted({_ids(tokenizer, t) for t in texts}, key=lambda ids: (len(ids), ids)))


# -- the logits processor ------------------------------------------------------------------------
class _Masker:
    """Each row's parse state, advanced by the token it got; its logits masked to what may follow.
    One per generate() call. Rows that ended (an end token) are left alone: generate pads them."""

    def __init__(self, compiled: Compiled, batch_size: int, max_new_tokens: int | None):
        import torch

        self.compiled, self.batch_size, self.max_new_tokens = compiled, batch_size, max_new_tokens
        self.rows: list[Any] = []
        self.done = [False] * batch_size
        self.plans: list[list[int] | None] = [None] * batch_size  # forced tokens once the budget is short
        self.steps = 0
        self.bitmask = torch.zeros((batch_size, (compiled.vocab_size + 31) // 32), dtype=torch.int32)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[0] != self.batch_size:
            raise HarnessError(f"answer=constrained: a batch of {input_ids.shape[0]} rows reached a processor "
                               f"built for {self.batch_size}")
        if not self.rows:
            self.rows = [self.compiled.matcher.deep_copy() for _ in range(self.batch_size)]
        else:
            self._advance(input_ids[:, -1].tolist())
        for i in range(self.batch_size):
            self._fill(i)
        self.steps += 1
        _apply_bitmask(scores, self.bitmask)
        return scores

    def _advance(self, tokens: list[int]) -> None:
        for i, token in enumerate(tokens):
            if self.done[i]:
                continue
            if token in self.compiled.end_ids:
                self.done[i] = True
                continue
            plan = self.plans[i]
            if plan:
                plan.pop(0)
            if not self.rows[i].consume_token(token):
                raise HarnessError(f"answer=constrained: row {i} got token {token}, which its grammar does not "
                                   f"allow ({self.rows[i].get_error() or 'another logits processor changed it'})")

    def _fill(self, i: int) -> None:
        row = self.bitmask[i]
        if self.done[i]:
            row.fill_(-1)
            return
        plan = self.plans[i] if self.plans[i] is not None else self._budget(i)
        if plan is None:
            self.rows[i].unsafe_compute_mask_ptr(row.data_ptr(), row.numel() * 4)
            return
        row.zero_()
        for token in plan[:1] or self.compiled.end_ids:
            row[token // 32] |= _bit(token % 32)

    def _budget(self, i: int) -> list[int] | None:
        """A JSON answer near max_new_tokens: the shortest way to close it from here, forced from now
        on (the reserve covers the longest closer, so it always fits). None while there is room."""
        if self.compiled.kind != "json" or self.max_new_tokens is None:
            return None
        if self.max_new_tokens - self.steps > self.compiled.longest:
            return None
        matcher = self.rows[i]
        for closer in self.compiled.closers:
            if matcher.validate_tokens(list(closer)) == len(closer):
                trial = matcher.deep_copy()
                if trial.consume_tokens(list(closer)) and trial.is_accepting():
                    self.plans[i] = list(closer)
                    return self.plans[i]
        return None  # not expected: the closers cover every state of the grammar


def _bit(k: int) -> int:
    return -(1 << 31) if k == 31 else 1 << k  # bit 31 of an int32 is its sign


@functools.cache
def _shifts(device: Any) -> Any:
    import torch

    return torch.arange(32, dtype=torch.int32, device=device)


def _apply_bitmask(scores: Any, bitmask: Any) -> None:
    """-inf where the bitmask (32 tokens per int32) has a 0; tokens past its end are never allowed.
    On the CPU numpy unpacks the bits in one C loop (several times faster than the torch ops)."""
    import torch

    vocab = scores.shape[1]
    if scores.device.type == "cpu" and scores.dtype in (torch.float32, torch.float16) and scores.is_contiguous():
        import numpy as np

        words = bitmask.numpy().view(np.uint8)
        n = min(vocab, words.shape[1] * 8)
        blocked = np.unpackbits(words, axis=1, count=n, bitorder="little") == 0
        view = scores.numpy()
        if n == vocab:
            np.putmask(view, blocked, -np.inf)
        else:
            view[:, :n][blocked] = -np.inf
            view[:, n:] = -np.inf
        return
    mask = bitmask.to(scores.device, non_blocking=True)
    bits = ((mask.unsqueeze(-1) >> _shifts(scores.device)) & 1).view(mask.shape[0], -1)
    n = min(vocab, bits.shape[1])
    scores[:, n:] = float("-inf")
    scores[:, :n].masked_fill_(bits[:, :n] == 0, float("-inf"))


@functools.cache
def _processor_class() -> type:
    from transformers import LogitsProcessor

    return type("ConstrainedLogitsProcessor", (_Masker, LogitsProcessor), {"__doc__": _Masker.__doc__})


def logits_processor(constraint: Constraint, tokenizer: Any, end_token_ids: Sequence[int], batch_size: int,
                     *, max_new_tokens: int | None = None) -> Any:
    """A `LogitsProcessorList` for one `model.generate` call on a (left-padded) batch of
    `batch_size` prompts: each row can only produce an answer the constraint allows, then one of
    `end_token_ids`. Pass the call's `max_new_tokens` so a JSON answer is closed before it runs
    out (a choice is refused if its longest label cannot fit). The grammar is compiled once."""
    from transformers import LogitsProcessorList

    compiled = compile_constraint(constraint, tokenizer, end_token_ids)
    if batch_size < 1:
        raise HarnessError(f"answer=constrained: batch_size must be at least 1, not {batch_size}")
    if max_new_tokens is not None and max_new_tokens < compiled.minimum:
        what = "the longest label takes" if compiled.kind == "choice" else "the shortest JSON object takes"
        raise HarnessError(f"answer=constrained: {what} {compiled.minimum} tokens with the end token, more than "
                           f"max_new_tokens={max_new_tokens} (raise [generation] max_new_tokens)")
    return LogitsProcessorList([_processor_class()(compiled, batch_size, max_new_tokens)])
