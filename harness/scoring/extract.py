"""From a raw model output to what the metrics see, and the normalisation the metrics compare with.

`extract_answer` turns a raw output into an answer (a label, a dict of fields, a string), or None
when the output is unusable. None is "invalid": it is scored as a wrong answer, never a crash.
The runner extracts each answer once, when it records the prediction; the metrics
(harness.scoring.metrics) only ever see answers.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Sequence
from typing import Any

from harness.core.text import normalize_label
from harness.core.types import Example

# --------------------------------------------------------------------------- normalisation


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lower, drop punctuation and articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_PUNCT = frozenset(string.punctuation)


def normalize_value(value: Any) -> str:
    """A field value as a comparable string: casefolded, whitespace collapsed, numbers canonical."""
    text = " ".join(_value_to_str(value).casefold().split())
    # "42", "42.0" and 42 are the same number; leave anything that is not a plain number alone.
    if re.fullmatch(r"[-+]?\d+(\.\d+)?", text):
        number = float(text)
        if math.isfinite(number):
            text = str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)
    return text


def normalize_field(name: str) -> str:
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


def references(example: Example) -> tuple[str, ...]:
    refs = tuple(r for r in example.references() if r is not None)
    return refs or ("",)  # no reference at all scores like an empty one instead of crashing


# --------------------------------------------------------------------------- extraction


def extract_answer(
    output: str | None, task: str, labels: Sequence[str] = (), fields: Sequence[str] = (), *, cut: bool = False
) -> Any | None:
    """What the metrics see for one raw output; None when the output is invalid.

    classification: the label the output names (see `_find_label`).
    extraction: the first JSON object in the output, values as strings (see `parse_json_object`);
        when `fields` is given, keys are matched to those names case-insensitively and other
        keys are dropped (the suite's fields define what is scored). With `cut` (constrained
        decoding, whose grammar only ever writes one object), an object that ran out of tokens
        keeps its complete members (`parse_json_prefix`).
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
        if obj is None and cut:  # answer=constrained: the object the grammar started, up to where tokens ran out
            obj = parse_json_prefix(output)
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
    # A model's output is untrusted: nesting past the recursion limit or a number of more digits
    # than Python converts is an unparsable answer, like any other bad JSON (ValueError covers both
    # that and JSONDecodeError).
    try:
        return decoder.raw_decode(text, start)[0]
    except (ValueError, RecursionError):
        pass
    # Retry with trailing commas removed, up to the first closing brace that makes it parse.
    for end in (i for i, ch in enumerate(text) if ch == "}" and i > start):
        fixed = _TRAILING_COMMA.sub(r"\1", text[start : end + 1])
        try:
            return json.loads(fixed)
        except (ValueError, RecursionError):
            continue
    return None


def parse_json_prefix(text: str) -> dict[str, str] | None:
    """The complete members of a JSON object that was cut off (a constrained answer that ran out of
    tokens inside the object): `{"city": "Paris", "country": "Fr` -> {"city": "Paris"}; None when the
    text holds no object at all. A whole object parses as it is."""
    start = text.find("{")
    if start < 0:
        return None
    decoder, i, out = json.JSONDecoder(), start + 1, {}
    while True:
        i = _skip_ws(text, i)
        try:
            key, i = decoder.raw_decode(text, i)
            i = _skip_ws(text, i)
            if text[i : i + 1] != ":":
                break
            value, i = decoder.raw_decode(text, _skip_ws(text, i + 1))
        except (ValueError, RecursionError):
            break
        if not isinstance(key, str):
            break
        out[key] = _value_to_str(value)
        i = _skip_ws(text, i)
        if text[i : i + 1] != ",":
            break
        i += 1
    return out


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _restrict_fields(obj: dict[str, str], fields: Sequence[str]) -> dict[str, str]:
    if not fields:
        return obj
    by_norm = {normalize_field(f): f for f in fields}
    out: dict[str, str] = {}
    for key, value in obj.items():
        name = by_norm.get(normalize_field(key))
        if name is not None and name not in out:
            out[name] = value
    return out

