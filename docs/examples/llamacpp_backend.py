"""A model backend in one file: GGUF weights run in-process by llama.cpp (llama-cpp-python), no server."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from harness.core.config import ModelOption, ModelSpec
from harness.core.errors import HarnessError
from harness.core.types import Generation, GenerationConfig
from harness.engine.backends.base import Backend, BuildContext


class LlamaCppBackend(Backend):
    name = "llamacpp"  # backend = "llamacpp" in a [[models]] table; id = the .gguf file
    options = {"n_ctx": ModelOption((int,), "a context length in tokens", lambda n: n >= 256, "at least 256")}

    @classmethod
    def check_spec(cls, spec: ModelSpec, *, device: str, where: str) -> None:
        if not Path(spec.id).is_file():  # refused before any model loads, at the table's line
            raise HarnessError(f"{where}: {spec.id} is not a GGUF file")

    @classmethod
    def build(cls, spec: ModelSpec, ctx: BuildContext) -> LlamaCppBackend:
        return cls(spec.id, n_ctx=int(spec.option("n_ctx", 2048)))

    def __init__(self, path: str, n_ctx: int = 2048) -> None:
        from llama_cpp import Llama

        self.path, self.llm = path, Llama(model_path=path, n_ctx=n_ctx, seed=0, verbose=False)

    def generate(self, chats, config: GenerationConfig, *, on_batch=None) -> list[Generation]:
        out = []
        for i, chat in enumerate(chats):  # greedy, the model's own chat template, one at a time
            start = time.perf_counter()
            reply = self.llm.create_chat_completion(messages=chat, temperature=0.0, max_tokens=config.max_new_tokens,
                                                    stop=list(config.stop) or None)
            seconds, usage = time.perf_counter() - start, reply["usage"]
            out.append(Generation((reply["choices"][0]["message"]["content"] or "").strip(), seconds,
                                  usage["prompt_tokens"], usage["completion_tokens"], request_latency_s=seconds))
            if on_batch:
                on_batch([i], out[-1:])
        return out

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False))

    def identity(self) -> str:  # cached generations are keyed on the weights themselves
        return "llamacpp:" + hashlib.sha256(Path(self.path).read_bytes()).hexdigest()

    @property
    def weights_loaded(self) -> bool:
        return True
