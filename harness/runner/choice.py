"""answer=choice: every label scored as the model's reply to the strategy's prompt, the most likely wins.

Scores come from `Backend.score` (one prompt, every label a continuation: the prompt's key/value
cache is shared where the backend can), summed over the label's tokens (`choice_norm=sum`, the
default: it measured better on the default model) or averaged (`mean`). They are cached as
generations whose text is the winning label and whose `choice_scores` keep every label's score, so
the report can draw the confusion matrix and a reliability plot from them.

`calibrate=true` is contextual calibration (Zhao et al. 2021): the label probabilities under
content-free inputs ("N/A", "", "[MASK]" in the strategy's own prompt: the same shots and
passages machinery) estimate the model's prior for each label, and every example's probabilities
are divided by it before the argmax.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from harness.core.predcache import prompt_key
from harness.core.types import ContinuationScores, Example, Generation, ScoreRequest

if TYPE_CHECKING:
    from harness.runner.decode import _Decoding

CONTENT_FREE = ("N/A", "", "[MASK]")


def _log_softmax(values: Sequence[float]) -> list[float]:
    top = max(values)
    total = math.log(sum(math.exp(v - top) for v in values)) + top
    return [v - total for v in values]


def generation(s: ContinuationScores, labels: Sequence[str], norm: str) -> Generation:
    """A label choice as a cached generation: the winner's text, every label's score; the tokens read
    count as prompt tokens (nothing is generated)."""
    if s.error is not None or len(s.logprobs) != len(labels):
        return Generation("", s.latency_s, s.prompt_tokens, 0, error=s.error or "the backend scored no label")
    scores = [lp / max(n, 1) if norm == "mean" else lp for lp, n in zip(s.logprobs, s.tokens, strict=True)]
    best = max(range(len(labels)), key=lambda i: scores[i])
    return Generation(labels[best], s.latency_s, s.prompt_tokens + sum(s.tokens), 0, choice_scores=tuple(scores))


def decided(g: Generation, labels: Sequence[str], prior: Sequence[float] | None) -> tuple[str, tuple[float, ...]]:
    """The label an example's scores choose, and the scores that chose it (calibrated by `prior`,
    the content-free label probabilities, when given: log p(label | x) - log prior(label))."""
    scores = list(g.choice_scores or ())
    if prior is None or not scores:
        return g.text, tuple(scores)
    calibrated = [lp - math.log(max(p, 1e-300)) for lp, p in zip(_log_softmax(scores), prior, strict=True)]
    best = max(range(len(labels)), key=lambda i: calibrated[i])
    return labels[best], tuple(calibrated)


def score_labels(decoding: _Decoding, todo: list[int], on_batch: Callable[[list[int], list[Generation]], None]) -> None:
    """Score every label after each prompt in `todo` (positions in decoding's lists); `on_batch`
    receives generations, as decoding gives them, so caching and flushing are the same."""
    labels, norm = decoding.suite.labels, decoding.answer.norm
    requests = [ScoreRequest(decoding.prompts[i].messages, tuple(labels)) for i in todo]

    def on_scored(indices: list[int], scores: list[ContinuationScores]) -> None:
        on_batch(indices, [generation(s, labels, norm) for s in scores])

    decoding.backend.score(requests, on_batch=on_scored)


def content_free(decoding: _Decoding) -> list[float]:
    """The mean label probabilities of the strategy's prompts for content-free inputs (cached like
    any prompt's scores; scored now with the strategy's adapter when they are not)."""
    labels, norm = decoding.suite.labels, decoding.answer.norm
    prompts = decoding.strategy.prompts([Example(f"content-free-{i}", text, "") for i, text in enumerate(CONTENT_FREE)])
    keys = [prompt_key(p.messages) for p in prompts]
    gens: list[Any] = [decoding.cache.get(k) for k in keys]
    todo = [i for i, g in enumerate(gens) if g is None]
    if todo:
        with decoding.backend.adapter(decoding.adapter):
            scored = decoding.backend.score([ScoreRequest(prompts[i].messages, tuple(labels)) for i in todo])
        fresh = [generation(s, labels, norm) for s in scored]
        decoding.cache.add_many([(keys[i], g) for i, g in zip(todo, fresh, strict=True)])
        for i, g in zip(todo, fresh, strict=True):
            gens[i] = g
    probs = [[math.exp(v) for v in _log_softmax(g.choice_scores)] for g in gens if g.choice_scores]
    if not probs:
        return [1.0 / len(labels)] * len(labels)  # nothing scored: no calibration at all
    return [sum(p[j] for p in probs) / len(probs) for j in range(len(labels))]
