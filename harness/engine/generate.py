"""The one decoding path every strategy goes through.

Greedy decoding, chat template, left padding, prompts sorted by length so a batch wastes little
on padding, stop strings, and per-example cost figures. One engine for all strategies is what
makes the comparison fair: only the prompt (and, for `sft`, the adapter) differs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.types import Chat, Generation, GenerationConfig
from harness.engine.adapter_checks import check_logits_move
from harness.engine.models import LoadedModel
from harness.engine.prompting import PLAIN_STOPS, has_chat_template, render_chat


@dataclass(frozen=True)
class EncodedPrompt:
    index: int  # position in the caller's list
    ids: list[int]


def _with_user(chat: Chat, text: str) -> Chat:
    return [*chat[:-1], {**chat[-1], "content": text}]


def truncate_at_stop(text: str, stops: Sequence[str]) -> str:
    cut = min((i for s in stops if s and (i := text.find(s)) >= 0), default=-1)
    return text[:cut] if cut >= 0 else text


def collect(
    groups: Sequence[list[EncodedPrompt]],
    decode: Callable[[list[EncodedPrompt]], list[Generation]],
    n: int,
    on_batch: Callable[[list[int], list[Generation]], None] | None,
) -> list[Generation]:
    """Decode group after group, reporting each as it is done; the generations in the caller's order."""
    results: list[Generation | None] = [None] * n
    for group in groups:
        gens = decode(group)
        for e, g in zip(group, gens, strict=True):
            results[e.index] = g
        if on_batch:
            on_batch([e.index for e in group], gens)
    return [r for r in results if r is not None]


