"""vLLM's offline engine as a backend, for GPU machines (`pip install 'sft-harness[vllm]'`).

Prompts are rendered, fitted to the context and tokenised by our own code, exactly as the
transformers backend does (this class is an `Engine` for everything but the decoding), and
handed to vLLM as token ids: both backends decode the same prompts, only the kernels differ.
Decoding is greedy with the suite's stop strings; LoRA adapters go through `LoRARequest`, never
merged, so `sft` strategies decode on vLLM too. `tensor_parallel_size` splits a model over GPUs.
vLLM is imported only when a [[models]] table names this backend.
"""

from __future__ import annotations

import contextlib
import gc
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.core.config import ModelOption, ModelSpec
from harness.core.errors import HarnessError, MissingPackageError
from harness.core.types import (
    Chat,
    Constraint,
    ContinuationScores,
    Generation,
    GenerationConfig,
    ScoreRequest,
)
from harness.engine.backends.base import ADAPTER, CONSTRAIN, SCORE, TRAIN, BuildContext, OnBatch, OnScored
from harness.engine.generate import EncodedPrompt, Engine, collect, truncate_at_stop
from harness.engine.models import LoadedModel, check_model_ref

# Prompts handed to vLLM per call: vLLM schedules them itself; between calls the runner records
# and caches what is done, so a killed run loses at most one chunk.
CHUNK = 256
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


