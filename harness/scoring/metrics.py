"""The built-in metrics, defined once for the whole harness.

Every metric is a `harness.scoring.registry.Metric`: `stats` gives one row of sufficient
statistics per example, and `aggregate` turns any subset or resample of those rows into the
corpus value. The bootstrap and the slices then only index rows, which is both cheap and exact
(corpus BLEU of a resample is BLEU of the resample, not a mean of sentence BLEUs). The built-ins
are registered by `register_builtins`, the one place that lists them. Answers come from
harness.scoring.extract; BLEU and chrF live in harness.scoring.bleu_chrf.

Scales: accuracy, f1, rouge_l lie in [0, 1]; bleu and chrf in [0, 100] as in sacrebleu.
`exact_match` is another name of `accuracy`. Every built-in is higher-is-better. Aggregating
zero rows gives NaN (undefined).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.core.text import normalize_label
from harness.core.types import Example
from harness.scoring.bleu_chrf import (
    bleu_aggregate,
    bleu_resamples,
    bleu_rows,
    chrf_aggregate,
    chrf_resamples,
    chrf_rows,
)
from harness.scoring.extract import (
    answer_text,
    normalize_answer,
    normalize_field,
    normalize_value,
    references,
)
from harness.scoring.metric import Metric, MetricContext

if TYPE_CHECKING:
    from harness.scoring.registry import Registry

# Column meaning of the classification rows used by macro-F1: gold and predicted label index,
# -1 for "not in the label set" (an invalid answer, or a gold label the suite does not list).
_NO_LABEL = -1


# --------------------------------------------------------------------------- per-example scores


def squad_f1(prediction: str, ground_truth: str) -> float:
    """SQuAD v1.1 token F1."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(ground_truth).split()
    num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def _rouge_tokens(text: str) -> list[str]:
    # rouge-score's default tokenizer (lowercase, alphanumeric runs, no stemming), but
    # Unicode-aware so non-English words are kept instead of dropped.
    return re.findall(r"[^\W_]+", text.lower())


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (beta = 1) on tokens, as rouge-score's `rougeL` fmeasure."""
    pred, ref = _rouge_tokens(prediction), _rouge_tokens(reference)
    if not pred or not ref:
        return 0.0
    lcs = _lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def _pairs(d: Any) -> set[tuple[str, str]]:
    """(field, value) pairs of an extraction answer or target; empty values are absent fields."""
    if isinstance(d, str):
        try:
            d = json.loads(d)
        except (ValueError, RecursionError):  # as extract.parse_json_object: unparsable is no pairs
            return set()
    if not isinstance(d, dict):
        return set()
    pairs = {(normalize_field(k), normalize_value(v)) for k, v in d.items()}
    return {p for p in pairs if p[1] != ""}


