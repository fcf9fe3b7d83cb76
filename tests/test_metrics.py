"""harness.scoring.metrics against independent references: scikit-learn, sacrebleu, the SQuAD script."""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from functools import cache

import numpy as np
import pytest
import sacrebleu
from sacrebleu.metrics import BLEU
from sklearn.metrics import accuracy_score, f1_score

from harness.core.errors import HarnessError
from harness.core.types import Example
from harness.scoring import bleu_chrf
from harness.scoring import extract as X
from harness.scoring import metrics as M
from harness.scoring import registry as R
from harness.scoring.registry import get_metric, metric_names

# --------------------------------------------------------------------------- SQuAD v1.1, verbatim
# From the official evaluate-v1.1.py (normalize_answer, f1_score, exact_match_score,
# metric_max_over_ground_truths), renamed with a squad_ prefix only; kept out of the formatter.


# fmt: off
def squad_normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def squad_f1_score(prediction, ground_truth):
    prediction_tokens = squad_normalize_answer(prediction).split()
    ground_truth_tokens = squad_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def squad_exact_match_score(prediction, ground_truth):
    return (squad_normalize_answer(prediction) == squad_normalize_answer(ground_truth))


def squad_metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)
# fmt: on


# --------------------------------------------------------------------------- helpers

WORDS = (
    "the cat sat on a mat with dog and bird over under house tree river sky An THE "
    "Paris, 42 3.5 don't well-known café naïve !"
).split()


def _sentence(rng: random.Random, lo: int = 1, hi: int = 18) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def _text_examples(seed: int, n: int, max_refs: int) -> tuple[list[str], list[Example]]:
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        refs = tuple(_sentence(rng) for _ in range(rng.randint(1, max_refs)))
        target = refs[0] if len(refs) == 1 and rng.random() < 0.5 else refs
        examples.append(Example(id=f"e{i}", input="", target=target))
    hyps = [_sentence(rng, 0, 18) for _ in range(n)]
    return hyps, examples


def _streams(examples: list[Example]) -> list[list[str | None]]:
    refs = [e.references() for e in examples]
    width = max(len(r) for r in refs)
    return [[r[k] if k < len(r) else None for r in refs] for k in range(width)]


LABELS = ("billing", "bug_report", "feature request", "other", "never_used")


# --------------------------------------------------------------------------- classification


def _sklearn_macro_f1(gold: list[str], y_pred: list[str]) -> float:
    """sklearn's macro-F1 over its default labels, those that occur in gold or predictions; an
    invalid answer ("__invalid__", or a string outside the label set) is no label of the suite."""
    present = sorted({y for y in [*gold, *y_pred] if y in LABELS})
    return float(f1_score(gold, y_pred, labels=present, average="macro", zero_division=0)) if present else 0.0


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_and_macro_f1_equal_sklearn(seed: int) -> None:
    rng = random.Random(seed)
    used = LABELS[:4]  # "never_used" is never gold and never predicted: not in the average
    gold = [rng.choice(used) for _ in range(80)]
    answers: list[str | None] = []
    for g in gold:
        r = rng.random()
        answers.append(g if r < 0.5 else None if r < 0.6 else "not-a-label" if r < 0.65 else rng.choice(used))
    examples = [Example(id=str(i), input="", target=g) for i, g in enumerate(gold)]

    y_pred = ["__invalid__" if a is None or a not in LABELS else a for a in answers]
    want_acc = accuracy_score(gold, y_pred)

    # Macro-F1 averages over the labels that occur (it used to average over the whole label set,
    # counting "never_used" as an F1 of 0).
    assert R.compute("f1", "classification", answers, examples, LABELS) == pytest.approx(
        _sklearn_macro_f1(gold, y_pred), abs=1e-15
    )
    assert R.compute("accuracy", "classification", answers, examples, LABELS) == pytest.approx(
        want_acc, abs=1e-15
    )
    # Rows of a subset give the subset's score (what the bootstrap and the slices rely on).
    rows = R.metric_stats("f1", "classification", answers, examples, LABELS)
    sub = list(range(0, 80, 3))
    want_sub = _sklearn_macro_f1([gold[i] for i in sub], [y_pred[i] for i in sub])
    assert R.aggregate("f1", "classification", rows[sub], LABELS) == pytest.approx(want_sub, abs=1e-15)
    assert M.correct_vector("classification", answers, examples, LABELS).tolist() == [
        a == g for a, g in zip(answers, gold, strict=True)
    ]


