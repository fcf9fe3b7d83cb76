"""Seeded train / test / validation splits, stratified by label for classification.

Sizes are a fraction ("0.2", "20%") or a count ("300"). Defaults: test 20% capped at 500 rows,
validation 10% capped at 200: enough test rows for a confidence interval of a few points, and
the rest (at least 70%) left to train on, which is what a fine-tune or a few-shot prompt needs.
Stratified, every label keeps at least one train example whenever it has one row to spare: a
label's last row is never held out, so a fine-tune or a shot picker sees every label.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from harness.core.errors import HarnessError
from harness.core.suites.problems import _show

T = TypeVar("T")


@dataclass(frozen=True)
class Size:
    """A split's size: `count` rows, or `fraction` of the rows (at most `cap` of them)."""

    fraction: float | None = None
    count: int | None = None
    cap: int | None = None

    def of(self, n: int) -> int:
        if self.count is not None:
            return self.count
        assert self.fraction is not None
        k = round(n * self.fraction)
        return min(k, self.cap) if self.cap is not None else k

    def describe(self) -> str:
        if self.count is not None:
            return f"{self.count} rows"
        assert self.fraction is not None
        cap = f" at most {self.cap}" if self.cap is not None else ""
        return f"{self.fraction:.0%}{cap}"


DEFAULT_TEST = Size(fraction=0.2, cap=500)
DEFAULT_VALIDATION = Size(fraction=0.1, cap=200)


def parse_size(text: str, option: str) -> Size:
    """'0.2' or '20%' -> a fraction; '300' -> a count; anything else is refused in one line."""
    value = text.strip()
    try:
        if value.endswith("%"):
            fraction = float(value[:-1]) / 100
        elif value.isdigit():
            return Size(count=int(value))
        else:
            fraction = float(value)
    except ValueError:
        raise HarnessError(f"{option} {_show(text)}: give a fraction (0.2 or 20%) or a number of rows (300)") from None
    if not 0 <= fraction < 1 or math.isnan(fraction):
        raise HarnessError(f"{option} {_show(text)}: a fraction must be at least 0 and below 1 (or give a number of rows)")
    return Size(fraction=fraction)


@dataclass(frozen=True)
class Split:
    train: list[int]  # indices into the rows, in their original order
    test: list[int]
    validation: list[int]
    note: str  # how it was split, for the summary and the README


def split_rows(rows: Sequence[T], test: Size | None, validation: Size | None, seed: int,
               label: Callable[[T], str] | None) -> Split:
    """Hold out `test` and `validation` rows (None: that split is not made here), stratified by
    `label` when given; every index lands in exactly one split."""
    n = len(rows)
    n_test = test.of(n) if test is not None else 0
    if test is not None and n_test < 1:
        if not test.fraction:
            raise HarnessError("--test-size 0: a suite needs a test split")
        n_test = 1  # a small fraction of few rows
    n_val = validation.of(n) if validation is not None else 0
    if n_test + n_val >= n:
        raise HarnessError(f"{n} row(s) left after removing duplicates and bad rows: too few for {n_test} test and "
                           f"{n_val} validation row(s) with any left to train on; lower --test-size / --validation-size")
    rng = random.Random(seed)
    if label is None:
        order = list(range(n))
        rng.shuffle(order)
        held_test, held_val = order[:n_test], order[n_test:n_test + n_val]
        how = f"seeded shuffle, seed {seed}"
    else:
        held_test, held_val = _stratified(rows, label, n_test, n_val, rng)
        how = f"stratified by label, seed {seed}"
        if len(held_test) < n_test or len(held_val) < n_val:
            how += (f"; {len(held_test)} test and {len(held_val)} validation rows, fewer than asked, so that "
                    "every label keeps a train example")
        if test is not None and not held_test:
            raise HarnessError("cannot hold out a test split: every label has a single row; "
                               "add rows, or import with --task qa to split without labels")
    taken = set(held_test) | set(held_val)
    return Split([i for i in range(n) if i not in taken], sorted(held_test), sorted(held_val), how)


def _stratified(rows: Sequence[T], label: Callable[[T], str], n_test: int, n_val: int,
                rng: random.Random) -> tuple[list[int], list[int]]:
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(label(row), []).append(i)
    names = sorted(groups)
    for name in names:
        rng.shuffle(groups[name])
    sizes = {name: len(groups[name]) for name in names}
    spare = {name: sizes[name] - 1 for name in names}  # one row of each label stays in train
    # What each label holds out in all first, then its test share of that: train, test and
    # validation then each stay within one row of every label's proportional share.
    held = allocate(sizes, n_test + n_val, spare)
    t = allocate(sizes, n_test, held)
    v = allocate(sizes, n_val, {name: held[name] - t[name] for name in names})
    held_test = [i for name in names for i in groups[name][: t[name]]]
    held_val = [i for name in names for i in groups[name][t[name] : t[name] + v[name]]]
    return held_test, held_val


def allocate(sizes: dict[str, int], k: int, room: dict[str, int]) -> dict[str, int]:
    """`k` held-out rows shared among labels in proportion to their size (largest remainders), no
    label given more than its `room`; fewer than `k` only when the room runs out."""
    n = sum(sizes.values())
    quota = {name: k * size / n for name, size in sizes.items()} if n else {}
    got = {name: min(math.floor(quota[name]), room[name]) for name in sizes}
    left = k - sum(got.values())
    while left > 0:
        open_ = [name for name in sizes if got[name] < room[name]]
        if not open_:
            break
        # The label furthest below its share first; ties by name, so the result is deterministic.
        open_.sort(key=lambda name: (got[name] - quota[name], name))
        for name in open_[:left]:
            got[name] += 1
        left = k - sum(got.values())
    return got
