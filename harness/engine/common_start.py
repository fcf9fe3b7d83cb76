"""The tokens every row of a batch begins with: a chat template's opening, the system turn, the
suite's instruction. Decoding prefills them once (greedy) and training runs them once a micro-batch
(training.shared_start); both ask this one question of their rows."""

from __future__ import annotations

from collections.abc import Sequence

LEAST_SHARED = 4  # fewer shared tokens are not worth a second forward


def common_start(rows: Sequence[Sequence[int]], cap: int, least: int = LEAST_SHARED) -> int:
    """How many tokens all `rows` begin with, at most `cap`; 0 for fewer than two rows or fewer than
    `least` tokens in common (the caller's cap keeps what each row must run itself out of it)."""
    if len(rows) < 2 or cap < least:
        return 0
    first = rows[0]
    n = 0
    while n < cap and all(row[n] == first[n] for row in rows[1:]):
        n += 1
    return n if n >= least else 0
