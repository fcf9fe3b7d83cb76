"""The openai backend against a real OpenAI-compatible server: llama.cpp's, from `llama-cpp-python[server]`
(built into the venv by `make install`), serving the packaged SmolLM2 GGUF on 127.0.0.1.

No mocked HTTP: every request goes to the server. Skipped, with the reason, when llama_cpp is not
installed (a venv made before the Makefile built it).
"""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed: `make install` builds it")
import httpx  # noqa: E402  (httpx comes with the server's dependencies and the harness's)
from rich.console import Console  # noqa: E402

from harness.core.errors import HarnessError  # noqa: E402
from harness.core.predcache import PredictionCache  # noqa: E402
from harness.core.runrecord import OUTPUTS_FILE, PredictionRecord, PredictionWriter  # noqa: E402
from harness.core.suites import load_suite  # noqa: E402
from harness.core.types import Example, Generation, GenerationConfig, Prompt  # noqa: E402
from harness.engine.backends.base import Backend  # noqa: E402
from harness.engine.backends.openai import OpenAIBackend, RetryPolicy, retry_after_s  # noqa: E402
from harness.engine.models import resolve  # noqa: E402

ALIAS = "smollm2-135m-instruct"
CONFIG = GenerationConfig(max_new_tokens=16)
CHATS = [
    [{"role": "system", "content": "Answer in a few words."}, {"role": "user", "content": q}]
    for q in ["What is the capital of France?", "Name a colour.", "What is 2 + 2?", "Say hello.", "Name a fruit."]
]
FAST_RETRY = RetryPolicy(retries=1, backoff_s=0.05)


class Server:
    """`python -m llama_cpp.server` on a free port of 127.0.0.1, stopped by `stop()`."""

    def __init__(self, log: Path, api_key: str | None = None, alias: str = ALIAS, logits_all: bool = False):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log
        resolved = resolve(alias)
        gguf = Path(resolved.source) / str(resolved.gguf_file)
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048", "--n_threads", "2"]
        if api_key:
            cmd += ["--api_key", api_key]
        if logits_all:  # llama-cpp-python gives prompt log-probabilities only with every position's logits
            cmd += ["--logits_all", "true"]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited {self.proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/models", headers=headers, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama.cpp server did not start in 120 s: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group this fixture started, and only it
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("llama-server") / "server.log")
    yield srv
    srv.stop()


def backend(srv: Server, **kwargs: Any) -> OpenAIBackend:
    return OpenAIBackend(ALIAS, srv.base_url, retry=FAST_RETRY, **kwargs)


def test_greedy_answers_with_usage_and_latency(server: Server) -> None:
    b = backend(server)
    assert isinstance(b, Backend)
    gens = b.generate(CHATS, CONFIG)
    assert len(gens) == len(CHATS)
    for g in gens:
        assert g.error is None and g.text
        assert g.prompt_tokens > 10 and 1 <= g.output_tokens <= CONFIG.max_new_tokens
        assert g.request_latency_s is not None and g.request_latency_s > 0 and g.latency_s == g.request_latency_s
    assert "paris" in gens[0].text.lower()
    assert [g.text for g in b.generate(CHATS[:2], CONFIG)] == [g.text for g in gens[:2]]  # greedy: the same again
    assert b.record() == {"backend": "openai", "id": ALIAS, "served_model": ALIAS, "base_url": server.base_url,
                          "api_key_env": None, "usd_per_1m_input": None, "usd_per_1m_output": None}
    assert b.identity() == f"openai:{server.base_url}:{ALIAS}" and b.local_weights() is None
    assert b.count_tokens("x" * 40) == 10  # no tokenizer: about four characters a token
    with pytest.raises(HarnessError, match="cannot apply a LoRA adapter"), b.adapter(Path("adapter")):
        pass