def test_macro_f1_averages_over_the_labels_that_occur() -> None:
    """24 examples of an 18-label suite: labels absent from the examples do not count as F1 0
    (over all 18 labels this read 0.31 with an accuracy of 0.875)."""
    labels = tuple(f"intent_{i}" for i in range(18))
    rng = random.Random(0)
    gold = [rng.choice(labels[:5]) for _ in range(24)]
    pred = [g if i % 8 else labels[(labels.index(g) + 1) % 5] for i, g in enumerate(gold)]
    examples = [Example(id=str(i), input="", target=g) for i, g in enumerate(gold)]
    got = R.compute("f1", "classification", pred, examples, labels)
    assert got == pytest.approx(f1_score(gold, pred, average="macro"), abs=1e-15)  # sklearn's defaults
    assert R.compute("accuracy", "classification", pred, examples, labels) == 21 / 24
    assert got > 0.7


@pytest.mark.parametrize("seed", range(3))
def test_resampled_macro_f1_equals_sklearn_on_the_resampled_set(seed: int) -> None:
    """The vectorised bootstrap path (draw counts) gives, per resample, sklearn's macro-F1 of the
    resampled examples, also where a resample lacks some labels."""
    rng = random.Random(seed)
    gold = [rng.choice(LABELS[:4]) for _ in range(30)]
    answers: list[str | None] = [g if rng.random() < 0.6 else rng.choice([*LABELS, None]) for g in gold]
    examples = [Example(id=str(i), input="", target=g) for i, g in enumerate(gold)]
    y_pred = ["__invalid__" if a is None else a for a in answers]
    rows = R.metric_stats("f1", "classification", answers, examples, LABELS)
    agg = R.aggregator("f1", "classification", LABELS)
    idx = np.random.default_rng(seed).integers(0, 30, size=(8, 6))  # small resamples: labels go missing
    counts = np.stack([np.bincount(r, minlength=30) for r in idx])
    assert agg.many is not None
    got = agg.many(rows, counts)
    want = [_sklearn_macro_f1([gold[i] for i in r], [y_pred[i] for i in r]) for r in idx]
    assert got.tolist() == pytest.approx(want, abs=1e-12)
    assert [agg(rows[r]) for r in idx] == pytest.approx(want, abs=1e-12)  # and the plain aggregate
    assert any(len({gold[i] for i in r}) < 4 for r in idx)  # some resample really lacks a label


def test_classification_answers_match_labels_case_insensitively() -> None:
    examples = [Example(id="1", input="", target="bug_report")]
    assert R.compute("accuracy", "classification", ["Bug Report"], examples, LABELS) == 1.0
    # Only bug_report occurs, so macro-F1 is its F1 (over the whole label set this was 1/5).
    assert R.compute("f1", "classification", ["BUG-REPORT"], examples, LABELS) == 1.0


def test_macro_f1_needs_the_label_set() -> None:
    with pytest.raises(ValueError, match="label set"):
        R.metric_stats("f1", "classification", ["a"], [Example(id="1", input="", target="a")])


@pytest.mark.parametrize(
    ("output", "want"),
    [
        ("billing", "billing"),
        ("  Bug_Report.\n", "bug_report"),
        ("bug report", "bug_report"),
        ("Label: Feature Request", "feature request"),
        ("I think this is a bug report, not billing.", "bug_report"),  # earliest wins
        ("The category is OTHER!", "other"),
        ("no idea", None),
        ("", None),
        ("billingual", None),  # whole words only
    ],
)
def test_extract_label(output: str, want: str | None) -> None:
    assert X.extract_answer(output, "classification", LABELS) == want


