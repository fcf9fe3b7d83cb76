"""A key/value cache that writes each step's keys and values in place, for greedy decoding.

transformers' `DynamicLayer` appends a step's keys and values with `torch.cat`, which copies the whole
cache of every layer at every step: for the default 135M model at 32 rows and ~100 positions that is
some 150 MB of copying per step, a quarter of a CPU decode step's time (torch.profiler, 2-core Sapphire
Rapids: 180 ms a step with `cat`, 150 ms in place). Here each layer holds a buffer with room for the
answer's tokens (`room`, the decoding cap) and a step writes into it; the attention reads a view of the
filled positions. The same keys and values, so the same logits; should the steps outrun the room, the
buffer grows by `room` again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class InPlaceLayer(DynamicLayer):
    """One layer's keys and values in a buffer of shape (rows, heads, capacity, head_dim)."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = max(1, room)
        self.length = 0
        self._keys: Any = None
        self._values: Any = None

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if self._keys is None or end > self._keys.shape[-2]:
            self._keys = self._grown(self._keys, key_states, end + self.room)
            self._values = self._grown(self._values, value_states, end + self.room)
        self._keys[:, :, self.length:end] = key_states
        self._values[:, :, self.length:end] = value_states
        self.length = end
        self._expose()
        return self.keys, self.values

    def _grown(self, buffer: Any, states: Any, capacity: int) -> Any:
        rows, heads, _, dim = states.shape
        grown = states.new_empty((rows, heads, capacity, dim))
        if buffer is not None and self.length:
            grown[:, :, :self.length] = buffer[:, :, :self.length]
        return grown

    def _expose(self) -> None:
        """`keys` and `values` (what the attention and `get_seq_length` read): the filled positions."""
        self.keys = self._keys[:, :, :self.length]
        self.values = self._values[:, :, :self.length]

    @classmethod
    def holding(cls, keys: Any, values: Any, length: int, room: int) -> InPlaceLayer:
        """A layer over the given buffers (rows, heads, capacity, head_dim), `length` positions filled."""
        layer = cls(room)
        layer.lazy_initialization(keys, values)
        layer._keys, layer._values, layer.length = keys, values, length
        layer._expose()
        return layer

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: Any) -> None:
        if self._keys is not None:
            self._keys, self._values = self._keys[indices], self._values[indices]
            self._expose()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self._keys is not None:
            self._keys = self._keys.repeat_interleave(repeats, dim=0)
            self._values = self._values.repeat_interleave(repeats, dim=0)
            self._expose()

    def reorder_cache(self, beam_idx: Any) -> None:
        if self._keys is not None:
            self.batch_select_indices(beam_idx.to(self._keys.device))

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative count of tokens to remove, not {tokens_to_remove}")
        if self._keys is not None and tokens_to_remove:
            self.length = max(0, self.length + tokens_to_remove)
            self._expose()

    def reset(self) -> None:
        self._keys = self._values = None
        self.length = 0
        super().reset()


def in_place_cache(room: int) -> DynamicCache:
    """A `DynamicCache` whose layers (made as the forward reaches them) are `InPlaceLayer`s with `room`
    positions to spare: the cache the greedy loop passes to every forward."""
    cache = DynamicCache()
    cache.layer_class_to_replicate = lambda: InPlaceLayer(room)  # type: ignore[assignment]
    return cache


def repeated_cache(prefix: DynamicCache, rows: int, room: int) -> DynamicCache:
    """A cache of `rows` rows, each holding the one-row `prefix` cache's keys and values, with `room`
    positions to spare after them: the shared start of every prompt, computed once."""
    cache = in_place_cache(room)
    layer: Any
    for layer in prefix.layers:
        if layer.keys is None:  # a layer that keeps no cache of its own (its keys come from another)
            cache.layers.append(InPlaceLayer(room))
            continue
        length = layer.keys.shape[-2]
        buffers = []
        states: Any
        for states in (layer.keys, layer.values):
            buffer = states.new_empty((rows, states.shape[1], length + room, states.shape[-1]))
            buffer[:, :, :length] = states  # broadcast over the rows
            buffers.append(buffer)
        cache.layers.append(InPlaceLayer.holding(buffers[0], buffers[1], length=length, room=room))
    return cache


def right_aligned_cache(parts: Sequence[tuple[slice, DynamicCache]], *, width: int, room: int) -> DynamicCache:
    """One cache for the whole batch from the caches of consecutive row groups (`parts`: each group's
    rows and its cache), each group's keys and values ending at position `width`, the slots to their
    left zero (the attention mask keeps them out, as it kept out the padding's keys)."""
    total = max(rows.stop for rows, _ in parts)
    cache = in_place_cache(room)
    for i in range(len(parts[0][1].layers)):
        first: Any = parts[0][1].layers[i]
        if first.keys is None:  # a layer that keeps no cache of its own (its keys come from another)
            cache.layers.append(InPlaceLayer(room))
            continue
        buffers = []
        for side in ("keys", "values"):
            like = getattr(first, side)
            buffer = like.new_zeros((total, like.shape[1], width + room, like.shape[-1]))
            for rows, part in parts:
                states = getattr(part.layers[i], side)
                buffer[rows, :, width - states.shape[-2]:width] = states
            buffers.append(buffer)
        keys, values = buffers
        cache.layers.append(InPlaceLayer.holding(keys, values, length=width, room=room))
    return cache


def cache_keyword(model: Any) -> str:
    """`cache` where the model's forward takes it (transformers 5.24 renamed `past_key_values`), the
    name of the output's field as well."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT wrapper passes it on
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def window_shorter_than(model: Any, span: int) -> bool:
    """Whether some attention layer of the model sees fewer than `span` slots (a sliding window)."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config  # a multimodal model's language part
    window: Any = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None and "sliding_attention" not in layer_types:
        return False  # the window is configured but no layer uses it (Qwen2's use_sliding_window=False)
    return bool(window) and int(window) < span
