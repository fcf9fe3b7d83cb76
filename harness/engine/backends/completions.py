"""Continuation scores from an OpenAI-compatible `/completions` endpoint (answer=choice on a served model).

The legacy completions API returns the log-probability of every prompt token with `echo: true` and
`logprobs`. The prompt is rendered here with a local tokenizer of the served model (the [[models]]
table's `tokenizer`: the same chat template, or the plain format of a base model), the
continuation is the label as the model's reply ending with its end-of-turn marker, and the label's
score is the sum of the log-probabilities of the tokens that lie in the continuation's characters.

Not every server gets this right: llama-cpp-python's server shifts prompt log-probabilities by one
token for models without a BOS token (it scores each token with the distribution that follows it).
`probe` therefore checks, before the first real request, that the endpoint's echoed log-probability
of a token equals the log-probability it gave that token when it generated it; an endpoint that
fails the check is refused in one line naming the fallback (answer=constrained).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from harness.core.errors import HarnessError
from harness.core.types import ContinuationScores, ScoreRequest
from harness.engine.prompting import adds_bos, answer_ids, render_chat

PROBE = [{"role": "user", "content": "Name a colour."}]
TOLERANCE = 0.05  # nats: quantised servers repeat themselves exactly; float noise is far below this


def _logprobs(body: Any) -> tuple[list[int], list[float | None]]:
    """(text offset, log-probability) of every echoed prompt token; the generated token(s) at the
    end are left out (their offsets can fall inside the prompt's text: an end token renders as '')."""
    try:
        lp = body["choices"][0]["logprobs"]
        generated = int((body.get("usage") or {}).get("completion_tokens") or 1)
        offsets = [int(x) for x in lp["text_offset"]]
        values = [None if v is None else float(v) for v in lp["token_logprobs"]]
    except (KeyError, IndexError, TypeError, ValueError):
        raise HarnessError(f"the endpoint returned no log-probabilities ({str(body)[:120]!r})") from None
    return offsets[: len(offsets) - generated], values[: len(values) - generated]


def _prompt(tokenizer: Any, chat: Any) -> str:
    """The rendered prompt without a leading BOS token: the endpoint adds the model's own."""
    text = render_chat(tokenizer, chat)
    bos = getattr(tokenizer, "bos_token", None)
    return text[len(bos):] if bos and adds_bos(tokenizer) and text.startswith(bos) else text


class CompletionScorer:
    """Scores label continuations through `post(path, payload) -> body` of an OpenAI backend."""

    def __init__(self, backend: Any, tokenizer: Any, end_ids: Sequence[int]) -> None:
        self.backend, self.tokenizer, self.end_ids = backend, tokenizer, list(end_ids)

    def _request(self, prompt: str, *, echo: bool) -> Any:
        return self.backend.post_json("/completions", {"model": self.backend.model, "prompt": prompt, "max_tokens": 1,
                                                      "temperature": 0, "logprobs": 1, "echo": echo})

    def probe(self) -> None:
        """Refuse an endpoint whose echoed prompt log-probabilities are not the model's."""
        where = f"the server at {self.backend.base_url} (model {self.backend.model})"
        prompt = _prompt(self.tokenizer, PROBE)
        body = self._request(prompt, echo=False)
        try:
            token = body["choices"][0]["logprobs"]["tokens"][0]
            generated = float(body["choices"][0]["logprobs"]["token_logprobs"][0])
        except (KeyError, IndexError, TypeError, ValueError):
            raise HarnessError(f"{where} gives no log-probabilities on /completions (prompt_logprobs = true): use "
                               "answer=constrained with it") from None
        echo = self._request(prompt + str(token), echo=True)
        offsets, values = _logprobs(echo)
        echoed = next((v for o, v in zip(offsets, values, strict=False) if o == len(prompt)), None)
        if echoed is None or not math.isclose(echoed, generated, abs_tol=TOLERANCE):
            raise HarnessError(f"{where} echoes prompt log-probabilities that are not the model's (token {token!r}: "
                               f"{generated:.3f} when generated, {echoed} when echoed; llama-cpp-python shifts them by "
                               "one token for models without a BOS token): answer=choice cannot score on it, use "
                               "answer=constrained")

    def score(self, request: ScoreRequest) -> ContinuationScores:
        if request.prompt is None:
            raise HarnessError("the openai backend scores labels after a prompt, not plain text (perplexity)")
        prompt = _prompt(self.tokenizer, request.prompt)
        rendered = render_chat(self.tokenizer, request.prompt)
        logprobs, tokens = [], []
        for label in request.continuations:
            ids = answer_ids(self.tokenizer, request.prompt, label, self.end_ids, rendered)
            cont = self.tokenizer.decode(ids, skip_special_tokens=False)
            offsets, values = _logprobs(self._request(prompt + cont, echo=True))
            inside = [v for o, v in zip(offsets, values, strict=False) if len(prompt) <= o < len(prompt) + len(cont)]
            if not inside or any(v is None for v in inside):
                raise HarnessError(f"the server at {self.backend.base_url} returned no log-probability for the "
                                   f"continuation {label!r}")
            logprobs.append(float(sum(v for v in inside if v is not None)))
            tokens.append(len(inside))
        n_prompt = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return ContinuationScores(tuple(logprobs), tuple(tokens), n_prompt, 0.0)