def test_extract_label_prefers_the_longer_label_containing_a_shorter_one() -> None:
    labels = ("spam", "not spam", "positive", "very positive")
    assert X.extract_answer("This is not spam.", "classification", labels) == "not spam"
    assert X.extract_answer("spam", "classification", labels) == "spam"
    assert X.extract_answer("Sentiment: very positive", "classification", labels) == "very positive"


# --------------------------------------------------------------------------- qa / generation


@pytest.mark.parametrize("seed", range(3))
def test_token_f1_and_exact_match_equal_squad_script(seed: int) -> None:
    hyps, examples = _text_examples(seed, 60, 3)
    hyps[0] = examples[0].references()[-1].upper() + " ."  # an exact match after normalisation
    answers: list[str | None] = [h or None for h in hyps]
    answers[1] = None  # invalid

    def want(fn):
        return [
            squad_metric_max_over_ground_truths(fn, a, e.references()) if a is not None else 0
            for a, e in zip(answers, examples, strict=True)
        ]

    f1_rows = R.metric_stats("f1", "qa", answers, examples)
    assert f1_rows[:, 0].tolist() == pytest.approx(want(squad_f1_score), abs=0)
    assert R.compute("f1", "qa", answers, examples) == pytest.approx(np.mean(want(squad_f1_score)), abs=1e-15)
    em = [float(x) for x in want(squad_exact_match_score)]
    assert em[0] == 1.0
    assert R.metric_stats("exact_match", "qa", answers, examples)[:, 0].tolist() == em
    assert R.metric_stats("accuracy", "generation", answers, examples)[:, 0].tolist() == em


def test_bleu_equals_sacrebleu_single_and_multi_reference() -> None:
    for max_refs in (1, 3):
        hyps, examples = _text_examples(7, 50, max_refs)
        if max_refs == 3:  # fixed count: two references each
            examples = [
                Example(id=e.id, input="", target=(e.references()[0], e.references()[0] + " sky"))
                for e in examples
            ]
        got = R.compute("bleu", "generation", hyps, examples)
        want = sacrebleu.corpus_bleu(hyps, _streams(examples)).score
        assert got == want


@pytest.mark.parametrize("seed", range(4))
def test_bleu_with_a_variable_number_of_references_equals_sacrebleu(seed: int) -> None:
    hyps, examples = _text_examples(seed, 40, 4)
    assert len({len(e.references()) for e in examples}) > 1
    rows = R.metric_stats("bleu", "generation", hyps, examples)
    assert R.aggregate("bleu", "generation", rows) == sacrebleu.corpus_bleu(hyps, _streams(examples)).score
    # Any resample of rows is the corpus BLEU of the resampled corpus (duplicates included).
    idx = np.random.default_rng(seed).integers(0, len(hyps), size=len(hyps))
    sub_h, sub_e = [hyps[i] for i in idx], [examples[i] for i in idx]
    assert R.aggregate("bleu", "generation", rows[idx]) == sacrebleu.corpus_bleu(sub_h, _streams(sub_e)).score


@pytest.mark.parametrize("seed", range(3))
def test_chrf_equals_sacrebleu(seed: int) -> None:
    hyps, examples = _text_examples(seed + 10, 40, 3)
    answers: list[str | None] = list(hyps)
    answers[2] = None  # invalid -> empty hypothesis, as sacrebleu scores ""
    hyp_text = [a if a is not None else "" for a in answers]
    assert (
        R.compute("chrf", "generation", answers, examples)
        == sacrebleu.corpus_chrf(hyp_text, _streams(examples)).score
    )
    rows = R.metric_stats("chrf", "generation", answers, examples)
    idx = np.arange(0, 40, 2)
    assert (
        R.aggregate("chrf", "generation", rows[idx])
        == sacrebleu.corpus_chrf([hyp_text[i] for i in idx], _streams([examples[i] for i in idx])).score
    )


