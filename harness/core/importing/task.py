"""The task of imported rows (--task, or inferred from the targets), its label set or fields, its
metrics and the answer length to decode.

Inference, in this order (the thresholds are constants here, and the README's "Your own data"):
- extraction: every target is a JSON object of fields (an object, or text holding one).
- classification: 2 to MAX_LABELS distinct targets, each at most MAX_LABEL_WORDS words and
  MAX_LABEL_CHARS characters, and at least MIN_ROWS_PER_LABEL rows per label on average (a label
  set repeats; answers do not).
  Banking77's 77 intents fit; the short answers of a QA set (nearly one distinct per row) do not.
- qa: short answers (median at most SHORT_ANSWER_WORDS words), or questions (at least half the
  inputs end in "?") answered in at most LONG_ANSWER_WORDS words (median).
- generation: the rest (longer texts written from inputs that are not questions).
Length alone cannot tell qa from generation: the built-in support-faq answers run 40 words, the
e2e-nlg descriptions 24; whether the inputs are questions can.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.core.errors import HarnessError
from harness.core.importing.rows import Draft, RawTarget
from harness.core.suites.problems import _show
from harness.core.suites.toml import _field_key
from harness.core.text import normalize_label

MAX_LABELS = 100
MAX_LABEL_WORDS = 6
MAX_LABEL_CHARS = 64  # a snake_case intent name is one word: its length is capped instead
MIN_ROWS_PER_LABEL = 3
SHORT_ANSWER_WORDS = 10
QUESTION_SHARE = 0.5
LONG_ANSWER_WORDS = 80
# As the built-in suites do: classification is decided on accuracy, extraction and qa on F1,
# generation on BLEU (the first listed is the primary metric).
METRICS = {"classification": ("accuracy", "f1"), "extraction": ("f1", "exact_match"),
           "qa": ("f1", "bleu", "rouge_l"), "generation": ("bleu", "rouge_l", "chrf")}
# max_new_tokens: the 95th percentile of the targets' tokens (longest label for classification),
# plus a quarter and a margin, rounded up to a multiple of 8, within [MIN_TOKENS, MAX_TOKENS].
# Tokens are estimated without a tokenizer: the larger of words x 1.5 and characters / 4.
MIN_TOKENS, MAX_TOKENS = 8, 1024


@dataclass(frozen=True)
class TaskChoice:
    task: str
    reason: str  # "classification (12 distinct targets over 1,000 rows, all ≤ 4 words)"
    labels: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    label_of: dict[str, str] | None = None  # classification: each target spelling -> its label


def fields_of(target: RawTarget) -> dict[str, str] | None:
    """An extraction target: a flat JSON object (text holding one counts), values as text (null:
    the field is absent); None when the target is no such object."""
    obj: Any = target
    if isinstance(target, str):
        if not target.lstrip().startswith("{"):
            return None
        try:
            obj = json.loads(target)
        except (ValueError, RecursionError):
            return None
    if not isinstance(obj, dict):
        return None
    out = {}
    for name, value in obj.items():
        if not name.strip() or isinstance(value, list | dict):
            return None
        if value is not None:
            out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


def _words(text: str) -> int:
    return len(text.split())


def _label_spellings(targets: Sequence[str]) -> dict[str, str]:
    """Each spelling -> the label it counts as: spellings that differ only in case or spaces are one
    label, written as its most frequent spelling."""
    counts = Counter(targets)
    best: dict[str, str] = {}
    for spelling, _ in counts.most_common():  # most frequent first; ties in first-seen order
        best.setdefault(" ".join(spelling.casefold().split()), spelling)
    return {s: best[" ".join(s.casefold().split())] for s in counts}


def infer_task(rows: Sequence[Draft], forced: str | None) -> TaskChoice:
    targets = [r.target for r in rows]
    if forced == "extraction" or (forced is None and targets and all(fields_of(t) is not None for t in targets)):
        return _extraction(rows, forced)
    texts = [t for t in targets if isinstance(t, str)]
    if forced == "classification":
        bad = next((r for r in rows if not isinstance(r.target, str)), None)
        if bad is not None:
            raise HarnessError(f"--task classification: {bad.where}: the target is not one label (text)")
        return _classification(rows, "--task classification")
    if forced is None and len(texts) == len(targets):
        spellings = _label_spellings(texts)
        labels = set(spellings.values())
        words = max((_words(x) for x in labels), default=0)
        chars = max((len(x) for x in labels), default=0)
        if (2 <= len(labels) <= MAX_LABELS and words <= MAX_LABEL_WORDS and chars <= MAX_LABEL_CHARS
                and len(rows) >= MIN_ROWS_PER_LABEL * len(labels)):
            return _classification(rows, f"{len(labels)} distinct targets over {len(rows):,} rows, "
                                         f"each ≤ {words} word{'s' if words > 1 else ''} and ≤ {chars} characters")
    return _free_text(rows, forced)


def _classification(rows: Sequence[Draft], reason: str) -> TaskChoice:
    spellings = _label_spellings([str(r.target) for r in rows])
    labels = sorted(set(spellings.values()))
    seen: dict[str, str] = {}
    for label in labels:
        norm = normalize_label(label)
        if not norm:
            raise HarnessError(f"label '{_show(label)}' is only punctuation: no answer can name it; rename it "
                               "(or import with --task qa)")
        if norm in seen:
            raise HarnessError(f"labels '{_show(seen[norm])}' and '{_show(label)}' are one answer once normalised "
                               "(outputs are matched ignoring case, punctuation, '-' and '_'): rename one of them "
                               "(or import with --task qa)")
        seen[norm] = label
    merged = len(spellings) - len(labels)
    if merged:
        reason += f"; {merged} spelling(s) differing only in case or spaces counted as their label"
    return TaskChoice("classification", reason, tuple(labels), label_of=spellings)


def _extraction(rows: Sequence[Draft], forced: str | None) -> TaskChoice:
    names: dict[str, str] = {}  # field key (as matched) -> the first spelling
    for r in rows:
        fields = fields_of(r.target)
        if fields is None:
            raise HarnessError(f"--task extraction: {r.where}: the target is not a JSON object of fields")
        for name in fields:
            first = names.setdefault(_field_key(name), name)
            if first != name:
                raise HarnessError(f"{r.where}: fields '{_show(first)}' and '{_show(name)}' are one field once "
                                   "normalised (case, '_' and '-' are ignored when answers are matched): use one")
    reason = "--task extraction" if forced else "every target is a JSON object"
    return TaskChoice("extraction", f"{reason}; {len(names)} field(s)", fields=tuple(sorted(names.values())))


def _free_text(rows: Sequence[Draft], forced: str | None) -> TaskChoice:
    lengths = [max(_words(x) for x in _refs(r.target)) for r in rows]
    median = statistics.median(lengths) if lengths else 0
    questions = sum(r.input.rstrip().endswith("?") for r in rows) / max(len(rows), 1)
    distinct = len({json.dumps(r.target, sort_keys=True) for r in rows})
    about = f"median target {median:g} words, {questions:.0%} of inputs end in '?'"
    if forced:
        return TaskChoice(forced, f"--task {forced}; {about}")
    if median <= SHORT_ANSWER_WORDS:
        return TaskChoice("qa", f"short answers: {about}; {distinct:,} distinct targets over {len(rows):,} rows "
                                "are no label set")
    if questions >= QUESTION_SHARE and median <= LONG_ANSWER_WORDS:
        return TaskChoice("qa", f"questions answered: {about}")
    return TaskChoice("generation", f"longer texts, not answers to questions: {about}")


def _refs(target: RawTarget) -> tuple[str, ...]:
    if isinstance(target, str):
        return (target,)
    if isinstance(target, tuple):
        return target
    return (json.dumps(target, ensure_ascii=False),)


def final_target(target: RawTarget, choice: TaskChoice) -> str | list[str] | dict[str, str]:
    """The target as the suite stores it: a label, a field object, or text / references."""
    if choice.task == "classification":
        assert choice.label_of is not None and isinstance(target, str)
        return choice.label_of[target]
    if choice.task == "extraction":
        fields = fields_of(target)
        assert fields is not None
        return fields
    if isinstance(target, dict):
        return json.dumps(target, ensure_ascii=False)
    return list(target) if isinstance(target, tuple) else target


def estimate_tokens(text: str) -> int:
    return math.ceil(max(_words(text) * 1.5, len(text) / 4))


def max_new_tokens(targets: Sequence[str | list[str] | dict[str, str]], choice: TaskChoice) -> tuple[int, str]:
    """[generation] max_new_tokens from the answers' lengths, and how it was chosen."""
    if choice.task == "classification":
        base, margin = max(estimate_tokens(label) for label in choice.labels), 4
        how = f"longest label ≈ {base} tokens"
    else:
        sizes = sorted(max(estimate_tokens(x) for x in _refs(_raw(t))) for t in targets)
        base, margin = sizes[min(len(sizes) - 1, math.ceil(0.95 * len(sizes)) - 1)], 8
        how = f"95th percentile of targets ≈ {base} tokens"
    value = math.ceil((math.ceil(base * 1.25) + margin) / 8) * 8
    capped = f", capped at {MAX_TOKENS}" if value > MAX_TOKENS else ""
    value = min(max(value, MIN_TOKENS), MAX_TOKENS)
    return value, f"{how} as words × 1.5 or characters / 4, + 25% + {margin}{capped}"


def _raw(target: str | list[str] | dict[str, str]) -> RawTarget:
    return tuple(target) if isinstance(target, list) else target
