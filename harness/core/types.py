"""Core types shared by every part of the harness.

Frozen dataclasses: a suite, an example, a prediction never change once built, so they can be
hashed, cached and passed between strategies without defensive copies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from harness.core.judges import JudgeSpec

Task = Literal["classification", "extraction", "qa", "generation"]
TASKS: tuple[str, ...] = ("classification", "extraction", "qa", "generation")

# A target is one reference string, several references, or a dict of fields (extraction).
Target = str | tuple[str, ...] | dict[str, Any]
# A chat is what a chat template consumes: [{"role": "system"|"user"|"assistant", "content": str}].
Message = dict[str, str]
Chat = list[Message]


@dataclass(frozen=True)
class Example:
    id: str
    input: str
    target: Target
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    doc_ids: tuple[str, ...] = ()

    def references(self) -> tuple[str, ...]:
        """The target as a tuple of reference strings (dict targets are serialised as JSON)."""
        if isinstance(self.target, str):
            return (self.target,)
        if isinstance(self.target, tuple):
            return self.target
        import json

        return (json.dumps(self.target, ensure_ascii=False, sort_keys=True),)


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str = ""


ANSWER_MODES = ("free", "choice", "constrained")
CHOICE_NORMS = ("sum", "mean")


@dataclass(frozen=True)
class AnswerMode:
    """How a strategy's answer comes out of the model, the same for every strategy that names it:
    `free` text parsed afterwards (the default), `choice` (classification: every label scored as
    the model's reply, the most likely wins; `norm` sums or averages its token log-probabilities,
    `calibrate` divides by the label probabilities under content-free inputs, Zhao et al. 2021), or
    `constrained` (decoding limited to the label set or a JSON schema of the suite's fields)."""

    mode: str = "free"
    norm: str = "sum"
    calibrate: bool = False

    def fingerprint(self) -> dict[str, Any] | None:
        """What cached predictions depend on; None for free decoding (its cache keys stay as they were)."""
        if self.mode == "free":
            return None
        if self.mode == "constrained":
            return {"mode": self.mode}
        return {"mode": self.mode, "norm": self.norm, "calibrate": self.calibrate}

    def label(self) -> str:
        """`choice (mean, calibrated)`, as reports name the mode."""
        if self.mode != "choice":
            return self.mode
        extras = [x for x in (self.norm if self.norm != "sum" else "", "calibrated" if self.calibrate else "") if x]
        return f"choice ({', '.join(extras)})" if extras else "choice"


CONSTRAINT_KINDS = ("choice", "json")
GRAMMAR_VERSION = 1  # bump when the grammar built from a constraint changes: cached answers follow


@dataclass(frozen=True)
class Constraint:
    """What constrained decoding allows: `choice` (exactly one of `labels`, then the end of the
    turn) or `json` (an object whose keys are among `fields`, in that order, each at most once,
    string values of at most `max_value_chars` characters; with no fields, any keys). Backends
    turn it into their own form: a grammar (transformers, harness.engine.constrain), guided
    decoding (vLLM), `response_format` (OpenAI-compatible servers). A constraint no answer can
    satisfy is refused when it is made (HarnessError)."""

    labels: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    kind: str = "choice"  # choice | json
    max_value_chars: int = 80  # a field's value at most: a degenerate model cannot write one forever

    def __post_init__(self) -> None:
        from harness.core.errors import HarnessError

        if self.kind not in CONSTRAINT_KINDS:
            raise HarnessError(f"constraint kind {self.kind!r}: expected one of {', '.join(CONSTRAINT_KINDS)}")
        names, what = (self.labels, "label") if self.kind == "choice" else (self.fields, "field")
        if self.kind == "choice" and not names:
            raise HarnessError("answer=constrained needs at least one label: the suite lists none")
        for name in names:
            if not isinstance(name, str) or not name.strip():
                raise HarnessError(f"answer=constrained: {what} {name!r} is empty")
            if self.kind == "choice" and name != name.strip():  # the answer is compared stripped
                raise HarnessError(f"answer=constrained: label {name!r} has leading or trailing whitespace")
        if len(set(names)) != len(names):
            raise HarnessError(f"answer=constrained: a {what} is listed twice in {list(names)}")
        if self.max_value_chars < 1:
            raise HarnessError(f"answer=constrained: max_value_chars must be at least 1, not {self.max_value_chars}")

    @classmethod
    def choice(cls, labels: Iterable[str]) -> Constraint:
        return cls(labels=tuple(labels), kind="choice")

    @classmethod
    def json_object(cls, fields: Iterable[str], max_value_chars: int = 80) -> Constraint:
        return cls(fields=tuple(fields), kind="json", max_value_chars=max_value_chars)

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema servers take (OpenAI-compatible `response_format`, vLLM guided decoding).
        A choice is a JSON string there (the label in quotes); locally it is the bare label."""
        if self.kind == "choice":
            return {"type": "string", "enum": list(self.labels)}
        value = {"type": "string", "maxLength": self.max_value_chars}
        if not self.fields:  # an extraction suite that names no fields: any keys, string values
            return {"type": "object", "additionalProperties": value}
        return {"type": "object", "properties": {f: dict(value) for f in self.fields}, "additionalProperties": False}

    to_json_schema = json_schema

    def max_new_tokens(self, suite_budget: int) -> int:
        """Room for a complete answer: a JSON object of every field at full length would not fit
        the budget a free answer gets (the schema's keys come in order, the model tends to fill
        them all), and a cut object would not parse."""
        if self.kind == "choice":
            return suite_budget
        per_field = 8 + self.max_value_chars // 3  # the key and its quotes, a value of about 3 characters a token
        return min(max(suite_budget, 8 + per_field * max(len(self.fields), 4)), 2048)

    def fingerprint(self) -> dict[str, Any]:
        """What cached answers depend on (the value bound and the grammar's version included)."""
        return {"kind": self.kind, "labels": list(self.labels), "fields": list(self.fields),
                "max_value_chars": self.max_value_chars, "grammar": GRAMMAR_VERSION}


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    constraint: Constraint | None = None  # answer=constrained

    def fingerprint(self) -> dict[str, Any]:
        out: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "stop": list(self.stop), "decoding": "greedy"}
        if self.constraint is not None:  # free decoding keeps the cache keys it always had
            out["constraint"] = self.constraint.fingerprint()
        return out


@dataclass(frozen=True)
class Suite:
    name: str
    task: Task
    instruction: str
    labels: tuple[str, ...]  # classification: the label set
    metrics: tuple[str, ...]  # the first one is the primary metric
    generation: GenerationConfig
    train: tuple[Example, ...]
    test: tuple[Example, ...]
    validation: tuple[Example, ...] = ()
    corpus: tuple[Document, ...] = ()
    description: str = ""
    fields: tuple[str, ...] = ()  # extraction: the field names the JSON answer may use
    path: Path | None = None
    sha256: str = ""
    # Hash of each part on its own, so caches can key on exactly what they depend on.
    part_sha256: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    primary_declared: str | None = None  # suite.toml's primary_metric, when it sets one
    # [[judges]]: judged metrics; the run's plan appends the names of those it runs to `metrics`.
    judges: tuple[JudgeSpec, ...] = ()

    @property
    def primary_metric(self) -> str:
        """What the recommendation decides on: suite.toml's `primary_metric` when set, else the
        task's natural metric among those listed (F1 for qa and extraction; accuracy for
        classification, macro-F1 when one of several labels holds more than half of the test examples; BLEU,
        then chrF, for generation), else the first listed. Exact match on free text is almost
        always 0 for every strategy, so it must not decide a qa suite by being listed first."""
        if self.primary_declared and self.primary_declared in self.metrics:
            return self.primary_declared
        wanted: tuple[str, ...] = {
            "qa": ("f1",), "extraction": ("f1",), "generation": ("bleu", "chrf"),
            "classification": ("f1", "accuracy") if self._imbalanced() else ("accuracy", "f1"),
        }.get(self.task, ())
        return next((m for m in wanted if m in self.metrics), self.metrics[0])

    def _imbalanced(self) -> bool:
        from collections import Counter

        golds = Counter(ex.target for ex in self.test if isinstance(ex.target, str))
        # One label alone is no distribution to balance: accuracy says all there is.
        return len(golds) > 1 and max(golds.values()) > sum(golds.values()) / 2

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "test": len(self.test),
            "validation": len(self.validation),
            "corpus": len(self.corpus),
        }


