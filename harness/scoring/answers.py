"""What the answer modes show (issue: prompting measured at its best): for a strategy whose labels
were scored (answer=choice), the confusion matrix and how well its label probabilities are
calibrated; and, when a run has the same strategy in two answer modes, how much of a fine-tuned
strategy's lead over prompting is format (the answer said in the wrong form) rather than knowledge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from harness.core.results import ChoiceStats, FormatGap, ReliabilityBin, StrategyResult
from harness.core.runrecord import PredictionRecord, last_wins
from harness.core.types import Example

BINS = 10


def _probabilities(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    exp = [math.exp(s - top) for s in scores]
    total = sum(exp)
    return [e / total for e in exp]


def choice_stats(labels: Sequence[str], examples: Sequence[Example], records: Sequence[PredictionRecord]) -> ChoiceStats | None:
    """Confusion (gold row, chosen column, in label order; a gold label outside the set is left out)
    and reliability: examples binned by the chosen label's probability (softmax over the label
    scores), each bin's mean confidence against its accuracy, and the expected calibration error."""
    by_id = last_wins(records)
    index = {label: i for i, label in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    bins: list[list[tuple[float, bool]]] = [[] for _ in range(BINS)]
    for e in examples:
        r = by_id.get(e.id)
        gold = index.get(str(e.target))
        if r is None or not r.choice_scores or len(r.choice_scores) != len(labels) or gold is None:
            continue
        probs = _probabilities(r.choice_scores)
        chosen = max(range(len(labels)), key=lambda i: probs[i])
        confusion[gold][chosen] += 1
        bins[min(int(probs[chosen] * BINS), BINS - 1)].append((probs[chosen], chosen == gold))
    n = sum(len(b) for b in bins)
    if not n:
        return None
    table = [ReliabilityBin(i / BINS, (i + 1) / BINS, len(b), sum(c for c, _ in b) / len(b), sum(ok for _, ok in b) / len(b))
             for i, b in enumerate(bins) if b]
    ece = sum(b.n / n * abs(b.confidence - b.accuracy) for b in table)
    return ChoiceStats(list(labels), confusion, table, ece, n)


def _same_but_answer(a: StrategyResult, b: StrategyResult) -> bool:
    same_model = (a.model.id if a.model else None) == (b.model.id if b.model else None)
    return a.kind == b.kind and a.params == b.params and same_model and a.answer != b.answer


def format_gaps(strategies: Mapping[str, StrategyResult], metric: str) -> list[FormatGap]:
    """For every strategy decoded freely (`free`) and again in another answer mode (`better`), and
    every trained strategy that beats the free one: how much of that lead the answer mode closes."""
    gaps = []
    for free_name, free in strategies.items():
        if free.answer != "free":
            continue
        for better_name, better in strategies.items():
            if not _same_but_answer(free, better):
                continue
            for name, trained in strategies.items():
                if trained.training is None and trained.adapter is None:
                    continue
                lead = trained.value(metric) - free.value(metric)
                if not lead > 0:
                    continue
                closed = better.value(metric) - free.value(metric)
                gaps.append(FormatGap(free_name, better_name, name, metric, lead, closed, _sentence(
                    free_name, better_name, better.answer, name, metric, lead, closed)))
    return gaps


def _sentence(free: str, better: str, mode: str, trained: str, metric: str, lead: float, closed: float) -> str:
    how = "scored by label likelihood" if mode.startswith("choice") else "decoded under constraints"
    if closed <= 0:
        return (f"{trained} leads {free} by {lead:.3f} {metric}; with its answers {how} ({better}) {free} gains "
                f"nothing ({closed:+.3f}): the lead is knowledge, not format.")
    share = min(closed / lead, 1.0)
    rest = "all of the lead is format" if closed >= lead else f"{1 - share:.0%} of it remains: that part is knowledge"
    return (f"{trained} leads {free} by {lead:.3f} {metric}; with its answers {how} ({better}) {free} gains "
            f"{closed:.3f}, {share:.0%} of that lead: format, not knowledge; {rest}.")