def _lcs_reference(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    @cache
    def go(i: int, j: int) -> int:
        if i == len(a) or j == len(b):
            return 0
        if a[i] == b[j]:
            return 1 + go(i + 1, j + 1)
        return max(go(i + 1, j), go(i, j + 1))

    return go(0, 0)


def test_rouge_l_by_hand_and_against_a_reference_lcs() -> None:
    # LCS("the cat sat on the mat", "the cat on the mat") = 5: P = 5/6, R = 1, F = 10/11.
    assert M.rouge_l("The cat sat on the mat.", "the cat on the mat") == pytest.approx(10 / 11)
    assert M.rouge_l("", "anything") == 0.0
    assert M.rouge_l("a b", "c d") == 0.0
    rng = random.Random(3)
    for _ in range(200):
        p = tuple(rng.choice("abcde") for _ in range(rng.randint(1, 12)))
        r = tuple(rng.choice("abcde") for _ in range(rng.randint(1, 12)))
        lcs = _lcs_reference(p, r)
        want = 0.0 if lcs == 0 else 2 * (lcs / len(p)) * (lcs / len(r)) / (lcs / len(p) + lcs / len(r))
        assert M.rouge_l(" ".join(p), " ".join(r)) == pytest.approx(want, abs=1e-12)


def test_rouge_l_takes_the_best_reference_and_averages() -> None:
    examples = [
        Example(id="1", input="", target=("x y z", "the cat on the mat")),
        Example(id="2", input="", target="hello world"),
    ]
    got = R.compute("rouge_l", "generation", ["the cat sat on the mat", None], examples)
    assert got == pytest.approx((10 / 11 + 0.0) / 2)


# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    ("output", "want"),
    [
        ('{"name": "Ada", "age": 36}', {"name": "Ada", "age": "36"}),
        (
            'Sure!\n```json\n{"name": "Ada",\n "city": "London",}\n```\nAnything else?',
            {"name": "Ada", "city": "London"},
        ),
        (
            'The fields are {"a": true, "b": null, "c": [1, 2]} as asked.',
            {"a": "true", "b": "", "c": "[1, 2]"},
        ),
        ('{"outer": {"k": 1}} then {"second": 1}', {"outer": '{"k": 1}'}),
        ('{broken} and then {"ok": "yes"}', {"ok": "yes"}),
        ("no json here", None),
        ("[1, 2, 3]", None),
        ('{"unterminated": "x"', None),
        ("", None),
    ],
)
def test_extract_json_object(output: str, want: dict[str, str] | None) -> None:
    assert X.extract_answer(output, "extraction") == want


def test_extract_json_restricts_to_the_suite_fields() -> None:
    got = X.extract_answer(
        '{"Name": "Ada", "invoice_id": 7, "notes": "x"}', "extraction", fields=("name", "invoice id")
    )
    assert got == {"name": "Ada", "invoice id": "7"}


def test_extraction_micro_f1_and_exact_match_by_hand() -> None:
    examples = [
        Example(id="1", input="", target={"name": "Ada Lovelace", "year": 1815}),
        Example(id="2", input="", target={"name": "Alan", "city": "London", "year": "1912"}),
        Example(id="3", input="", target={"name": "Grace"}),
    ]
    answers = [
        {"name": " ada  lovelace ", "year": "1815.0"},  # 2 tp (case, spaces, number form)
        {"name": "Alan", "city": "Paris", "extra": "x"},  # 1 tp, 2 fp, 2 fn
        None,  # invalid: 1 fn
    ]
    rows = R.metric_stats("f1", "extraction", answers, examples)
    assert rows.tolist() == [[2, 0, 0], [1, 2, 2], [0, 0, 1]]
    tp, fp, fn = 3, 2, 3
    assert R.compute("f1", "extraction", answers, examples) == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert R.metric_stats("exact_match", "extraction", answers, examples)[:, 0].tolist() == [1.0, 0.0, 0.0]
    assert M.correct_vector("extraction", answers, examples).tolist() == [True, False, False]


