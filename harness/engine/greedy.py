"""Greedy decoding that drops each row from the batch as soon as it is finished.

`model.generate` keeps every row of a batch running until the longest answer ends: in a batch of
62 where one answer runs to the 96-token cap and the median stops at 30, two thirds of the decode
steps' work is padding. Here a row leaves the batch (its slice of the key/value cache with it) when
it emits an end token or a stop string, so the work follows the answers' own lengths. The same
greedy choices as `generate` (the same positions, masks and last-position logits); on the CPU,
where decoding is compute-bound, this is what the transformers backend uses (on a GPU a step costs
about the same at any batch size, and `generate` stays).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

STOP_TAIL_TOKENS = 16  # the generated tokens searched for a stop string at each step
ROOM_TOKENS = 128  # a cache buffer's spare length when it is (re)allocated; it doubles beyond


@functools.cache
def _growing_layer() -> type:
    """A full-attention cache layer whose keys and values are written in place into a buffer with
    room to spare. transformers' DynamicLayer concatenates the whole cache with each new token
    (a third of a decode step's time on 2 CPU cores at batch 32, by the profiler)."""
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
            super().lazy_initialization(key_states, value_states)
            self._buffers: tuple[Any, Any] | None = None
            self._length = 0

        def _view(self) -> None:
            assert self._buffers is not None
            k, v = self._buffers
            self.keys, self.values = k[..., : self._length, :], v[..., : self._length, :]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            need = self._length + key_states.shape[-2]
            if self._buffers is None or need > self._buffers[0].shape[-2]:
                room = max(need + ROOM_TOKENS, 2 * (self._buffers[0].shape[-2] if self._buffers else 0))
                grown = tuple(s.new_empty((*s.shape[:-2], room, s.shape[-1])) for s in (key_states, value_states))
                if self._buffers is not None:
                    for old, new in zip(self._buffers, grown, strict=True):
                        new[..., : self._length, :] = old[..., : self._length, :]
                self._buffers = (grown[0], grown[1])
            k, v = self._buffers
            k[..., self._length : need, :] = key_states
            v[..., self._length : need, :] = value_states
            self._length = need
            self._view()
            return self.keys, self.values

        def batch_select_indices(self, indices: Any) -> None:
            if self._buffers is not None and self._length:
                self._buffers = (self._buffers[0][indices], self._buffers[1][indices])
                self._view()

    return GrowingLayer


def _cache(model: Any) -> Any:
    """The model's own cache layout (sliding-window layers where it has them), with every plain
    full-attention layer growing in place."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    config = getattr(model, "config", None)
    try:
        cache = DynamicCache(config=config) if config is not None else DynamicCache()
    except Exception:  # noqa: BLE001  # a config transformers cannot lay out: its default cache
        cache = DynamicCache()
    growing = _growing_layer()
    cache.layers = [growing() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    if cache.layer_class_to_replicate is DynamicLayer:
        cache.layer_class_to_replicate = growing
    return cache


def greedy_compact(model: Any, input_ids: Any, attention: Any, *, max_new_tokens: int, stop_ids: Sequence[int],
                   stops: Sequence[str] = (), tokenizer: Any = None) -> list[list[int]]:
    """The greedy tokens of each left-padded row, up to and including its first end token (or the
    step that completed a stop string, or `max_new_tokens`)."""
    import torch

    n = int(input_ids.shape[0])
    out: list[list[int]] = [[] for _ in range(n)]
    if max_new_tokens < 1 or n == 0:
        return out
    ends = set(stop_ids)
    alive = torch.arange(n)  # each live row's index in the caller's batch
    positions = attention.long().cumsum(-1) - 1
    positions.masked_fill_(attention == 0, 1)  # as generate does: padding's positions are masked anyway
    cache = _cache(model)
    kv = {_cache_keyword(model): cache}
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, **kv,
                       use_cache=True, logits_to_keep=1).logits[:, -1]
        next_pos = positions[:, -1:] + 1
        for step in range(max_new_tokens):
            tokens = logits.argmax(-1)
            finished = []
            for i, (row, token) in enumerate(zip(alive.tolist(), tokens.tolist(), strict=True)):
                out[row].append(token)
                if token in ends or (stops and _ends_in_stop(tokenizer, out[row], stops)):
                    finished.append(i)
            if step == max_new_tokens - 1 or len(finished) == len(alive):
                break
            if finished:  # drop the finished rows: the cache, the mask, the positions
                keep = torch.tensor([i for i in range(len(alive)) if i not in set(finished)], device=tokens.device)
                cache.batch_select_indices(keep)
                attention, tokens, next_pos = attention[keep], tokens[keep], next_pos[keep]
                alive = alive[keep.cpu()]
            attention = torch.cat([attention, attention.new_ones((attention.shape[0], 1))], dim=1)
            logits = model(input_ids=tokens[:, None], attention_mask=attention, position_ids=next_pos, **kv,
                           use_cache=True).logits[:, -1]
            next_pos = next_pos + 1
    return out


def _cache_keyword(model: Any) -> str:
    """`cache` where the model's forward takes it (transformers 5.2x renamed `past_key_values`)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT wrapper passes it on
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _ends_in_stop(tokenizer: Any, tokens: list[int], stops: Sequence[str]) -> bool:
    """Whether the text of the last generated tokens holds a stop string (the answer is cut there
    afterwards; a stop longer than the tail is caught at the cap, which costs steps, not answers)."""
    tail = tokenizer.decode(tokens[-STOP_TAIL_TOKENS:], skip_special_tokens=True)
    return any(s and s in tail for s in stops)