def check_vllm(device: str, where: str) -> None:
    """Refuse the vllm backend in one line before any model loads: no package, or no CUDA."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise MissingPackageError(f"{where}: vLLM (backend vllm)", "pip install 'sft-harness[vllm]'")
    if not device.startswith("cuda"):
        raise HarnessError(f"{where}: backend vllm needs a CUDA GPU and this run's device is {device}: "
                           "use backend = \"transformers\" here (or serve the model and use backend = \"openai\")")


class VLLMBackend(Engine):
    """Greedy decoding on vLLM; tokenisation, context fitting and stop handling shared with `Engine`."""

    name = "vllm"
    capabilities = frozenset({SCORE, CONSTRAIN, ADAPTER, TRAIN})
    options = {
        "tensor_parallel_size": ModelOption((int,), "a whole number of GPUs, at least 1", lambda v: v >= 1, "at least 1"),
        "gpu_memory_utilization": ModelOption((int, float), "a share of GPU memory above 0 and at most 1",
                                              lambda v: 0 < v <= 1, "above 0 and at most 1"),
    }

    @classmethod
    def check_spec(cls, spec: ModelSpec, *, device: str, where: str) -> None:
        check_vllm(device, where)
        check_model_ref(spec.id, where)

    @classmethod
    def share_key(cls, spec: ModelSpec) -> str:
        # its own load: a vLLM engine holds its own copy of the weights on the GPU
        return f"{cls.name}\0{spec.id}\0{spec.option('tensor_parallel_size', 1)}"

    @classmethod
    def build(cls, spec: ModelSpec, ctx: BuildContext) -> VLLMBackend:
        """Tokenizer now; the weights for training and the vLLM engine on first use."""
        assert ctx.load_local is not None
        return cls(ctx.load_local(spec.id), tensor_parallel_size=int(spec.option("tensor_parallel_size", 1)),
                   gpu_memory_utilization=float(spec.option("gpu_memory_utilization", 0.5)), seed=ctx.seed)

    def __init__(self, loaded: LoadedModel, *, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.5, seed: int = 0):
        super().__init__(loaded)
        self.tensor_parallel_size = tensor_parallel_size
        self.gpu_memory_utilization = gpu_memory_utilization
        self.seed = seed
        self._llm: Any = None
        self._lora: Any = None  # the LoRARequest while an adapter is applied
        self._lora_ids: dict[str, int] = {}  # adapter folder -> vLLM's integer id for it
        self._max_lora_rank = 64
        self.engine_started = False  # whether vLLM loaded the weights (results.json `work`)

    def _engine(self) -> Any:
        """The vLLM engine, built on first use from the model's local folder (a GGUF is converted first)."""
        if self._llm is None:
            from vllm import LLM

            self._llm = LLM(model=self.loaded.path, tokenizer=self.loaded.path, seed=self.seed,
                            tensor_parallel_size=self.tensor_parallel_size,
                            gpu_memory_utilization=self.gpu_memory_utilization,
                            enable_lora=True, max_lora_rank=self._max_lora_rank, max_model_len=self.context_tokens())
            self.engine_started = True
        return self._llm

    def generate(self, chats: Sequence[Chat], config: GenerationConfig, *,
                 on_batch: OnBatch | None = None) -> list[Generation]:
        from vllm import SamplingParams

        config = self.decoding_config(config)
        params = SamplingParams(temperature=0.0, max_tokens=config.max_new_tokens, stop=list(config.stop) or None,
                                stop_token_ids=list(self._stop_ids), skip_special_tokens=True,
                                **_structured(config.constraint))

        def decode(chunk: list[EncodedPrompt]) -> list[Generation]:
            began = time.perf_counter()
            outputs = self._engine().generate([{"prompt_token_ids": e.ids} for e in chunk], params,
                                              use_tqdm=False, lora_request=self._lora)
            share = (time.perf_counter() - began) / len(chunk)  # each prompt's share of the chunk's time
            return [Generation(truncate_at_stop(o.outputs[0].text, config.stop).strip(), share, len(e.ids),
                               len(o.outputs[0].token_ids)) for e, o in zip(chunk, outputs, strict=True)]

        encoded = self.encode_prompts(chats, config.max_new_tokens)
        return collect([encoded[i:i + CHUNK] for i in range(0, len(encoded), CHUNK)], decode, len(chats), on_batch)

    @contextlib.contextmanager
    def adapter(self, path: Path | None) -> Iterator[None]:
        """Decode with a PEFT LoRA adapter through vLLM's LoRARequest inside the block."""
        if path is None:
            yield
            return
        from vllm.lora.request import LoRARequest

        rank = _adapter_rank(path)
        if rank > self._max_lora_rank:
            if self._llm is not None:
                raise HarnessError(f"adapter {path}: LoRA rank {rank} is above the {self._max_lora_rank} this vLLM "
                                   "engine was started with: use rank <= 64, or put this strategy first")
            self._max_lora_rank = next(r for r in LORA_RANKS if r >= rank)
        key = str(Path(path).resolve())
        lora_id = self._lora_ids.setdefault(key, len(self._lora_ids) + 1)
        self._lora = LoRARequest(f"adapter-{lora_id}", lora_id, key)
        try:
            yield
        finally:
            self._lora = None

    def score(self, requests: Sequence[ScoreRequest], *, on_batch: OnScored | None = None) -> list[ContinuationScores]:
        """Continuation scores from vLLM's prompt log-probabilities: each continuation is one
        prompt + continuation sequence; vLLM's prefix cache shares the prompt's KV between them."""
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0)
        encoded = self.encode_scored(requests)
        flat = [(i, e.prompt, c) for i, e in enumerate(encoded) for c in e.continuations if e.prompt and c]
        out: list[list[tuple[float, int]]] = [[] for _ in encoded]
        began = time.perf_counter()
        for start in range(0, len(flat), CHUNK):
            chunk = flat[start : start + CHUNK]
            results = self._engine().generate([{"prompt_token_ids": p + c} for _, p, c in chunk], params,
                                              use_tqdm=False, lora_request=self._lora)
            for (i, p, c), r in zip(chunk, results, strict=True):
                logprobs = r.prompt_logprobs  # position t: {token id: Logprob} of the token at t (None at 0)
                total = sum(float(logprobs[len(p) + t][tok].logprob) for t, tok in enumerate(c))
                out[i].append((total, len(c)))
        share = (time.perf_counter() - began) / max(1, len(encoded))
        scores = [ContinuationScores(tuple(x for x, _ in o), tuple(n for _, n in o), len(e.prompt), share)
                  for e, o in zip(encoded, out, strict=True)]
        if on_batch:
            on_batch(list(range(len(scores))), scores)
        return scores

    def identity(self) -> str:  # other kernels: its generations are cached apart from transformers'
        return f"vllm:{self.loaded.sha256 or self.loaded.path}"

    def record(self) -> dict[str, Any]:
        return {**super().record(), "tensor_parallel_size": self.tensor_parallel_size}

    @property
    def weights_loaded(self) -> bool:
        return bool(self.loaded.was_loaded or self.engine_started)

    def free(self) -> None:
        """Give the GPU memory back when no later strategy decodes with this model (the vLLM
        engine and the training copy of the weights, if a strategy trained)."""
        if self._llm is not None:
            self._llm = None
            gc.collect()
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        super().free()


def _structured(constraint: Constraint | None) -> dict[str, Any]:
    """answer=constrained as vLLM's structured outputs: `structured_outputs` from vLLM 0.12 on,
    `guided_decoding` before (the same choice / json fields)."""
    if constraint is None:
        return {}
    fields = {"choice": list(constraint.labels)} if constraint.kind == "choice" else {"json": constraint.json_schema()}
    try:
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(**fields)}
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(**fields)}


def _adapter_rank(path: Path) -> int:
    try:
        return int(json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))["r"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HarnessError(f"cannot apply adapter {path}: no readable adapter_config.json with a rank 'r' ({e})") from None