def test_concurrent_requests_give_the_same_answers(server: Server) -> None:
    chats = CHATS  # 5 requests, 3 at a time: some wait for a free slot
    seen: list[int] = []
    many = backend(server, max_concurrency=3).generate(chats, CONFIG, on_batch=lambda idx, gens: seen.extend(idx))
    one = backend(server, max_concurrency=1).generate(chats, CONFIG)
    assert sorted(seen) == list(range(len(chats)))
    assert [g.text for g in many] == [g.text for g in one]
    assert [g.output_tokens for g in many] == [g.output_tokens for g in one]


def test_stop_strings_past_the_fourth_are_applied_locally(server: Server) -> None:
    b = backend(server)
    free = b.generate(CHATS[:1], CONFIG)[0].text
    assert len(free) > 6
    stop = free[3:6]
    cut = b.generate(CHATS[:1], GenerationConfig(16, ("@@1", "@@2", "@@3", "@@4", stop)))[0].text
    assert cut == free[: free.index(stop)].strip()


def test_a_request_the_server_refuses_is_that_examples_error_and_the_rest_go_on(server: Server) -> None:
    too_long = [{"role": "user", "content": "word " * 3000}]  # past the server's n_ctx of 2048
    gens = backend(server).generate([CHATS[0], too_long, CHATS[1]], CONFIG)
    assert gens[0].error is None and gens[2].error is None and gens[0].text and gens[2].text
    assert gens[1].error is not None and gens[1].error.startswith("HTTP 400") and "attempts" not in gens[1].error
    assert gens[1].text == "" and gens[1].output_tokens == 0


def test_a_model_the_server_does_not_serve_stops_the_run(server: Server) -> None:
    # llama.cpp answers for any model name with the one it serves: the name is checked against /models.
    with pytest.raises(HarnessError, match=f"does not serve model 'no-such-model': it serves {ALIAS}"):
        OpenAIBackend("no-such-model", server.base_url).generate(CHATS[:1], CONFIG)
    with pytest.raises(HarnessError, match="does not serve model .*404"):  # a path with no API behind it
        OpenAIBackend(ALIAS, server.base_url + "/nothing-here").generate(CHATS[:1], CONFIG)


def test_a_server_that_is_not_there_stops_the_run_after_the_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(HarnessError, match=f"cannot reach the server at http://127.0.0.1:{port}/v1 .*2 attempts"):
        OpenAIBackend(ALIAS, f"http://127.0.0.1:{port}/v1", retry=FAST_RETRY).generate(CHATS[:1], CONFIG)


def test_retry_after_header() -> None:
    assert retry_after_s("3") == 3.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") is not None
    assert retry_after_s("soon") is None and retry_after_s(None) is None
    assert RetryPolicy(max_retry_after_s=5).wait_s(0, 60.0) == 5.0
    assert 0.5 <= RetryPolicy(backoff_s=1.0).wait_s(0, None) <= 1.0


