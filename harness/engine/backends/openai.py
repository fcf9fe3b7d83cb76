"""A backend for any OpenAI-compatible `/v1/chat/completions` endpoint (OpenAI, vLLM's server,
llama.cpp's server, Ollama, TGI), over httpx.

Requests run concurrently (`max_concurrency` threads sharing one connection pool), each with a
timeout, retried with exponential backoff and jitter on 429, 5xx and connection errors (a
`Retry-After` in seconds or as an HTTP date is honoured). Decoding is greedy (temperature 0);
`max_tokens` and the stop strings come from the suite. A request that still fails after its
retries becomes that example's error (the run goes on, the report counts it, the cache skips it);
an error that will not get better (a refused key, a model the server does not serve) raises
`HarnessError` at once, which the command line shows in one line with exit code 2.

The API key is read from the environment variable the user names, once, and lives only in the
HTTP client's headers: it is in no description, message, log, cache identity or file.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

import httpx

from harness.core.config import ModelOption, ModelSpec
from harness.core.errors import HarnessError
from harness.core.types import Chat, ContinuationScores, Generation, GenerationConfig, ScoreRequest
from harness.engine.backends.base import CONSTRAIN, SCORE, Backend, BuildContext, OnBatch, OnScored
from harness.engine.backends.completions import CompletionScorer
from harness.engine.backends.retry import RetryPolicy, _detail, _Failed, _Transient, retry_after_s
from harness.engine.generate import truncate_at_stop

MAX_STOP = 4  # OpenAI accepts at most 4 stop strings; the rest are applied to the text here
CHARS_PER_TOKEN = 4  # count_tokens without a tokenizer: the usual rule of thumb for English text
_PRICE_HINT = " (local models use [cost] device_hour_usd)"


def _price(key: str) -> ModelOption:
    return ModelOption((int, float), "a price in USD per million tokens", lambda v: math.isfinite(v) and v >= 0,
                       "a price of 0 or more", hint=_PRICE_HINT)


def _json_string(text: str) -> str:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def _local_tokenizer(ref: str, ctx: BuildContext) -> Any:
    """The [[models]] table's `tokenizer`: a local model's tokenizer (its weights are never loaded)."""
    from harness.engine.models import load_tokenizer, materialize, resolve

    return load_tokenizer(materialize(resolve(ref, "tokenizer")), ctx.trust_remote_code)


class OpenAIBackend(Backend):
    """Greedy decoding through an OpenAI-compatible server; no adapters, no local weights."""

    name = "openai"
    options = {
        "base_url": ModelOption((str,), 'the server\'s address, e.g. "http://127.0.0.1:8080/v1"', required=True),
        "api_key_env": ModelOption((str,), "the name of the environment variable that holds the API key"),
        "max_concurrency": ModelOption((int,), "a whole number, at least 1", lambda v: v >= 1, "at least 1"),
        "usd_per_1m_input": _price("usd_per_1m_input"),
        "usd_per_1m_output": _price("usd_per_1m_output"),
        "tokenizer": ModelOption((str,), "a local model (alias, folder or hub id) whose tokenizer and chat template "
                                          "are the served model's: token counts, and prompts for answer=choice"),
        "prompt_logprobs": ModelOption((bool,), "true when the endpoint's /completions echoes prompt log-probabilities "
                                                "(answer=choice; checked before the first request)"),
    }
    capabilities = frozenset({CONSTRAIN})  # response_format with a JSON schema

    @classmethod
    def can(cls, capability: str, spec: ModelSpec | None = None) -> bool:
        if capability == SCORE:  # only where the table says the endpoint gives prompt log-probabilities
            return spec is not None and bool(spec.option("prompt_logprobs"))  # check_spec asks for its tokenizer
        return super().can(capability, spec)

    @classmethod
    def check_spec(cls, spec: ModelSpec, *, device: str, where: str) -> None:
        from harness.engine.models import check_model_ref

        if spec.option("prompt_logprobs") and not spec.option("tokenizer"):
            raise HarnessError(f"{where}: prompt_logprobs = true needs tokenizer = a local model with the served "
                               "model's tokenizer and chat template (to render the prompts it scores)")
        if spec.option("tokenizer"):
            check_model_ref(str(spec.option("tokenizer")), f"{where}: tokenizer")

    @classmethod
    def build(cls, spec: ModelSpec, ctx: BuildContext) -> OpenAIBackend:
        """The server, the key and the model name are checked now, before any decoding; with
        prompt_logprobs, also that the endpoint's prompt log-probabilities are the model's."""
        tokenizer = _local_tokenizer(str(spec.option("tokenizer")), ctx) if spec.option("tokenizer") else None
        backend = cls(spec.id, str(spec.option("base_url")), api_key_env=spec.option("api_key_env"),
                      max_concurrency=int(spec.option("max_concurrency", 4)), tokenizer=tokenizer,
                      usd_per_1m_input=spec.option("usd_per_1m_input"), usd_per_1m_output=spec.option("usd_per_1m_output"))
        backend.check()
        if spec.option("prompt_logprobs"):
            from harness.engine.models import end_token_ids

            backend.scorer = CompletionScorer(backend, tokenizer, end_token_ids(tokenizer))
            backend.scorer.probe()
        return backend

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key_env: str | None = None,
        max_concurrency: int = 4,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        tokenizer: Any = None,
        usd_per_1m_input: float | None = None,
        usd_per_1m_output: float | None = None,
        check_model: bool = True,
    ):
        if max_concurrency < 1:
            raise HarnessError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.retry = retry or RetryPolicy()
        self.tokenizer = tokenizer  # anything a transformers tokenizer's call accepts; None: approximate
        self.prices = {"usd_per_1m_input": usd_per_1m_input, "usd_per_1m_output": usd_per_1m_output}
        self.truncated = 0  # the server fits prompts itself (or refuses them): nothing is cut here
        self._check_model = check_model
        self._checked = False
        self.scorer: CompletionScorer | None = None  # prompt_logprobs: continuation scores from /completions
        self._json_schema_format = True  # response_format as OpenAI's json_schema; llama-cpp-python wants json_object
        headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise HarnessError(f"the API key variable ${api_key_env} is not set (or empty) in the environment")
            headers["Authorization"] = f"Bearer {key}"  # held by the client only, never stored here
        limits = httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)
        self._client = httpx.Client(headers=headers, timeout=timeout_s, limits=limits)

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    # -- the interface -------------------------------------------------------------------------
    def identity(self) -> str:
        return f"openai:{self.base_url}:{self.model}"

    def record(self) -> dict[str, Any]:
        """The served model and where (never the key: the variable's name at most)."""
        return {"backend": self.name, "id": self.model, "served_model": self.model, "base_url": self.base_url,
                "api_key_env": self.api_key_env, **self.prices}

    def score(self, requests: Sequence[ScoreRequest], *, on_batch: OnScored | None = None) -> list[ContinuationScores]:
        """Each label's log-probability after its prompt, from /completions (see harness.engine.backends.completions)."""
        if self.scorer is None:
            return super().score(requests, on_batch=on_batch)
        out = []
        for i, request in enumerate(requests):
            start = time.perf_counter()
            scored = self.scorer.score(request)
            scored = ContinuationScores(scored.logprobs, scored.tokens, scored.prompt_tokens, time.perf_counter() - start)
            out.append(scored)
            if on_batch:
                on_batch([i], [scored])
        return out

    def post_json(self, path: str, payload: dict[str, Any]) -> Any:
        """One POST to `path` of the API with the retries of every request; the body, or a HarnessError."""
        for attempt in range(self.retry.retries + 1):
            try:
                return self._post(payload, path=path)
            except _Transient as e:
                if attempt == self.retry.retries:
                    raise HarnessError(f"{self.base_url}{path}: {e} (after {attempt + 1} attempts)") from None
                time.sleep(self.retry.wait_s(attempt, e.retry_after))
            except _Failed as e:
                raise HarnessError(f"{self.base_url}{path}: {e}") from None
        raise AssertionError("unreachable")

    def token_prices(self) -> tuple[float, float]:
        return (float(self.prices["usd_per_1m_input"] or 0.0), float(self.prices["usd_per_1m_output"] or 0.0))

    def count_tokens(self, text: str) -> int:
        """Tokens of `text`: by the local tokenizer when one was given, else about len(text)/4
        (servers have no common tokenizer endpoint; the usual English rule of thumb)."""
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def generate(
        self, chats: Sequence[Chat], config: GenerationConfig, *, on_batch: OnBatch | None = None
    ) -> list[Generation]:
        """Decode every chat, `max_concurrency` requests at a time; `on_batch` gets each group of
        requests finished since the last call. A refused key or unknown model raises at once."""
        self.check()
        results: list[Generation | None] = [None] * len(chats)
        stop = threading.Event()  # set on a fatal error: requests not yet sent are not sent
        pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="openai")
        pending = {pool.submit(self._one, chat, config, stop): i for i, chat in enumerate(chats)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                finished = sorted((pending.pop(f), f) for f in done)  # indices are unique: futures never compared
                gens = [f.result() for _, f in finished]  # a fatal HarnessError surfaces here
                indices = [i for i, _ in finished]
                for i, g in zip(indices, gens, strict=True):
                    results[i] = g
                if on_batch:
                    on_batch(indices, gens)
        except BaseException:
            stop.set()  # no retry starts; requests in flight end on their own (or their timeout)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return [r for r in results if r is not None]

    # -- one request ---------------------------------------------------------------------------
    def _payload(self, chat: Chat, config: GenerationConfig) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": chat, "temperature": 0,
                                   "max_tokens": config.max_new_tokens}
        stops = [s for s in config.stop if s][:MAX_STOP]
        if stops:
            payload["stop"] = stops
        if config.constraint is not None:  # answer=constrained: the schema the answer must follow
            schema = config.constraint.json_schema()
            payload["response_format"] = (
                {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
                if self._json_schema_format else {"type": "json_object", "schema": schema})
        return payload

    def _one(self, chat: Chat, config: GenerationConfig, stop: threading.Event) -> Generation:
        """One chat's generation: retried on transient failures, an error Generation when they persist."""
        payload = self._payload(chat, config)
        start = time.perf_counter()
        error, attempts = "not sent: the run stopped", 0
        while attempts <= self.retry.retries and not stop.is_set():
            attempts += 1
            sent = time.perf_counter()
            try:
                body = self._post(payload)
            except (_Transient, _Failed) as e:
                error = str(e)
                if self._other_response_format(payload, error):  # the same request in the server's own form
                    payload, attempts = self._payload(chat, config), attempts - 1
                    continue
                if isinstance(e, _Failed):
                    break
                if attempts <= self.retry.retries:
                    stop.wait(self.retry.wait_s(attempts - 1, e.retry_after))
                continue
            return self._generation(body, chat, config, time.perf_counter() - sent)
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        return Generation("", time.perf_counter() - start, 0, 0, error=f"{error}{tries}")

    def _other_response_format(self, payload: dict[str, Any], error: str) -> bool:
        """A server that refuses OpenAI's `json_schema` response format (llama-cpp-python answers with
        a validation error, as HTTP 500) gets `{"type": "json_object", "schema": ...}` from then on
        (requests already in flight when the first was refused are sent again in that form too)."""
        sent = (payload.get("response_format") or {}).get("type")
        if sent != "json_schema" or "response_format" not in error:
            return False
        self._json_schema_format = False
        return True

    def _post(self, payload: dict[str, Any], path: str = "/chat/completions") -> dict[str, Any]:
        """The response body of one attempt; _Transient, _Failed or HarnessError (fatal) otherwise."""
        url = f"{self.base_url}{path}"
        try:
            response = self._client.post(url, json=payload)
        except httpx.TimeoutException as e:
            raise _Transient(f"timed out: {type(e).__name__}") from None
        except httpx.TransportError as e:  # connection refused or reset, DNS, protocol errors
            raise _Transient(f"cannot reach {self.base_url}: {type(e).__name__}: {str(e)[:120]}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}: {_detail(response)}", retry_after_s(response.headers.get("Retry-After")))
        if status in (401, 403):
            raise self._refused(status)
        if status == 404:
            raise self._unknown_model(f"{url} answered 404 ({_detail(response)})")
        if status >= 400:
            raise _Failed(f"HTTP {status}: {_detail(response)}")
        try:
            body = response.json()
            body["choices"][0]["message" if path == "/chat/completions" else "text"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Failed(f"not a {path.strip('/').replace('/', ' ')} response: {response.text[:200]!r}") from None
        return body  # type: ignore[no-any-return]

    def _generation(self, body: dict[str, Any], chat: Chat, config: GenerationConfig, latency: float) -> Generation:
        text = body["choices"][0]["message"].get("content") or ""
        text = truncate_at_stop(text, config.stop).strip()  # stops past the 4th, and servers that keep them
        if config.constraint is not None and config.constraint.kind == "choice":
            text = _json_string(text)  # the schema is a JSON string: the label without its quotes
        usage = body.get("usage") or {}
        prompt = usage.get("prompt_tokens")
        output = usage.get("completion_tokens")
        if not isinstance(prompt, int):  # a server without usage: estimate
            prompt = sum(self.count_tokens(m.get("content", "")) for m in chat)
        if not isinstance(output, int):
            output = self.count_tokens(text)
        return Generation(text, latency, prompt, output, request_latency_s=latency)

    # -- errors that stop the run ----------------------------------------------------------------
    def _refused(self, status: int) -> HarnessError:
        if self.api_key_env:
            return HarnessError(f"the server at {self.base_url} refused the API key from ${self.api_key_env} "
                                f"(HTTP {status})")
        return HarnessError(f"the server at {self.base_url} wants an API key (HTTP {status}): "
                            "name the environment variable that holds it (api_key_env)")

    def served_models(self) -> list[str] | None:
        """The model ids GET /models lists, or None when the server lists none (or cannot be asked)."""
        try:
            response = self._client.get(f"{self.base_url}/models")
        except httpx.TransportError as e:
            raise _Transient(f"{type(e).__name__}: {str(e)[:120]}") from None
        except httpx.HTTPError:
            return None
        if response.status_code in (401, 403):
            raise self._refused(response.status_code)
        try:
            data = response.json()["data"] if response.status_code == 200 else None
            return [str(m["id"]) for m in data] if isinstance(data, list) else None
        except (ValueError, KeyError, TypeError):
            return None

    def _unknown_model(self, why: str) -> HarnessError:
        try:
            served = self.served_models()
        except _Transient:
            served = None
        listed = f": it serves {', '.join(served[:20])}" if served else f" ({why})"
        return HarnessError(f"the server at {self.base_url} does not serve model '{self.model}'{listed}")

    def check(self) -> None:
        """Before the first request: refuse a server that cannot be reached (after the retries), a
        key the server refuses and a model it does not list.

        Some servers (llama.cpp's) answer for any model name with the one they serve, so a typo
        would silently decode with another model: the name must be one `GET /models` lists
        (Ollama's implicit `:latest` tag allowed). A server that lists nothing is not checked.
        """
        if self._checked or not self._check_model:
            return
        served: list[str] | None = None
        for attempt in range(self.retry.retries + 1):
            try:
                served = self.served_models()
                break
            except _Transient as e:
                if attempt == self.retry.retries:  # no server there at all: a wrong address, not bad luck
                    raise HarnessError(f"cannot reach the server at {self.base_url} ({e}, "
                                       f"{attempt + 1} attempts): is it running?") from None
                time.sleep(self.retry.wait_s(attempt, None))
        if served is not None and self.model not in served and f"{self.model}:latest" not in served:
            raise self._unknown_model("not listed")
        self._checked = True
