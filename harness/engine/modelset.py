"""The models of a run: which one each strategy decodes with (`model=NAME`, a [[models]] table,
or the run's default --model), each built once (a local one lazily, an API one checked before any
decoding), what identifies it in cache keys and results.json, and freeing local weights early."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harness.core.config import ModelSpec
from harness.core.errors import HarnessError
from harness.core.text import did_you_mean
from harness.engine.backends.base import Backend
from harness.engine.backends.openai import OpenAIBackend
from harness.engine.backends.transformers import TransformersBackend
from harness.engine.backends.vllm import VLLMBackend, check_vllm
from harness.engine.models import check_model_ref


def model_identity(model: Any) -> str:
    """What identifies a model in prediction-cache keys: a local model's weights (sha256), an API
    model's server and name (never its key, never how many requests run at once)."""
    if isinstance(model, OpenAIBackend):
        return f"openai:{model.base_url}:{model.model}"
    if isinstance(model, VLLMBackend):  # other kernels: its generations are cached apart
        return f"vllm:{model.loaded.sha256 or model.loaded.path}"
    return str(model.sha256 or model.path)


def strategy_models(default_model: str, models: dict[str, ModelSpec], sources: dict[str, str],
                    strategies: Sequence[Any]) -> dict[str, ModelSpec]:
    """Each strategy's model (by strategy name), refused before any model loads: a name no
    [[models]] table gives, or an API model for a strategy that trains or applies an adapter.
    `sources`: "strategy NAME model" -> run.toml:LINE, to blame the table that named it."""
    default = ModelSpec(name="default", id=default_model)
    picked: dict[str, ModelSpec] = {}
    for s in strategies:
        name = getattr(s, "model", "") or ""
        where = sources.get(f"strategy {s.name} model") or sources.get(f"strategy {s.name}")
        where = f"{where}: " if where else ""
        if not name:
            picked[s.name] = default
            continue
        if name not in models:
            known = ", ".join(models) or "none ([[models]] tables in --config define them)"
            raise HarnessError(f"{where}strategy '{s.name}': unknown model '{name}'"
                               f"{did_you_mean(name, list(models))}; models: {known}")
        spec = models[name]
        if getattr(s, "needs_local_weights", False) and spec.backend == "openai":
            raise HarnessError(f"{where}strategy '{s.name}': model '{name}' is served by an API (backend openai): "
                               "fine-tuning needs local weights; pick a transformers model")
        picked[s.name] = spec
    return picked


def model_key(spec: ModelSpec) -> str:
    """Local models with the same weights share one load; each API model is its own backend, and
    a vLLM engine is its own load too (it holds its own copy of the weights on the GPU)."""
    if spec.backend == "openai":
        return f"openai\0{spec.name}"
    if spec.backend == "vllm":
        return f"vllm\0{spec.id}\0{spec.tensor_parallel_size}"
    return f"local\0{spec.id}"


def model_record(spec: ModelSpec, model: Any) -> dict[str, Any]:
    """A strategy's model in results.json: its name, backend, id, and the sha256 of local weights
    or the model name the server knows (never the key)."""
    if isinstance(model, OpenAIBackend):
        return {"name": spec.name, "backend": "openai", "id": spec.id, "served_model": model.model,
                "base_url": model.base_url, "usd_per_1m_input": spec.usd_per_1m_input,
                "usd_per_1m_output": spec.usd_per_1m_output}
    if isinstance(model, VLLMBackend):
        return {"name": spec.name, "backend": "vllm", "id": spec.id, "sha256": model.loaded.sha256,
                "resolved": model.loaded.path, "tensor_parallel_size": model.tensor_parallel_size}
    return {"name": spec.name, "backend": "transformers", "id": spec.id, "sha256": model.sha256,
            "resolved": model.path}