class FakeStrategy:
    """What decode_strategy asks of a strategy: a name and one chat per example."""

    name = "prompt"

    def prompts(self, examples: Sequence[Example]) -> list[Prompt]:
        return [Prompt([{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": e.input}])
                for e in examples]


class Counting:
    """The backend as the runner sees it, counting the chats it is asked for and, optionally,
    killing the server once `kill_after` answers have come back."""

    def __init__(self, inner: OpenAIBackend, kill: Server | None = None, kill_after: int = 0):
        self.inner, self.kill, self.kill_after = inner, kill, kill_after
        self.name, self.truncated, self.asked = inner.name, 0, 0
        self.adapter, self.count_tokens, self.identity = inner.adapter, inner.count_tokens, inner.identity

    def generate(self, chats: Sequence[Any], config: GenerationConfig, *, on_batch: Any = None) -> list[Generation]:
        self.asked += len(chats)
        done = 0

        def spy(indices: list[int], gens: list[Generation]) -> None:
            nonlocal done
            on_batch(indices, gens)
            done += len(gens)
            if self.kill is not None and done >= self.kill_after:
                self.kill.stop()

        return self.inner.generate(chats, config, on_batch=spy)


def decode(b: Any, tmp: Path, name: str) -> tuple[list[PredictionRecord], PredictionCache]:
    """The runner's decoding of one strategy, into a run folder `name` and the cache under tmp."""
    from harness.runner import decode_strategy
    from harness.scoring.records import score_outputs

    suite = load_suite("support-faq")
    suite = dataclasses.replace(suite, generation=CONFIG)
    examples = list(suite.test[:6])
    cache = PredictionCache(tmp / "cache", {"model": ALIAS, "decoding": CONFIG.fingerprint()})
    (tmp / name).mkdir()
    console = Console(file=io.StringIO())
    outputs = decode_strategy(FakeStrategy(), suite, examples, b, cache, PredictionWriter(tmp / name, OUTPUTS_FILE), console)
    return score_outputs(suite, examples, outputs), cache


def test_a_server_killed_mid_run_leaves_errors_and_a_rerun_completes_from_the_cache(tmp_path: Path) -> None:
    first_server = Server(tmp_path / "first.log")
    try:
        killing = Counting(backend(first_server, max_concurrency=1), kill=first_server, kill_after=2)
        records, cache = decode(killing, tmp_path, "run1")
    finally:
        first_server.stop()
    ok = [r for r in records if r.error is None]
    failed = [r for r in records if r.error is not None]
    assert len(records) == 6 and len(ok) >= 2 and failed, [r.error for r in records]
    assert all("cannot reach" in str(r.error) and "after 2 attempts" in str(r.error) for r in failed)
    assert all(r.output == "" and r.answer is None for r in failed)
    assert len(cache.path.read_text().splitlines()) == len(ok)  # the failed requests are not cached

    second_server = Server(tmp_path / "second.log")
    try:
        counting = Counting(backend(second_server))
        again, cache = decode(counting, tmp_path, "run2")
    finally:
        second_server.stop()
    assert counting.asked == len(failed)  # the cached answers were not asked for again
    assert all(r.error is None for r in again) and len(again) == 6
    assert {r.example_id: r.output for r in ok} == {r.example_id: r.output for r in again if r.example_id in
                                                    {o.example_id for o in ok}}
    assert len(cache.path.read_text().splitlines()) == 6


def test_the_api_key_is_sent_and_written_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-test-" + os.urandom(8).hex()
    srv = Server(tmp_path / "server.log", api_key=key)
    try:
        monkeypatch.setenv("HARNESS_TEST_KEY", key)
        b = backend(srv, api_key_env="HARNESS_TEST_KEY")
        (tmp_path / "work").mkdir()
        records, _ = decode(b, tmp_path / "work", "run")
        assert records and all(r.error is None for r in records)
        assert key not in repr(b) and key not in str(b.record()) and b.record()["api_key_env"] == "HARNESS_TEST_KEY"

        monkeypatch.setenv("HARNESS_TEST_KEY", "sk-wrong")
        with pytest.raises(HarnessError, match=r"refused the API key from \$HARNESS_TEST_KEY") as refused:
            backend(srv, api_key_env="HARNESS_TEST_KEY").generate(CHATS[:1], CONFIG)
        assert "sk-wrong" not in str(refused.value)
        with pytest.raises(HarnessError, match="wants an API key"):
            backend(srv).generate(CHATS[:1], CONFIG)
        monkeypatch.delenv("HARNESS_TEST_KEY")
        with pytest.raises(HarnessError, match=r"\$HARNESS_TEST_KEY is not set"):
            backend(srv, api_key_env="HARNESS_TEST_KEY")
    finally:
        srv.stop()
    written = [p for p in (tmp_path / "work").rglob("*") if p.is_file()]
    assert written and not [p for p in written if key.encode() in p.read_bytes()]
