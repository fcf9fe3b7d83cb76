"""Duplicate inputs, removed before splitting: exact copies, and copies once normalised.

The normal form is the leakage check's (harness.engine.leakage.normalize: NFKC, casefold,
punctuation and symbols as spaces, whitespace collapsed), so an imported suite never shows an
"exact" leak between its splits. It is rebuilt here, lazily per character, because the core may not
import the engine and its table of every code point costs 0.3 s to build.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from harness.core.importing.rows import Draft, RawTarget


class _Blanks(dict[int, str]):
    """str.translate's table: a punctuation or symbol code point -> a space, any other -> itself
    (None would delete it), each found on first use."""

    def __missing__(self, cp: int) -> str:
        value = " " if unicodedata.category(chr(cp))[0] in "PS" else chr(cp)
        self[cp] = value
        return value


_BLANKS = _Blanks()


def normalize(text: str) -> str:
    """Casefolded, punctuation and symbols as spaces, whitespace collapsed (NFKC first)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(text.translate(_BLANKS).split())


def key(text: str) -> str:
    """What two inputs share when one duplicates the other; an input of punctuation alone is its own."""
    return normalize(text) or f"\0{text}"


@dataclass
class Removed:
    """Duplicates left out, by kind: `exact` (the same text), `normalised` (the same once normalised),
    `across` (a test or validation row repeating an earlier split's), per split; `conflicts`: how
    many of them had another target than the row kept."""

    exact: Counter[str] = field(default_factory=Counter)
    normalised: Counter[str] = field(default_factory=Counter)
    across: Counter[str] = field(default_factory=Counter)
    conflicts: int = 0
    # id of the row kept -> the other targets its duplicates had (qa / generation keep them as references)
    other_targets: dict[str, list[RawTarget]] = field(default_factory=dict)

    def total(self) -> int:
        return sum(self.exact.values()) + sum(self.normalised.values()) + sum(self.across.values())

    def describe(self) -> str:
        """One line for the summary and the README."""
        if not self.total():
            return "no duplicate inputs"
        kinds = [(sum(self.exact.values()), "exact"), (sum(self.normalised.values()),
                                                       "the same once normalised (case, spaces, punctuation)")]
        parts = [f"{n:,} {what}" for n, what in kinds if n]
        parts += [f"{n:,} {split} row(s) repeating an earlier split's" for split, n in sorted(self.across.items())]
        conflicts = f"; {self.conflicts:,} of them had another target than the row kept" if self.conflicts else ""
        return f"removed {self.total():,} duplicate input(s): {', '.join(parts)}{conflicts}"


# The order in which splits claim an input: a test row repeating a train row is the one dropped.
PRIORITY = ("train", "validation", "test", "all")


def deduplicate(splits: Mapping[str, Sequence[Draft]]) -> tuple[dict[str, list[Draft]], Removed]:
    """Each split without repeated inputs; the first occurrence is kept (train before validation
    before test), later ones are counted in Removed, with the other targets they had."""
    removed = Removed()
    seen: dict[str, tuple[str, Draft]] = {}  # key -> (split, the row kept)
    exact: set[str] = set()
    kept: dict[str, list[Draft]] = {}
    for split in sorted(splits, key=PRIORITY.index):
        kept[split] = []
        for row in splits[split]:
            k = key(row.input)
            first = seen.get(k)
            if first is None:
                seen[k] = (split, row)
                exact.add(row.input)
                kept[split].append(row)
                continue
            if first[0] != split:
                removed.across[split] += 1
            elif row.input in exact:
                removed.exact[split] += 1
            else:
                removed.normalised[split] += 1
            if row.target != first[1].target:
                removed.conflicts += 1
                removed.other_targets.setdefault(str(first[1].id), []).append(row.target)
    return kept, removed


def with_references(rows: dict[str, list[Draft]], removed: Removed) -> tuple[dict[str, list[Draft]], int]:
    """qa / generation: a kept row's target and its duplicates' other targets, as its references
    (the e2e way: one input, several good answers); returns how many targets were added."""
    added = 0
    out: dict[str, list[Draft]] = {}
    for split, part in rows.items():
        out[split] = []
        for row in part:
            others = removed.other_targets.get(str(row.id), [])
            refs = list(dict.fromkeys([*_texts(row.target), *(t for o in others for t in _texts(o))]))
            if len(refs) > len(_texts(row.target)):
                added += len(refs) - len(_texts(row.target))
                row = dataclasses.replace(row, target=tuple(refs))
            out[split].append(row)
    return out, added


def _texts(target: RawTarget) -> tuple[str, ...]:
    """The references of a target (an object of fields has none to merge)."""
    return (target,) if isinstance(target, str) else target if isinstance(target, tuple) else ()