class Engine:
    """Batched greedy generation on a loaded model, with an optional LoRA adapter on top."""

    def __init__(self, loaded: LoadedModel, *, batch_size: int = 16, max_batch_tokens: int = 8192):
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.batch_size = batch_size
        # Long prompts (rag, few-shot) would make a 16-wide batch huge; cap the padded tokens too.
        self.max_batch_tokens = max_batch_tokens
        self._stop_ids = loaded.end_token_ids()
        self._with_adapter: Any = None  # the PEFT-wrapped model while an adapter is applied
        self._context: int | None | bool = False  # False: not looked up yet
        self.truncated = 0  # prompts cut to fit the context, over this engine's life

    @property
    def model(self) -> Any:
        """The model decoding now: the base weights (loaded on first use), or base + adapter."""
        return self._with_adapter if self._with_adapter is not None else self.loaded.model

    # -- prompts -------------------------------------------------------------------------------
    def render(self, chat: Chat) -> str:
        return render_chat(self.tokenizer, chat)

    def encode(self, chat: Chat) -> list[int]:
        return self.tokenizer(self.render(chat), add_special_tokens=False)["input_ids"]

    def context_tokens(self) -> int | None:
        """The model's context length in tokens (None when neither the model nor the tokenizer says)."""
        if self._context is False:
            n = getattr(self.loaded.config, "max_position_embeddings", None)
            if not (isinstance(n, int) and n > 0):
                n = getattr(self.tokenizer, "model_max_length", None)
                n = n if isinstance(n, int) and 0 < n < 10**7 else None  # transformers' "no limit" is ~1e30
            self._context = n
        return self._context  # type: ignore[return-value]

    def encode_fitting(self, chat: Chat, max_new_tokens: int) -> tuple[list[int], bool]:
        """Token ids of the prompt, cut to leave room for max_new_tokens in the model's context.

        What gives way is the start of the last user message: passages first, then the start
        of the question; the instruction, the shots and the question's end stay. A prompt whose
        fixed parts alone do not fit is refused in one line. Returns (ids, truncated).
        """
        context = self.context_tokens()
        if context is None:
            return self.encode(chat), False
        limit = context - max_new_tokens
        if limit < 1:
            raise HarnessError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the "
                               f"model's context of {context} tokens")
        user = chat[-1]["content"]
        # A token spans far fewer than 32 characters: cut a huge text before tokenising it at all
        # (a 50 MB input must not be tokenised, let alone allocated as a batch).
        if len(user) > limit * 32:
            user = user[-limit * 32 :]
        ids = self.encode(_with_user(chat, user))
        if len(ids) <= limit:
            return ids, len(user) < len(chat[-1]["content"])
        fixed = len(self.encode(_with_user(chat, "")))
        if fixed >= limit:
            raise HarnessError(f"a prompt's instruction, shots and passages frame take {fixed} tokens, more than the "
                               f"{limit} the model's context of {context} leaves after max_new_tokens: "
                               "use fewer shots or passages (k, budget)")
        for _ in range(16):  # shrink in proportion; converges in one or two steps
            keep = int(len(user) * (limit - fixed) / max(1, len(ids) - fixed) * 0.97)
            user = user[len(user) - max(0, keep) :]
            ids = self.encode(_with_user(chat, user))
            if len(ids) <= limit:
                return ids, True
        raise HarnessError(f"could not fit a prompt into the model's context of {context} tokens")

    def decoding_config(self, config: GenerationConfig) -> GenerationConfig:
        """The suite's decoding, plus the plain format's stop strings for a base model (it would go
        on to invent the next example)."""
        if has_chat_template(self.tokenizer):
            return config
        return dataclasses.replace(config, stop=tuple(dict.fromkeys((*config.stop, *PLAIN_STOPS))))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def batches(self, encoded: Sequence[EncodedPrompt]) -> list[list[EncodedPrompt]]:
        """Sorted by length (longest first: a memory problem shows at once, not at the end)."""
        ordered = sorted(encoded, key=lambda e: (-len(e.ids), e.index))
        out: list[list[EncodedPrompt]] = []
        current: list[EncodedPrompt] = []
        for item in ordered:
            width = len(current[0].ids) if current else len(item.ids)
            if current and (len(current) >= self.batch_size or width * (len(current) + 1) > self.max_batch_tokens):
                out.append(current)
                current = []
            current.append(item)
        if current:
            out.append(current)
        return out

    # -- decoding ------------------------------------------------------------------------------
    def _decode_batch(self, batch: Sequence[EncodedPrompt], config: GenerationConfig) -> list[Generation]:
        import torch

        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self._stop_ids[0]
        width = max(len(e.ids) for e in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):  # left padding: every prompt ends where generation starts
            input_ids[row, width - len(e.ids) :] = torch.tensor(e.ids)
            attention[row, width - len(e.ids) :] = 1
        device = next(self.model.parameters()).device
        kwargs: dict[str, Any] = {}
        if config.stop:
            kwargs.update(stop_strings=list(config.stop), tokenizer=self.tokenizer)
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                max_new_tokens=config.max_new_tokens,
                do_sample=False,
                num_beams=1,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=pad_id,
                eos_token_id=self._stop_ids,
                **kwargs,
            )
        elapsed = time.perf_counter() - start
        new_tokens = out[:, width:].tolist()
        results = []
        for e, toks in zip(batch, new_tokens, strict=True):
            n = len(toks)
            for i, t in enumerate(toks):  # count up to and including the first end token
                if t in self._stop_ids:
                    n = i + 1
                    break
            text = self.tokenizer.decode(toks[:n], skip_special_tokens=True)
            text = truncate_at_stop(text, config.stop).strip()
            # Each example is charged its share of the batch's wall time (see README: cost figures).
            results.append(Generation(text, elapsed / len(batch), len(e.ids), n))
        return results

    def generate(
        self,
        chats: Sequence[Chat],
        config: GenerationConfig,
        *,
        on_batch: Callable[[list[int], list[Generation]], None] | None = None,
    ) -> list[Generation]:
        """Decode every chat; `on_batch(indices, generations)` fires after each batch (for flushing)."""
        import torch

        config = self.decoding_config(config)

        def decode(batch: list[EncodedPrompt]) -> list[Generation]:
            try:
                return self._decode_batch(batch, config)
            except torch.cuda.OutOfMemoryError:
                raise HarnessError(
                    f"out of GPU memory decoding a batch of {len(batch)} prompts of up to {len(batch[0].ids)} tokens: "
                    "pass a smaller --batch-size (decoded batches so far are cached)") from None

        encoded = self.encode_prompts(chats, config.max_new_tokens)
        return collect(self.batches(encoded), decode, len(chats), on_batch)

    def encode_prompts(self, chats: Sequence[Chat], max_new_tokens: int) -> list[EncodedPrompt]:
        """Every chat's prompt ids, fitted to the context (cut prompts counted in `truncated`)."""
        encoded = []
        for i, chat in enumerate(chats):
            ids, cut = self.encode_fitting(chat, max_new_tokens)
            self.truncated += cut
            encoded.append(EncodedPrompt(i, ids))
        return encoded

    @contextlib.contextmanager
    def adapter(self, path: Path | None) -> Iterator[None]:
        """Decode with a PEFT LoRA adapter on top of the base weights, then remove it again.

        The adapter is not merged: merging and unmerging in float drifts the base weights, and
        every later strategy must decode the exact same base model.
        """
        if path is None:
            yield
            return
        from peft import PeftModel

        base = self.loaded.model
        try:
            peft_model = PeftModel.from_pretrained(base, str(path), is_trainable=False)
        except Exception as e:  # a broken or foreign adapter folder: the user's input
            raise HarnessError(f"cannot apply adapter {path}: {type(e).__name__}: {str(e)[:200]}") from e
        peft_model.eval()
        try:  # an adapter that leaves the logits where they were would score exactly as the base model
            check_logits_move(peft_model, [self.tokenizer("The answer is", add_special_tokens=False)["input_ids"]],
                              f"adapter {path}")
        except HarnessError:
            peft_model.unload()
            raise
        self._with_adapter = peft_model
        try:
            yield
        finally:
            self._with_adapter = None
            peft_model.unload().eval()  # removes the LoRA layers from `base` in place
