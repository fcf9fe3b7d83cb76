"""The train subsets of a learning curve: one seeded ordering of the train split per seed, of which
size n takes the first n examples, so the sizes are nested (what 32 examples saw, 64 saw too).
For classification the ordering is stratified, round-robin over the labels (labels and examples
within a label in seeded order), so even 16 examples cover 16 labels rather than a random handful.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from harness.core.cache import fingerprint
from harness.core.errors import HarnessError
from harness.core.types import Example, Suite

ALL = "all"


def parse_sizes(raw: str | Sequence[object], flag: str = "--sizes") -> list[int | str]:
    """`16,32,all` (or a TOML list like [16, 32, "all"]) -> [16, 32, "all"]; refused (one line)
    when a size is not a positive whole number or `all`."""
    items = [s.strip() for s in raw.split(",") if s.strip()] if isinstance(raw, str) else list(raw)
    out: list[int | str] = []
    for item in items:
        if isinstance(item, str) and item.lower() == ALL:
            value: int | str = ALL
        elif isinstance(item, int) and not isinstance(item, bool):
            value = item
        elif isinstance(item, str) and item.isdigit():
            value = int(item)
        else:
            raise HarnessError(f"{flag}: '{item}' is not a train size (a whole number, or 'all')")
        if value != ALL and int(value) < 1:
            raise HarnessError(f"{flag}: a train size must be at least 1, got {value}")
        if value not in out:
            out.append(value)
    if not out:
        raise HarnessError(f"{flag}: give at least one train size, e.g. 16,32,64,all")
    return out


def resolve_sizes(sizes: Sequence[int | str], n_train: int, flag: str = "--sizes") -> list[int]:
    """Sizes as numbers, ascending, `all` = the whole train split. A size beyond the split is refused
    (rather than clipped, which would quietly measure `all` twice under two names)."""
    if n_train == 0:
        raise HarnessError("the suite has no train examples: a learning curve needs a train split")
    too_big = [s for s in sizes if s != ALL and int(s) > n_train]
    if too_big:
        raise HarnessError(f"{flag}: {too_big[0]} is more than the {n_train} train examples of the suite "
                           f"(use 'all' for the whole split)")
    return sorted({n_train if s == ALL else int(s) for s in sizes})


def _label(example: Example) -> str:
    target = example.target
    if isinstance(target, tuple):
        return target[0] if target else ""
    return str(target)


def train_order(train: Sequence[Example], task: str, seed: int) -> list[Example]:
    """The seeded ordering whose prefixes are the curve's subsets (stratified for classification)."""
    rng = random.Random(seed)
    if task != "classification":
        order = list(train)
        rng.shuffle(order)
        return order
    groups: dict[str, list[Example]] = {}
    for ex in train:
        groups.setdefault(_label(ex), []).append(ex)
    labels = sorted(groups)
    rng.shuffle(labels)
    for label in labels:
        rng.shuffle(groups[label])
    out: list[Example] = []
    for depth in range(max(len(g) for g in groups.values())):
        out.extend(groups[label][depth] for label in labels if depth < len(groups[label]))
    return out


def subset_suite(suite: Suite, train: Sequence[Example]) -> Suite:
    """The suite with only `train` as its train split. Its sha256 names the subset, because cache
    identities (the shots' `train`) key on it: two subsets must never share a cache entry."""
    ids = [ex.id for ex in train]
    sha = fingerprint({"suite": suite.sha256, "train": ids}, length=64)
    parts = {**suite.part_sha256, "train": fingerprint({"train": suite.part_sha256.get("train"), "ids": ids}, length=64)}
    return dataclasses.replace(suite, train=tuple(train), sha256=sha, part_sha256=parts)