# --------------------------------------------------------------------------- contract


def test_unknown_metric_names_the_known_ones() -> None:
    with pytest.raises(HarnessError, match="unknown metric 'meteor'; known: accuracy, f1, bleu, rouge_l, chrf, exact_match"):
        R.metric_stats("meteor", "qa", [], [])
    with pytest.raises(HarnessError, match=r"unknown metric 'rouge-l' \(did you mean 'rouge_l'\?\)"):
        R.aggregate("rouge-l", "qa", np.zeros((1, 1)))


def test_exact_match_is_an_alias_of_accuracy() -> None:
    assert get_metric("exact_match") is get_metric("accuracy")
    assert "exact_match" in metric_names()
    hyps, examples = _text_examples(2, 30, 2)
    assert R.metric_stats("exact_match", "qa", hyps, examples).tolist() == R.metric_stats("accuracy", "qa", hyps, examples).tolist()


def test_builtin_metric_properties() -> None:
    """Scale, direction and display format live on the metric (tables and the gate read them)."""
    want = {"accuracy": (1.0, ".3f"), "f1": (1.0, ".3f"), "rouge_l": (1.0, ".3f"), "bleu": (100.0, ".1f"),
            "chrf": (100.0, ".1f")}
    for name, (scale, spec) in want.items():
        m = get_metric(name)
        assert (m.scale, m.format_spec, m.higher_is_better) == (scale, spec, True)
        assert m.tasks == ("classification", "extraction", "qa", "generation")
    assert get_metric("accuracy").paired_test == "mcnemar_exact"
    assert get_metric("bleu").paired_test == "paired_bootstrap"
    assert get_metric("bleu").format(31.416) == "31.4" and get_metric("f1").format(0.8125) == "0.812"


@pytest.mark.parametrize("task", ["classification", "extraction", "qa", "generation"])
@pytest.mark.parametrize("name", ["accuracy", "f1", "bleu", "rouge_l", "chrf", "exact_match"])
def test_every_metric_scores_invalid_answers_without_crashing(task: str, name: str) -> None:
    target = {"a": "1"} if task == "extraction" else "billing" if task == "classification" else ("x y", "z")
    examples = [Example(id=str(i), input="", target=target) for i in range(3)]
    value = R.compute(name, task, [None, None, None], examples, LABELS)
    assert value == 0.0
    assert 0.0 <= value <= (get_metric(name).scale or 1.0)
    assert np.isnan(R.aggregate(name, task, R.metric_stats(name, task, [], [], LABELS), LABELS))


def test_example_scores_per_task() -> None:
    """The per-example score of the report views: right/wrong for labels, F1 where partly right."""
    from harness.core.runrecord import graded
    from harness.scoring.metrics import example_scores

    cls = [Example(id="1", input="", target="a"), Example(id="2", input="", target="b")]
    assert example_scores("classification", ["a", None], cls).tolist() == [1.0, 0.0]
    assert not graded("classification") and graded("qa")

    gold = {"city": "Paris", "date": "today", "time": ""}
    ext = [Example(id=str(i), input="", target=gold) for i in range(4)]
    got = example_scores("extraction", [{"city": "paris", "date": "today"}, {"city": "Paris"}, None, {}], ext)
    assert got.tolist() == [1.0, pytest.approx(2 / 3), 0.0, 0.0]  # empty "time" is an absent field
    assert example_scores("extraction", [{}], [Example(id="e", input="", target={})]).tolist() == [1.0]

    refs = ("the cat sat on the mat", "a dog ran")
    qa = [Example(id="q", input="", target=refs)] * 3
    answers = ["cat sat on mat", "dog", None]
    want = [squad_metric_max_over_ground_truths(squad_f1_score, answers[0], refs),
            squad_metric_max_over_ground_truths(squad_f1_score, answers[1], refs), 0.0]
    assert example_scores("qa", answers, qa).tolist() == pytest.approx(want)
    assert want[1] == pytest.approx(2 * 1 * 0.5 / 1.5)  # "dog" against "dog ran" beats the cat reference