def check_model_refs(picked: dict[str, ModelSpec], model_flag: str, sources: dict[str, str],
                     device: str = "cpu") -> None:
    """Every local model a strategy needs names weights that exist (aliases, folders, hub ids), and
    a vllm model has vLLM and a CUDA device to run on."""
    for spec in {model_key(m): m for m in picked.values()}.values():
        if spec.backend != "openai":
            where = model_flag if spec.name == "default" else (sources.get(f"model {spec.name}") or f"model '{spec.name}'")
            if spec.backend == "vllm":
                check_vllm(device, where)
            check_model_ref(spec.id, where)


def build_models(picked: dict[str, ModelSpec], load: Callable[..., Any], *, device: str,
                 trust_remote_code: bool) -> dict[str, Any]:
    """Each model once, by model_key: a local one's tokenizer and weights' identity now (`load`:
    load_generator, weights on first decode); an API one's server, key and model name checked now."""
    models: dict[str, Any] = {}
    for spec in picked.values():
        key = model_key(spec)
        if key in models:
            continue
        if spec.backend == "openai":
            backend = OpenAIBackend(spec.id, str(spec.base_url), api_key_env=spec.api_key_env,
                                    max_concurrency=spec.max_concurrency, usd_per_1m_input=spec.usd_per_1m_input,
                                    usd_per_1m_output=spec.usd_per_1m_output)
            backend.check()
            models[key] = backend
        elif spec.backend == "vllm":  # tokenizer now; weights for training and the vLLM engine on first use
            models[key] = VLLMBackend(load(spec.id, device=device, trust_remote_code=trust_remote_code),
                                      tensor_parallel_size=spec.tensor_parallel_size,
                                      gpu_memory_utilization=spec.gpu_memory_utilization)
        else:
            models[key] = load(spec.id, device=device, trust_remote_code=trust_remote_code)
    return models


def free_if_done(key: str, model: Any, engine: Any, later: Sequence[ModelSpec]) -> None:
    """Free a local model's weights when no later strategy decodes with it."""
    if isinstance(model, OpenAIBackend) or any(model_key(spec) == key for spec in later):
        return
    if isinstance(model, VLLMBackend):
        model.close()
        model = model.loaded  # the training copy of the weights, if a strategy trained
    if hasattr(engine, "_with_adapter"):
        engine._with_adapter = None  # no PEFT wrapper left holding the base weights
    model.free()


def default_model_record(models: dict[str, Any], default_model: str) -> dict[str, Any]:
    """results.json's top-level `model`: the run's default (--model), as before per-strategy models."""
    default = models.get(model_key(ModelSpec(name="default", id=default_model)))
    if default is None:  # no strategy decodes with --model: its name only, nothing loaded
        return {"backend": "transformers", "id": default_model, "name": default_model}
    return {"backend": "transformers", "id": default.name, **default.info()}


def engines(models: dict[str, Any], batch_size: int) -> dict[str, Backend]:
    """What decodes each model: a batched local engine, or the API backend itself."""
    return {key: m if isinstance(m, (OpenAIBackend, VLLMBackend)) else TransformersBackend(m, batch_size=batch_size)
            for key, m in models.items()}


def context_model(model: Any) -> dict[str, Any]:
    """StrategyContext's model arguments: a local generator, or (API model) the backend alone."""
    if isinstance(model, OpenAIBackend):
        return {"generator": None, "backend": model}
    if isinstance(model, VLLMBackend):  # training uses the local weights, decoding goes through vLLM
        return {"generator": model.loaded, "backend": model}
    return {"generator": model}


def token_prices(picked: dict[str, ModelSpec]) -> dict[str, tuple[float, float]]:
    """USD per million input and output tokens of each strategy on an API model (cost by tokens)."""
    return {name: (spec.usd_per_1m_input or 0.0, spec.usd_per_1m_output or 0.0)
            for name, spec in picked.items() if spec.backend == "openai"}


def weights_loaded(models: dict[str, Any]) -> bool:
    """Whether any local model's weights were loaded during the run (freed ones included)."""
    return any(m.loaded.was_loaded or m.engine_started if isinstance(m, VLLMBackend) else m.was_loaded
               for m in models.values() if not isinstance(m, OpenAIBackend))
