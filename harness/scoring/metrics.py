"""Answer extraction and the built-in metrics, defined once for the whole harness.

Two steps, kept apart:

1. `extract_answer` turns a raw model output into what the metrics see (a label, a dict of
   fields, a string), or None when the output is unusable. None is "invalid": it is scored as
   a wrong answer, never a crash.
2. Every metric is a `harness.metric_registry.Metric`: `stats` gives one row of sufficient
   statistics per example, and `aggregate` turns any subset or resample of those rows into the
   corpus value. The bootstrap and the slices then only index rows, which is both cheap and
   exact (corpus BLEU of a resample is BLEU of the resample, not a mean of sentence BLEUs).
   The built-ins are registered by `register_builtins`, the one place that lists them.

Scales: accuracy, f1, rouge_l lie in [0, 1]; bleu and chrf in [0, 100] as in sacrebleu.
`exact_match` is another name of `accuracy`. Every built-in is higher-is-better. Aggregating
zero rows gives NaN (undefined). BLEU uses only sacrebleu's public API; chrF is computed here
(sacrebleu exposes no per-segment chrF statistics), and the tests hold both to sacrebleu's
`corpus_bleu` / `corpus_chrf`.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from harness.core.errors import MissingPackageError
from harness.core.text import normalize_label
from harness.core.types import Example
from harness.scoring.registry import Aggregator, Metric, MetricContext, Registry, get_metric

# Column meaning of the classification rows used by macro-F1: gold and predicted label index,
# -1 for "not in the label set" (an invalid answer, or a gold label the suite does not list).
_NO_LABEL = -1


# --------------------------------------------------------------------------- normalisation


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lower, drop punctuation and articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_PUNCT = frozenset(string.punctuation)


def _normalize_value(value: Any) -> str:
    """A field value as a comparable string: casefolded, whitespace collapsed, numbers canonical."""
    text = " ".join(_value_to_str(value).casefold().split())
    # "42", "42.0" and 42 are the same number; leave anything that is not a plain number alone.
    if re.fullmatch(r"[-+]?\d+(\.\d+)?", text):
        number = float(text)
        if math.isfinite(number):
            text = str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)
    return text


def _normalize_field(name: str) -> str:
    return " ".join(str(name).casefold().replace("_", " ").replace("-", " ").split())


def _value_to_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    # Nested values compare by their canonical JSON text.
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def answer_text(answer: Any) -> str:
    """What text metrics (BLEU, chrF, ROUGE-L, token F1) see for an answer; invalid is ''."""
    if answer is None:
        return ""
    if isinstance(answer, str):
        return answer
    if isinstance(answer, dict):
        return json.dumps(answer, ensure_ascii=False, sort_keys=True)
    return str(answer)


def _references(example: Example) -> tuple[str, ...]:
    refs = tuple(r for r in example.references() if r is not None)
    return refs or ("",)  # no reference at all scores like an empty one instead of crashing


# --------------------------------------------------------------------------- extraction


def extract_answer(
    output: str | None, task: str, labels: Sequence[str] = (), fields: Sequence[str] = ()
) -> Any | None:
    """What the metrics see for one raw output; None when the output is invalid.

    classification: the label the output names (see `_find_label`).
    extraction: the first JSON object in the output, values as strings (see `parse_json_object`);
        when `fields` is given, keys are matched to those names case-insensitively and other
        keys are dropped (the suite's fields define what is scored).
    qa / generation: the stripped output ('' is invalid).
    """
    if output is None:
        return None
    if task == "classification":
        if not labels:
            return output.strip() or None
        return _find_label(output, labels)
    if task == "extraction":
        obj = parse_json_object(output)
        if obj is None:
            return None
        return _restrict_fields(obj, fields)
    if task in ("qa", "generation"):
        return output.strip() or None
    raise ValueError(f"unknown task {task!r}")


def _find_label(output: str, labels: Sequence[str]) -> str | None:
    """The label an output names.

    1. The whole normalised output equals a normalised label.
    2. Otherwise the labels that occur as whole words in the output; a match lying inside a
       longer matching label ("positive" inside "very positive", "spam" inside "not spam") is
       dropped; of the rest, the earliest wins (models state the answer first and explain
       after), and at the same position the longest.
    """
    norm_out = normalize_label(output)
    norm_labels = [(normalize_label(label), label) for label in labels]
    for norm, label in norm_labels:
        if norm and norm == norm_out:
            return label
    spans: list[tuple[int, int, str]] = []  # (start, end, label) of every whole-word occurrence
    for norm, label in norm_labels:
        if not norm:
            continue
        for m in re.finditer(r"(?<!\S)" + re.escape(norm) + r"(?!\S)", norm_out):
            spans.append((m.start(), m.end(), label))
    kept = [
        s
        for s in spans
        if not any(o[0] <= s[0] and s[1] <= o[1] and (o[1] - o[0]) > (s[1] - s[0]) for o in spans)
    ]
    if not kept:
        return None
    kept.sort(key=lambda s: (s[0], -(s[1] - s[0])))
    return kept[0][2]


_FENCE = re.compile(r"```[a-zA-Z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def parse_json_object(text: str) -> dict[str, str] | None:
    """The first JSON object in `text` (inside ```json fences or among prose), values as strings.

    A single trailing comma before a closing bracket is tolerated. None when no object parses.
    """
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for chunk in candidates:
        for start in (i for i, ch in enumerate(chunk) if ch == "{"):
            obj = _decode_at(decoder, chunk, start)
            if isinstance(obj, dict):
                return {str(k): _value_to_str(v) for k, v in obj.items()}
    return None


def _decode_at(decoder: json.JSONDecoder, text: str, start: int) -> Any:
    try:
        return decoder.raw_decode(text, start)[0]
    except json.JSONDecodeError:
        pass
    # Retry with trailing commas removed, up to the first closing brace that makes it parse.
    for end in (i for i, ch in enumerate(text) if ch == "}" and i > start):
        fixed = _TRAILING_COMMA.sub(r"\1", text[start : end + 1])
        try:
            return json.loads(fixed)
        except json.JSONDecodeError:
            continue
    return None


def _restrict_fields(obj: dict[str, str], fields: Sequence[str]) -> dict[str, str]:
    if not fields:
        return obj
    by_norm = {_normalize_field(f): f for f in fields}
    out: dict[str, str] = {}
    for key, value in obj.items():
        name = by_norm.get(_normalize_field(key))
        if name is not None and name not in out:
            out[name] = value
    return out


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
        except json.JSONDecodeError:
            return set()
    if not isinstance(d, dict):
        return set()
    pairs = {(_normalize_field(k), _normalize_value(v)) for k, v in d.items()}
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
    return any(norm == normalize_answer(ref) for ref in _references(example))



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
    return _best_over_references(squad_f1, answers, examples)


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
    return _best_over_references(rouge_l, answers, examples)


def _best_over_references(score: Any, answers: Sequence[Any], examples: Sequence[Example]) -> np.ndarray:
    return np.array(
        [
            max(score(answer_text(a), r) for r in _references(e)) if a is not None else 0.0
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


# --------------------------------------------------------------------------- bleu (sacrebleu)


@lru_cache(maxsize=1)
def _bleu() -> Any:
    try:
        from sacrebleu.metrics import BLEU
    except ImportError:
        raise MissingPackageError("sacrebleu (for the bleu metric)", "pip install 'sacrebleu>=2.4'") from None
    # The settings of sacrebleu.corpus_bleu: 13a, exp smoothing, order 4 (`_bleu_many` relies on them).
    return BLEU()


def _bleu_rows(answers: Sequence[Any], examples: Sequence[Example], ctx: MetricContext) -> np.ndarray:
    """[sys_len, ref_len, correct_1..4, total_1..4] per example: the statistics sacrebleu's corpus
    BLEU sums, read from the (public) score of each segment on its own, all its references used."""
    bleu = _bleu()
    rows = []
    for a, e in zip(answers, examples, strict=True):
        s = bleu.corpus_score([answer_text(a)], [[r] for r in _references(e)])
        rows.append([s.sys_len, s.ref_len, *s.counts, *s.totals])
    return np.array(rows, dtype=np.float64).reshape(-1, 10)


def _bleu_aggregate(rows: np.ndarray, ctx: MetricContext) -> float:
    from sacrebleu.metrics import BLEU

    # Integer counts, as sacrebleu sums them, so the score is bit-identical to its corpus score.
    s = [int(round(x)) for x in rows.sum(axis=0)]
    return float(BLEU.compute_bleu(s[2:6], s[6:10], s[0], s[1], smooth_method="exp").score)


_LOG_ZERO = -9999999999.0  # sacrebleu.utils.my_log(0)


def _bleu_many(sums: np.ndarray) -> np.ndarray:
    """sacrebleu's BLEU.compute_bleu, vectorised over resamples, for the settings `_bleu()` uses
    (exp smoothing, order 4, no effective order); rows = [sys_len, ref_len, correct_1..4, total_1..4]."""
    sys_len, ref_len = sums[:, 0], sums[:, 1]
    correct, total = sums[:, 2:6], sums[:, 6:10]
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(sys_len < ref_len, np.where(sys_len > 0, np.exp(1 - ref_len / sys_len), 0.0), 1.0)
        precisions = np.zeros_like(correct)
        smooth = np.ones(len(sums))
        alive = np.ones(len(sums), dtype=bool)  # sacrebleu stops at the first order with no n-grams
        for k in range(4):
            alive &= total[:, k] != 0
            zero = alive & (correct[:, k] == 0)
            smooth = np.where(zero, smooth * 2, smooth)
            precisions[:, k] = np.where(
                ~alive, 0.0, np.where(zero, 100.0 / (smooth * total[:, k]), 100.0 * correct[:, k] / total[:, k])
            )
        logs = np.where(precisions == 0.0, _LOG_ZERO, np.log(np.where(precisions == 0.0, 1.0, precisions)))
        score = bp * np.exp(logs.sum(axis=1) / 4)
    return np.where(correct.sum(axis=1) > 0, score, 0.0)


# --------------------------------------------------------------------------- chrF (sacrebleu's, ported)

# sacrebleu's CHRF() defaults, as corpus_chrf uses them: character 1..6-grams with whitespace
# removed, no word n-grams, beta 2, no lowercasing, effective-order averaging (no eps smoothing).
_CHRF_ORDER, _CHRF_BETA = 6, 2


def _char_ngrams(text: str) -> list[Counter[str]]:
    line = "".join(text.split())
    return [Counter(line[i : i + n] for i in range(len(line) - n + 1)) for n in range(1, _CHRF_ORDER + 1)]


def _chrf_segment(hyp: str, refs: Sequence[str]) -> list[int]:
    """[hyp, ref, match] n-gram counts per order against the reference with the best chrF (the
    first of equals), as sacrebleu's CHRF picks it."""
    hyp_grams = _char_ngrams(hyp)
    candidates = []
    for ref in refs:
        row: list[int] = []
        for h, r in zip(hyp_grams, _char_ngrams(ref), strict=True):
            match = sum(min(count, r[g]) for g, count in h.items() if g in r)
            row += [sum(h.values()) if r else 0, sum(r.values()), match]
        candidates.append(row)
    best = _chrf_scores(np.array(candidates, dtype=np.float64))
    return candidates[int(np.argmax(best))]


def _chrf_scores(sums: np.ndarray) -> np.ndarray:
    """sacrebleu's CHRF._compute_f_score on each row of summed statistics, with the same float
    operations in the same order (so the values are bit-identical)."""
    factor = _CHRF_BETA**2
    avg_prec, avg_rec, effective = np.zeros(len(sums)), np.zeros(len(sums)), np.zeros(len(sums))
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(_CHRF_ORDER):
            n_hyp, n_ref, n_match = sums[:, 3 * i], sums[:, 3 * i + 1], sums[:, 3 * i + 2]
            both = (n_hyp > 0) & (n_ref > 0)
            avg_prec = np.where(both, avg_prec + n_match / n_hyp, avg_prec)
            avg_rec = np.where(both, avg_rec + n_match / n_ref, avg_rec)
            effective += both
        avg_prec = np.where(effective > 0, avg_prec / effective, 0.0)
        avg_rec = np.where(effective > 0, avg_rec / effective, 0.0)
        score = (1 + factor) * avg_prec * avg_rec / ((factor * avg_prec) + avg_rec)
    return np.where(avg_prec + avg_rec != 0, 100 * score, 0.0)


def _chrf_rows(answers: Sequence[Any], examples: Sequence[Example], ctx: MetricContext) -> np.ndarray:
    rows = [_chrf_segment(answer_text(a), _references(e)) for a, e in zip(answers, examples, strict=True)]
    return np.array(rows, dtype=np.float64).reshape(-1, 3 * _CHRF_ORDER)


def _chrf_aggregate(rows: np.ndarray, ctx: MetricContext) -> float:
    return float(_chrf_scores(np.rint(rows.sum(axis=0))[None, :])[0])


# --------------------------------------------------------------------------- the built-ins


def _bleu_resamples(rows: np.ndarray, counts: np.ndarray, ctx: MetricContext) -> np.ndarray:
    return _bleu_many(np.rint(counts @ rows))


def _chrf_resamples(rows: np.ndarray, counts: np.ndarray, ctx: MetricContext) -> np.ndarray:
    return _chrf_scores(np.rint(counts @ rows))


def register_builtins(registry: Registry) -> None:
    """The one place that lists the built-in metrics (the registry calls it on first use)."""
    for metric in (
        Metric("accuracy", _accuracy_rows, paired_test="mcnemar_exact", aliases=("exact_match",),
               description="normalised exact match against any reference; for classification, the label"),
        Metric("f1", _f1_rows, _f1_aggregate, _f1_many,
               description="macro-F1 (classification), field micro-F1 (extraction), SQuAD token F1"),
        Metric("bleu", _bleu_rows, _bleu_aggregate, _bleu_resamples, scale=100.0, format_spec=".1f",
               description="sacrebleu corpus BLEU, all references"),
        Metric("rouge_l", _rouge_l_rows, description="ROUGE-L F-measure against the best reference"),
        Metric("chrf", _chrf_rows, _chrf_aggregate, _chrf_resamples, scale=100.0, format_spec=".1f",
               description="sacrebleu corpus chrF, all references"),
    ):
        registry.add_builtin(metric)


# --------------------------------------------------------------------------- by name


def aggregator(name: str, task: str, labels: Sequence[str] = ()) -> Aggregator:
    """The metric `name` bound to a task: rows -> value, with a vectorised path for resamples."""
    return get_metric(name).bind(task, labels)


def metric_stats(
    name: str, task: str, answers: Sequence[Any], examples: Sequence[Example], labels: Sequence[str] = ()
) -> np.ndarray:
    """Per-example sufficient statistics of `name`, shape (n_examples, d)."""
    return aggregator(name, task, labels).stats(answers, examples)


def aggregate(name: str, task: str, stats: np.ndarray, labels: Sequence[str] = ()) -> float:
    """The corpus value of `name` from rows of `metric_stats` (any subset or resample)."""
    return aggregator(name, task, labels)(stats)


def compute(
    name: str, task: str, answers: Sequence[Any], examples: Sequence[Example], labels: Sequence[str] = ()
) -> float:
    """The corpus value of one metric."""
    agg = aggregator(name, task, labels)
    return agg(agg.stats(answers, examples))


def correct_vector(
    task: str, answers: Sequence[Any], examples: Sequence[Example], labels: Sequence[str] = ()
) -> np.ndarray:
    """Per-example correctness (exact match; for classification the gold label) as bools."""
    del labels  # correctness compares with the gold label itself; kept for a uniform signature
    return np.array([_correct(task, a, e) for a, e in zip(answers, examples, strict=True)], dtype=bool)


# The per-example score each task is judged by in the report's example views: exact for labels,
# graded where an answer can be partly right (a long FAQ answer is almost never an exact match).
EXAMPLE_SCORE_NAME = {"classification": "correct", "extraction": "field F1", "qa": "token F1", "generation": "token F1"}


def graded(task: str) -> bool:
    """Whether `example_scores` can fall between 0 and 1 for this task."""
    return task != "classification"


def example_scores(task: str, answers: Sequence[Any], examples: Sequence[Example]) -> np.ndarray:
    """One score in [0, 1] per example (see EXAMPLE_SCORE_NAME): what "better here" means."""
    if task == "classification":
        return correct_vector(task, answers, examples).astype(np.float64)
    rows = _f1_rows(answers, examples, MetricContext(task))
    if task == "extraction":  # rows are [tp, fp, fn]; an example with no fields, rightly predicted, is right
        return _pair_f1(rows, empty=1.0)
    return rows[:, 0]
