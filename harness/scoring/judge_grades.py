"""A judge's reply as a grade, and the judged metric the statistics see.

Replies decoded by label likelihood or under a constraint are a grade already; a free-text reply
is read for the first grade it names ("Partially correct." is partial, "incorrect" is wrong, a
rubric's first digit 1-5, pairwise "A", "B" or "tie"). A reply that names none is unparsable: it
is recorded and counted, and scored as the mode's lowest grade, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.core.judges import GRADES
from harness.core.types import Example
from harness.scoring.metric import Metric, MetricContext

# mode -> (pattern, grade) in the order they are tried at each position of the reply
_WORDS: dict[str, list[tuple[re.Pattern[str], str]]] = {
    "reference": [(re.compile(r"\b(?:partial(?:ly)?|partly|somewhat)\b", re.I), "partial"),
                  (re.compile(r"\b(?:wrong|incorrect|not correct|false)\b", re.I), "wrong"),
                  (re.compile(r"\b(?:correct|right|true)\b", re.I), "correct")],
    "rubric": [(re.compile(r"(?<![\d.])([1-5])(?![\d.]*\d)"), "")],
    "pairwise": [(re.compile(r"\btie\b|\bequal(?:ly)?\b|\bsame\b", re.I), "tie"),
                 (re.compile(r"(?<![A-Za-z])A(?![A-Za-z])"), "A"),
                 (re.compile(r"(?<![A-Za-z])B(?![A-Za-z])"), "B")],
}


def parse_grade(reply: str, mode: str) -> str | None:
    """The grade a judge's reply gives (one of GRADES[mode].labels), or None when it gives none."""
    text = reply.strip().strip('"').strip()
    if text in GRADES[mode].labels:
        return text
    best: tuple[int, str] | None = None
    for pattern, grade in _WORDS[mode]:
        m = pattern.search(text)
        if m is None:
            continue
        found = grade or m.group(1)
        if best is None or m.start() < best[0]:
            best = (m.start(), found)
    return best[1] if best else None


def grade_value(grade: str | None, mode: str) -> float:
    """A grade's score on [0, 1]; an unparsable one scores the lowest."""
    grades = GRADES[mode]
    return grades.value(grade) if grade is not None else grades.values[0]


def _lowest(answers: Sequence[Any], examples: Sequence[Example], ctx: MetricContext) -> np.ndarray:
    # Rows are stored by the judge pass; these are the rows of an example that has no record (an
    # interrupted strategy): it has no answer to grade, so it scores the lowest grade.
    return np.zeros((len(examples), 1), dtype=np.float64)


def judged_metric(name: str) -> Metric:
    """The metric a judge's grades are: the mean grade on [0, 1], paired-bootstrap tests."""
    return Metric(name=name, stats=_lowest, scale=1.0, description="graded by a judge model (harness.core.judges)")
