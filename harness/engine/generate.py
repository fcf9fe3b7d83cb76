"""What every backend on local weights shares: prompts rendered with the model's own chat template
(or the plain format of a base model), fitted to its context, tokenised and sorted into batches.

The transformers and vllm backends are both an `Engine`: they decode the very same token ids and
differ only in their kernels, which is what keeps a comparison across them fair. One engine for
all strategies is what makes the comparison within a run fair: only the prompt (and, for `sft`,
the adapter) differs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.core.config import ModelSpec
from harness.core.errors import HarnessError
from harness.core.types import Chat, Generation, GenerationConfig, ScoreRequest
from harness.engine.backends.base import TRAIN, Backend
from harness.engine.likelihood import Encoded
from harness.engine.models import LoadedModel, check_model_ref
from harness.engine.prompting import PLAIN_STOPS, answer_ids, has_chat_template, render_chat


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


class Engine(Backend):
    """A backend on local weights (a `LoadedModel`: tokenizer now, weights on first use)."""

    capabilities = frozenset({TRAIN})

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

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad) if pad is not None else self._stop_ids[0]

    # -- the Backend interface, for every local-weights backend ---------------------------------
    @classmethod
    def check_spec(cls, spec: ModelSpec, *, device: str, where: str) -> None:
        check_model_ref(spec.id, where)

    def identity(self) -> str:
        return str(self.loaded.sha256 or self.loaded.path)

    def record(self) -> dict[str, Any]:
        return {"backend": self.name, "id": self.loaded.name, "sha256": self.loaded.sha256,
                "resolved": self.loaded.path, "dtype": self.loaded.dtype, "device": self.loaded.device}

    def local_weights(self) -> LoadedModel:
        return self.loaded

    @property
    def weights_loaded(self) -> bool:
        return bool(self.loaded.was_loaded)

    def free(self) -> None:
        self._with_adapter = None  # no PEFT wrapper left holding the base weights
        self.loaded.free()

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

    def encode_scored(self, requests: Sequence[ScoreRequest]) -> list[Encoded]:
        """Every score request as token ids: a prompt fitted to the context with room for its
        longest continuation, each continuation as the model's reply (`answer_ids`, what sft trains
        on); a plain text (prompt None) as BOS (where the model has one) and the text, cut to
        `max_tokens`, every token after the first scored."""
        out = []
        for r in requests:
            if r.prompt is None:
                bos = getattr(self.tokenizer, "bos_token_id", None)
                text = "".join(r.continuations)
                ids = ([bos] if isinstance(bos, int) else []) + list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
                ids = ids[: r.max_tokens] if r.max_tokens else ids
                out.append(Encoded(ids[:1], [ids[1:]]) if len(ids) >= 2 else Encoded([], []))
                continue
            rendered = self.render(r.prompt)
            conts = [answer_ids(self.tokenizer, r.prompt, c, self._stop_ids, rendered) for c in r.continuations]
            ids, cut = self.encode_fitting(r.prompt, max((len(c) for c in conts), default=1))
            self.truncated += cut
            out.append(Encoded(ids, conts))
        return out

    def encode_prompts(self, chats: Sequence[Chat], max_new_tokens: int) -> list[EncodedPrompt]:
        """Every chat's prompt ids, fitted to the context (cut prompts counted in `truncated`)."""
        encoded = []
        for i, chat in enumerate(chats):
            ids, cut = self.encode_fitting(chat, max_new_tokens)
            self.truncated += cut
            encoded.append(EncodedPrompt(i, ids))
        return encoded