def test_vectorised_bleu_equals_sacrebleu_on_edge_cases() -> None:
    """Every branch of sacrebleu's compute_bleu: no hypothesis, no match, an order with no n-grams,
    orders with zero matches (exp smoothing), brevity penalty on and off."""
    rng = np.random.default_rng(0)
    rows = [[0, 5, 0, 0, 0, 0, 0, 0, 0, 0], [4, 4, 0, 0, 0, 0, 4, 3, 2, 1], [3, 9, 2, 1, 0, 0, 3, 2, 1, 0],
            [9, 7, 5, 0, 2, 0, 9, 8, 7, 6], [2, 2, 2, 1, 0, 0, 2, 1, 0, 0]]
    for _ in range(300):
        total = rng.integers(0, 12, size=4)
        correct = np.minimum(total, rng.integers(0, 12, size=4)) * (rng.random(4) > 0.3)
        rows.append([int(total[0]), int(rng.integers(0, 15)), *correct.tolist(), *total.tolist()])
    sums = np.array(rows, dtype=np.float64)
    want = [BLEU.compute_bleu(r[2:6], r[6:10], r[0], r[1], smooth_method="exp").score for r in rows]
    assert np.allclose(bleu_chrf._bleu_many(sums), want, rtol=1e-12, atol=1e-12)


def test_chrf_and_bleu_equal_sacrebleu_on_edge_cases() -> None:
    """chrF is computed here (sacrebleu has no public per-segment statistics) and BLEU's statistics
    come from per-segment public scores: both must stay equal to sacrebleu's corpus scores, bit
    for bit, on the awkward cases too."""
    cases: list[tuple[list[str], list[tuple[str, ...]]]] = [
        ([""], [("a reference",)]),  # empty hypothesis
        (["text"], [("",)]),  # empty reference
        ([""], [("",)]),
        (["  \t "], [("x",)]),  # whitespace only: no character n-grams
        (["ab"], [("abcdefgh",)]),  # shorter than the n-gram orders
        (["Ünïcödé text ✓", "naïve café"], [("unicode text", "Ünïcödé"), ("naive cafe", "naïve café")]),
        (["same", "same"], [("same", "same"), ("other", "same")]),  # ties between references
        (["the cat sat"], [("cat the sat", "the dog sat", "the cat sat on")]),
    ]
    for hyps, refs in cases:
        examples = [Example(id=str(i), input="", target=r) for i, r in enumerate(refs)]
        for name, ref_fn in (("chrf", sacrebleu.corpus_chrf), ("bleu", sacrebleu.corpus_bleu)):
            assert R.compute(name, "generation", hyps, examples) == ref_fn(hyps, _streams(examples)).score, (name, hyps)
    for seed in range(20):
        hyps, examples = _text_examples(100 + seed, 8, 4)
        assert R.compute("chrf", "generation", hyps, examples) == sacrebleu.corpus_chrf(hyps, _streams(examples)).score
        assert R.compute("bleu", "generation", hyps, examples) == sacrebleu.corpus_bleu(hyps, _streams(examples)).score


def test_hostile_model_output_is_an_unparsable_answer() -> None:
    """A model can emit thousands of nested brackets or digits: no answer, never a crash."""
    from harness.scoring.extract import parse_json_object

    assert parse_json_object('{"a": ' + "[" * 5000 + "]" * 5000 + "}") is None
    assert parse_json_object('{"a": ' + "9" * 5000 + "}") is None
    assert parse_json_object('x {"a": "b",} y') == {"a": "b"}
