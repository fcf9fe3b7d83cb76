"""What flipped between the baseline and the candidate: the examples that passed in the baseline and
fail in the candidate ("broke"), and the reverse ("fixed"), per compared strategy pair.

An example passes when the score stored with its prediction (harness.core.runrecord.SCORE_NAME:
right or wrong for labels, token or field F1 where an answer can be partly right) reaches the pass
score: 1 (right) for exact tasks, 0.5 by default for graded ones (`gate --pass-score`). Users of
regression tests ask for exactly this list (promptfoo #1395): an aggregate that holds can hide
examples that broke.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.core.runrecord import PredictionRecord, graded


def default_pass_score(task: str) -> float:
    return 0.5 if graded(task) else 1.0


@dataclass(frozen=True)
class Flip:
    example_id: str
    input: str
    target: str
    baseline_output: str
    baseline_answer: Any
    baseline_score: float
    candidate_output: str
    candidate_answer: Any
    candidate_score: float


@dataclass(frozen=True)
class Flips:
    baseline_strategy: str
    candidate_strategy: str
    pass_score: float
    broke: tuple[Flip, ...]  # passed in the baseline, fail in the candidate
    fixed: tuple[Flip, ...]  # failed in the baseline, pass in the candidate
    both_pass: int
    both_fail: int

    @property
    def pair(self) -> str:
        if self.baseline_strategy == self.candidate_strategy:
            return self.baseline_strategy
        return f"{self.baseline_strategy} → {self.candidate_strategy}"


def _target(target: Any) -> str:
    if isinstance(target, (list, tuple)):
        return " | ".join(str(t) for t in target)
    return json.dumps(target, ensure_ascii=False) if isinstance(target, dict) else str(target)


def flips(baseline_strategy: str, candidate_strategy: str, base: Sequence[PredictionRecord],
          cand: Sequence[PredictionRecord], pass_score: float) -> Flips:
    """The flips of one pair over the shared examples (`base[i]` and `cand[i]` are the same example)."""
    broke: list[Flip] = []
    fixed: list[Flip] = []
    both_pass = both_fail = 0
    for b, c in zip(base, cand, strict=True):
        was, now = b.score >= pass_score, c.score >= pass_score
        if was == now:
            both_pass += was
            both_fail += not was
            continue
        flip = Flip(c.example_id, c.input, _target(c.target), b.output, b.answer, b.score, c.output, c.answer, c.score)
        (broke if was else fixed).append(flip)
    return Flips(baseline_strategy, candidate_strategy, pass_score, tuple(broke), tuple(fixed), both_pass, both_fail)
