"""The models of a run: which one each strategy decodes with (`model=NAME`, a [[models]] table, or
the run's default --model), each built once by its backend class (specs with the same
`share_key` share one backend, so one copy of the weights), and local weights freed as soon as no
later strategy needs them. Everything about a model goes through the `Backend` interface."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.core.config import ModelSpec
from harness.core.errors import HarnessError
from harness.core.text import did_you_mean
from harness.engine.backends import backend_class
from harness.engine.backends.base import TRAIN, Backend, BuildContext
from harness.engine.models import LoadedModel, load_generator

DEFAULT = "default"  # the [[models]] name of the run's --model


def default_spec(model: str) -> ModelSpec:
    return ModelSpec(name=DEFAULT, id=model)


def strategy_models(default_model: str, models: dict[str, ModelSpec], sources: dict[str, str],
                    strategies: Sequence[Any]) -> dict[str, ModelSpec]:
    """Each strategy's model (by strategy name), refused before any model loads: a name no
    [[models]] table gives, or a served model for a strategy that trains or applies an adapter.
    `sources`: "strategy NAME model" -> run.toml:LINE, to blame the table that named it."""
    picked: dict[str, ModelSpec] = {}
    for s in strategies:
        name = getattr(s, "model", "") or ""
        where = sources.get(f"strategy {s.name} model") or sources.get(f"strategy {s.name}")
        where = f"{where}: " if where else ""
        if not name:
            picked[s.name] = default_spec(default_model)
            continue
        if name not in models:
            known = ", ".join(models) or "none ([[models]] tables in --config define them)"
            raise HarnessError(f"{where}strategy '{s.name}': unknown model '{name}'"
                               f"{did_you_mean(name, list(models))}; models: {known}")
        spec = models[name]
        if getattr(s, "needs_local_weights", False) and not backend_class(spec.backend).can(TRAIN):
            raise HarnessError(f"{where}strategy '{s.name}': model '{name}' is served by an API (backend "
                               f"{spec.backend}): fine-tuning needs local weights; pick a transformers model")
        picked[s.name] = spec
    return picked


def share_key(spec: ModelSpec) -> str:
    return backend_class(spec.backend).share_key(spec)


def check_models(picked: dict[str, ModelSpec], model_flag: str, sources: dict[str, str], device: str) -> None:
    """Every model a strategy needs can run here (weights that exist, packages, devices): nothing loads."""
    for spec in {share_key(m): m for m in picked.values()}.values():
        where = model_flag if spec.name == DEFAULT else (sources.get(f"model {spec.name}") or f"model '{spec.name}'")
        backend_class(spec.backend).check_spec(spec, device=device, where=where)


@dataclass
class ModelSet:
    """The run's backends, built once each, and which strategy decodes with which."""

    specs: dict[str, ModelSpec]  # strategy name -> its model
    backends: dict[str, Backend] = field(default_factory=dict)  # share key -> backend

    def of(self, strategy: str) -> Backend:
        return self.backends[share_key(self.specs[strategy])]

    def record(self, strategy: str) -> dict[str, Any]:
        """A strategy's model in results.json: its [[models]] name and its backend's record."""
        return {"name": self.specs[strategy].name, **self.of(strategy).record()}

    def free_unless_needed(self, strategy: str, later: Sequence[str]) -> None:
        """Free the strategy's model when none of the `later` strategies decodes with it."""
        key = share_key(self.specs[strategy])
        if not any(share_key(self.specs[s]) == key for s in later):
            self.backends[key].free()

    def default_record(self, model: str) -> dict[str, Any]:
        """results.json's top-level `model`: the run's --model (its name only when no strategy used it)."""
        backend = self.backends.get(share_key(default_spec(model)))
        if backend is None:
            return {"backend": "transformers", "id": model, "name": model}
        return {**backend.record(), "name": model}

    @property
    def weights_loaded(self) -> bool:
        """Whether any backend loaded weights during the run (freed ones included)."""
        return any(b.weights_loaded for b in self.backends.values())

    def close(self) -> None:
        for b in self.backends.values():
            b.close()


def build_models(picked: dict[str, ModelSpec], *, device: str, trust_remote_code: bool, batch_size: int,
                 seed: int = 0, load: Callable[..., LoadedModel] | None = None) -> ModelSet:
    """Each model once (by share key): a local one's tokenizer and weights' identity now (weights
    on first decode), a served one's server, key and model name checked now."""
    from harness.engine.training.zero import pin_accelerator

    pin_accelerator(device)  # before a model conversion's save_pretrained imports DeepSpeed (if installed)
    local: dict[str, LoadedModel] = {}
    load = load or load_generator  # looked up now: tests replace it to prove nothing loads

    def load_local(model_id: str) -> LoadedModel:
        if model_id not in local:
            local[model_id] = load(model_id, device=device, trust_remote_code=trust_remote_code)
        return local[model_id]

    ctx = BuildContext(device=device, trust_remote_code=trust_remote_code, batch_size=batch_size,
                       load_local=load_local, seed=seed)
    models = ModelSet(dict(picked))
    for spec in picked.values():
        key = share_key(spec)
        if key not in models.backends:
            models.backends[key] = backend_class(spec.backend).build(spec, ctx)
    return models