def _label_index(labels: Sequence[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, label in enumerate(labels):
        index.setdefault(normalize_label(label), i)
    return index


def _gold_label(example: Example) -> str:
    target = example.target
    if isinstance(target, tuple):
        return target[0] if target else ""
    return str(target)


def _classification_rows(
    answers: Sequence[Any], examples: Sequence[Example], labels: Sequence[str]
) -> np.ndarray:
    index = _label_index(labels)
    rows = np.full((len(examples), 2), _NO_LABEL, dtype=np.float64)
    for i, (answer, example) in enumerate(zip(answers, examples, strict=True)):
        rows[i, 0] = index.get(normalize_label(_gold_label(example)), _NO_LABEL)
        if isinstance(answer, str):
            rows[i, 1] = index.get(normalize_label(answer), _NO_LABEL)
    return rows


def _correct(task: str, answer: Any, example: Example) -> bool:
    """Exact match, the per-example notion of 'correct' shared by accuracy and McNemar."""
    if answer is None:
        return False
    if task == "classification":
        return isinstance(answer, str) and normalize_label(answer) == normalize_label(_gold_label(example))
    if task == "extraction":
        return isinstance(answer, (dict, str)) and _pairs(answer) == _pairs(example.target)
    norm = normalize_answer(answer_text(answer))
    return any(norm == normalize_answer(ref) for ref in references(example))



# --------------------------------------------------------------------------- accuracy, f1, rouge_l


def _accuracy_rows(answers: Sequence[Any], examples: Sequence[Example], ctx: MetricContext) -> np.ndarray:
    """[correct] per example (0/1): what accuracy averages and McNemar pairs."""
    return np.array(
        [[_correct(ctx.task, a, e)] for a, e in zip(answers, examples, strict=True)], dtype=np.float64
    ).reshape(-1, 1)


def _f1_rows(answers: Sequence[Any], examples: Sequence[Example], ctx: MetricContext) -> np.ndarray:
    """classification: [gold index, predicted index] (-1 = not a label: invalid answer);
    extraction: [tp, fp, fn] of (field, value) pairs; qa / generation: [token F1]."""
    if ctx.task == "classification":
        if not ctx.labels:
            raise ValueError("macro-F1 for classification needs the suite's label set")
        return _classification_rows(answers, examples, ctx.labels)
    if ctx.task == "extraction":
        rows = []
        for a, e in zip(answers, examples, strict=True):
            pred = _pairs(a) if a is not None else set()
            gold = _pairs(e.target)
            rows.append([len(pred & gold), len(pred - gold), len(gold - pred)])
        return np.array(rows, dtype=np.float64).reshape(-1, 3)
    return _best_overreferences(squad_f1, answers, examples)


def _f1_aggregate(rows: np.ndarray, ctx: MetricContext) -> float:
    if ctx.task == "classification":
        return float(_macro_f1_many(rows, np.ones((1, len(rows))), len(ctx.labels))[0])
    if ctx.task == "extraction":
        return float(_pair_f1(rows.sum(axis=0), empty=0.0))  # nothing gold, nothing predicted: 0
    return float(rows[:, 0].mean())


def _f1_many(rows: np.ndarray, counts: np.ndarray, ctx: MetricContext) -> np.ndarray:
    if ctx.task == "classification":
        return _macro_f1_many(rows, counts, len(ctx.labels))
    if ctx.task == "extraction":
        return _pair_f1(counts @ rows, empty=0.0)
    return (counts @ rows)[:, 0] / counts.sum(axis=1)


def _rouge_l_rows(answers: Sequence[Any], examples: Sequence[Example], ctx: MetricContext) -> np.ndarray:
    return _best_overreferences(rouge_l, answers, examples)


def _best_overreferences(score: Any, answers: Sequence[Any], examples: Sequence[Example]) -> np.ndarray:
    return np.array(
        [
            max(score(answer_text(a), r) for r in references(e)) if a is not None else 0.0
            for a, e in zip(answers, examples, strict=True)
        ],
        dtype=np.float64,
    ).reshape(-1, 1)


def _pair_f1(sums: np.ndarray, empty: float) -> np.ndarray:
    """Micro-F1 from summed [tp, fp, fn] (last axis); `empty` where nothing is gold or predicted."""
    tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.full(np.shape(denom), empty, dtype=np.float64), where=denom > 0)


def _macro_f1_many(rows: np.ndarray, counts: np.ndarray, n_labels: int) -> np.ndarray:
    """Macro-F1 of each resample (counts[r, i]: draws of row i), as sklearn's
    f1_score(average="macro", zero_division=0) with its default labels: those that occur in the
    gold or predicted answers of that resample. A label of the suite that neither occurs nor is
    predicted does not count (averaging over the whole label set made a small test split of a
    many-label suite read far below its accuracy). An invalid answer (-1) is a false negative for
    its gold label and no label's false positive; a gold label outside the set (-1) is no label's
    true positive or false negative. With no label at all, the value is 0."""
    if n_labels == 0:
        raise ValueError("macro-F1 for classification needs the suite's label set")
    gold = rows[:, 0].astype(np.int64)
    pred = rows[:, 1].astype(np.int64)
    eye = np.eye(n_labels + 1)[:, :n_labels]  # row n_labels (index -1: no label) is all zeros
    true_hot, pred_hot = eye[gold], eye[pred]  # -1 picks the zero row
    hit_hot = true_hot * ((gold == pred) & (gold >= 0))[:, None]
    true_sum, pred_sum, tp = counts @ true_hot, counts @ pred_hot, counts @ hit_hot
    denom = true_sum + pred_sum  # > 0 exactly for the labels that occur
    f = np.divide(2.0 * tp, denom, out=np.zeros_like(denom), where=denom > 0)
    present = (denom > 0).sum(axis=1)
    return np.divide(f.sum(axis=1), present, out=np.zeros(len(f)), where=present > 0)



def register_builtins(registry: Registry) -> None:
    """The one place that lists the built-in metrics (the registry calls it on first use)."""
    for metric in (
        Metric("accuracy", _accuracy_rows, paired_test="mcnemar_exact", aliases=("exact_match",),
               description="normalised exact match against any reference; for classification, the label"),
        Metric("f1", _f1_rows, _f1_aggregate, _f1_many,
               description="macro-F1 (classification), field micro-F1 (extraction), SQuAD token F1"),
        Metric("bleu", bleu_rows, bleu_aggregate, bleu_resamples, scale=100.0, format_spec=".1f",
               description="sacrebleu corpus BLEU, all references"),
        Metric("rouge_l", _rouge_l_rows, description="ROUGE-L F-measure against the best reference"),
        Metric("chrf", chrf_rows, chrf_aggregate, chrf_resamples, scale=100.0, format_spec=".1f",
               description="sacrebleu corpus chrF, all references"),
    ):
        registry.add_builtin(metric)


def correct_vector(
    task: str, answers: Sequence[Any], examples: Sequence[Example], labels: Sequence[str] = ()
) -> np.ndarray:
    """Per-example correctness (exact match; for classification the gold label) as bools."""
    del labels  # correctness compares with the gold label itself; kept for a uniform signature
    return np.array([_correct(task, a, e) for a, e in zip(answers, examples, strict=True)], dtype=bool)


def example_scores(task: str, answers: Sequence[Any], examples: Sequence[Example]) -> np.ndarray:
    """One score in [0, 1] per example: what "better here" means in the report's example views,
    stored with each prediction's record (harness.core.runrecord.SCORE_NAME names it per task):
    exact for labels, graded where an answer can be partly right (a long FAQ answer is almost
    never an exact match)."""
    if task == "classification":
        return correct_vector(task, answers, examples).astype(np.float64)
    rows = _f1_rows(answers, examples, MetricContext(task))
    if task == "extraction":  # rows are [tp, fp, fn]; an example with no fields, rightly predicted, is right
        return _pair_f1(rows, empty=1.0)
    return rows[:, 0]
