"""results.json's records of how answers came out: label-choice statistics and format gaps
(harness.scoring.answers)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ChoiceStats", "FormatGap", "ReliabilityBin"]


@dataclass(frozen=True)
class ReliabilityBin:
    low: float  # the chosen label's probability lies in [low, high)
    high: float
    n: int
    confidence: float  # mean probability of the chosen label in the bin
    accuracy: float  # share of the bin's examples whose chosen label is right


@dataclass(frozen=True)
class ChoiceStats:
    """answer=choice: what the per-label scores show (harness.scoring.answers)."""

    labels: list[str]
    confusion: list[list[int]]  # confusion[gold][chosen], in label order
    reliability: list[ReliabilityBin]
    ece: float  # expected calibration error over the bins
    n: int


@dataclass(frozen=True)
class FormatGap:
    """How much of a trained strategy's lead over a prompted one its answer mode closes."""

    free: str  # the strategy decoded as free text
    better: str  # the same strategy in another answer mode
    trained: str
    metric: str
    lead: float  # trained - free
    closed: float  # better - free
    text: str