@dataclass(frozen=True)
class Prompt:
    """What a strategy asks the shared engine to decode for one example.

    `retrieved` carries the corpus document ids the strategy put into the prompt, so retrieval
    is recorded on every prediction (DESIGN.md had `prompts()` return bare chats, which loses it).
    """

    messages: Chat
    retrieved: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generation:
    """One decoded output with its cost figures, as a model backend returns it.

    `error` is set when the backend could not produce the output (an API request that still
    failed after its retries): the text is empty, the example is recorded with that error and the
    generation is never cached, so a rerun asks again. `request_latency_s` is a real per-request
    latency where the backend has one (an API call); a batched local backend leaves it None.
    """

    text: str
    latency_s: float
    prompt_tokens: int
    output_tokens: int
    error: str | None = None
    request_latency_s: float | None = None
    choice_scores: tuple[float, ...] | None = None  # answer=choice: each label's score, in the suite's order


@dataclass(frozen=True)
class ScoreRequest:
    """Continuations to score after one prompt (`Backend.score`): the log-probability of each,
    given the prompt, as the model's reply. `prompt` None scores plain text from its start (BOS
    first where the model has one): perplexity. `max_tokens` cuts such a text (BOS included)."""

    prompt: Chat | None
    continuations: tuple[str, ...]
    max_tokens: int | None = None


@dataclass(frozen=True)
class ContinuationScores:
    """What `Backend.score` returns per request: each continuation's summed token log-probability
    (natural log) and its number of scored tokens, with the cost figures of a generation."""

    logprobs: tuple[float, ...]
    tokens: tuple[int, ...]
    prompt_tokens: int
    latency_s: float
    error: str | None = None


def scored_answer(answer: Any, error: str | None) -> Any:
    """What the metrics see of a prediction: one that failed (`error` set) is an invalid answer,
    None, scored as wrong like an unparseable output."""
    return None if error is not None else answer
