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

from collections.abc import Sequence
from typing import Any

from harness.engine.common_start import LEAST_SHARED, common_start

STOP_TAIL_TOKENS = 16  # the generated tokens searched for a stop string at each step
# A prefill group holds at least this many tokens (rows x width): the linears already run near the
# machine's peak at a few hundred rows, and a smaller group wastes less on left padding.
PREFILL_GROUP_TOKENS = 512


def greedy_compact(model: Any, input_ids: Any, attention: Any, *, max_new_tokens: int, stop_ids: Sequence[int],
                   stops: Sequence[str] = (), tokenizer: Any = None,
                   prefill_group_tokens: int = PREFILL_GROUP_TOKENS, share_prefix: bool = True) -> list[list[int]]:
    """The greedy tokens of each left-padded row, up to and including its first end token (or the
    step that completed a stop string, or `max_new_tokens`)."""
    import torch

    from harness.engine.kv_cache import cache_keyword, window_shorter_than

    n = int(input_ids.shape[0])
    out: list[list[int]] = [[] for _ in range(n)]
    if max_new_tokens < 1 or n == 0:
        return out
    ends = set(stop_ids)
    alive = torch.arange(n)  # each live row's index in the caller's batch
    positions = attention.long().cumsum(-1) - 1
    positions.masked_fill_(attention == 0, 1)  # as generate does: padding's positions are masked anyway
    keyword = cache_keyword(model)
    # A sliding window counts cache slots, not positions: the masked gap a shared start leaves before
    # a shorter row's rest would push its earliest tokens out of a window they are inside in `generate`.
    share_prefix = share_prefix and not window_shorter_than(model, int(input_ids.shape[1]) + max_new_tokens)
    with torch.inference_mode():
        logits, cache, attention = _prefill(model, input_ids, attention, positions, keyword, room=max_new_tokens,
                                            group_tokens=prefill_group_tokens, share_prefix=share_prefix)
        kv = {keyword: cache}
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
                done = set(finished)
                keep = torch.tensor([i for i in range(len(alive)) if i not in done], device=tokens.device)
                cache.batch_select_indices(keep)
                attention, tokens, next_pos = attention[keep], tokens[keep], next_pos[keep]
                alive = alive[keep.cpu()]
            attention = torch.cat([attention, attention.new_ones((attention.shape[0], 1))], dim=1)
            logits = model(input_ids=tokens[:, None], attention_mask=attention, position_ids=next_pos, **kv,
                           use_cache=True).logits[:, -1]
            next_pos = next_pos + 1
    return out


def _prefill(model: Any, input_ids: Any, attention: Any, positions: Any, keyword: str, *, room: int,
             group_tokens: int, share_prefix: bool = True) -> tuple[Any, Any, Any]:
    """The last position's logits of every row, the key/value cache decoding goes on from, and that
    cache's attention mask.

    Two savings, both exact (the same keys at the same positions, whatever sits in masked slots):
    - The tokens every prompt begins with (a chat template's system turn and the suite's
      instruction: 32 of the default demo's 49 prompt tokens) are run once, as one row, and their
      keys copied into every row's cache; each row then runs only its own rest, the slots between
      the shared part and a shorter rest masked as padding is.
    - The batch's rows are left-padded to its longest prompt, and every padded position costs a full
      pass through the linears. So rows of similar length (they come sorted) are prefilled in
      groups, each padded only to its own longest row, and their keys and values are then placed,
      right-aligned, in one cache, the padding's slots left empty and masked."""
    import torch

    from harness.engine.kv_cache import in_place_cache, repeated_cache, right_aligned_cache

    width = int(input_ids.shape[1])
    lengths = attention.sum(-1).tolist()
    shared = shared_prefix(input_ids, lengths) if share_prefix else 0
    prefix = None
    if shared:
        start = width - lengths[0]
        prefix = in_place_cache(room=0)
        model(input_ids=input_ids[:1, start:start + shared], position_ids=positions[:1, start:start + shared],
              **{keyword: prefix}, use_cache=True, logits_to_keep=1)
    rests = [n - shared for n in lengths]
    groups = _length_groups(rests, group_tokens)
    parts, logits, masks = [], [], []
    for group in groups:
        longest = max(1, *(rests[r] for r in group))  # an empty prompt still runs one (padding) column, as before
        rows, cols = slice(group.start, group.stop), slice(width - longest, width)
        # one group: its cache is the decode's (room for the answer); several: merged below
        spare = room if len(groups) == 1 else 0
        if prefix is None:
            part, mask = in_place_cache(room=spare), attention[rows, cols]
        else:  # the shared keys first; of the columns after them, only each row's own rest
            part = repeated_cache(prefix, len(group), room=longest + spare)
            own = torch.arange(longest, device=attention.device)[None] >= longest - torch.tensor(
                [rests[r] for r in group], device=attention.device)[:, None]
            mask = torch.cat([attention.new_ones((len(group), shared)), own.to(attention.dtype)], dim=1)
        logits.append(model(input_ids=input_ids[rows, cols], attention_mask=mask, position_ids=positions[rows, cols],
                            **{keyword: part}, use_cache=True, logits_to_keep=1).logits[:, -1])
        parts.append((rows, part))
        masks.append((rows, mask))
    merged = attention.new_zeros((len(lengths), max(m.shape[1] for _, m in masks)))
    for rows, mask in masks:  # right-aligned, as the cache is
        merged[rows, merged.shape[1] - mask.shape[1]:] = mask
    if len(parts) == 1:
        return logits[0], parts[0][1], merged
    return torch.cat(logits), right_aligned_cache(parts, width=merged.shape[1], room=room), merged


def shared_prefix(input_ids: Any, lengths: Sequence[int], least: int = LEAST_SHARED) -> int:
    """How many tokens every left-padded row begins with, if at least `least` and there are rows to
    share them (each row keeps at least one token of its own, whose logits are the first answer's)."""
    shortest = min(lengths) if lengths else 0
    width = int(input_ids.shape[1])
    rows = [ids[width - n:width - n + shortest - 1] for ids, n in zip(input_ids.tolist(), lengths, strict=True)]
    return common_start(rows, cap=shortest - 1, least=least)


def _length_groups(lengths: Sequence[int], group_tokens: int) -> list[range]:
    """Consecutive rows in groups of at least `group_tokens` padded tokens (a short tail joins the group
    before it). The backend's rows come sorted by length, so a group's padding is small; in any other
    order the groups are as correct, only less of the padding is saved."""
    def padded(group: list[int]) -> int:
        return len(group) * max(lengths[r] for r in group)

    groups: list[list[int]] = [[]]
    for row in range(len(lengths)):
        if groups[-1] and padded(groups[-1]) >= group_tokens:
            groups.append([])
        groups[-1].append(row)
    if len(groups) > 1 and padded(groups[-1]) < group_tokens // 2:
        groups[-2].extend(groups.pop())
    return [range(g[0], g[-1] + 1) for g in groups]


def _ends_in_stop(tokenizer: Any, tokens: list[int], stops: Sequence[str]) -> bool:
    """Whether the text of the last generated tokens holds a stop string (the answer is cut there
    afterwards; a stop longer than the tail is caught at the cap, which costs steps, not answers)."""
    tail = tokenizer.decode(tokens[-STOP_TAIL_TOKENS:], skip_special_tokens=True)
    return any(s and s in tail for s in stops)
