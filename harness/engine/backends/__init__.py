"""Model backends: a registry keyed by name, like the strategies' and the metrics'.

Built-ins: `transformers` (local weights, the default), `openai` (any OpenAI-compatible endpoint)
and `vllm` (GPU). Plugins register through the entry-point group `sft_harness.backends` (an entry
point named like the backend, resolving to a `Backend` subclass), or in-process with
`register_backend(cls)`. Modules are imported when a [[models]] table names them, so a backend
whose package is missing (vllm) costs nothing until it is used. `base.Backend` is the interface.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from harness.core.errors import HarnessError
from harness.core.text import did_you_mean

if TYPE_CHECKING:
    from harness.core.config import ModelOption, ModelSpec, RunConfig
    from harness.engine.backends.base import Backend

ENTRY_POINT_GROUP = "sft_harness.backends"
BUILTINS: dict[str, tuple[str, str]] = {
    "transformers": ("harness.engine.backends.transformers", "TransformersBackend"),
    "openai": ("harness.engine.backends.openai", "OpenAIBackend"),
    "vllm": ("harness.engine.backends.vllm", "VLLMBackend"),
}
_REGISTERED: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Add a backend class under its `name` (usable as a decorator); a built-in's name is refused."""
    from harness.engine.backends.base import Backend

    if not (isinstance(cls, type) and issubclass(cls, Backend)) or not cls.name:
        raise HarnessError(f"{cls!r} is not a Backend subclass with a name")
    if cls.name in BUILTINS:
        raise HarnessError(f"backend '{cls.name}' is a built-in; give the plugin another name")
    _REGISTERED[cls.name] = cls
    return cls


def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def backend_names() -> list[str]:
    return [*BUILTINS, *sorted(set(_plugins()) | set(_REGISTERED))]


def backend_class(name: str) -> type[Backend]:
    """The class registered as `name`; a HarnessError saying which there are when there is none."""
    from harness.engine.backends.base import Backend

    if name in BUILTINS:
        module, cls_name = BUILTINS[name]
        cls = getattr(importlib.import_module(module), cls_name)
    elif name in _REGISTERED:
        cls = _REGISTERED[name]
    elif name in (points := _plugins()):
        where = f"backend plugin '{name}' ({points[name]}, entry-point group {ENTRY_POINT_GROUP})"
        try:
            cls = next(ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name).load()
        except Exception as e:  # a broken plugin: its error, in one line
            raise HarnessError(f"{where} failed to load: {type(e).__name__}: {e}") from e
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            raise HarnessError(f"{where} must resolve to a harness.engine.backends.base.Backend subclass")
    else:
        names = backend_names()
        raise HarnessError(f"backend '{name}' is not one of {', '.join(names)}{did_you_mean(name, names)}")
    return cls  # type: ignore[no-any-return]


def _owner(key: str, names: list[str]) -> str | None:
    """The backend whose tables take `key`, for "is for backend = X models" (built-ins only: a
    plugin is imported only when named)."""
    return next((n for n in names if n in BUILTINS and key in backend_class(n).options), None)


def model_problem(spec: ModelSpec) -> tuple[str | None, str] | None:
    """(key or None for the table itself, why) for a [[models]] table its backend refuses: an
    unknown backend, a key it does not take or a value out of range, a required key missing."""
    try:
        cls = backend_class(spec.backend)
    except HarnessError as e:
        return "backend", str(e)
    options: dict[str, ModelOption] = dict(cls.options)
    for key, value in spec.options.items():
        option = options.get(key)
        if option is None:
            owner = _owner(key, backend_names())
            if owner is not None:
                hint = backend_class(owner).options[key].hint
                return key, (f"'{key}' is for backend = \"{owner}\" models; model '{spec.name}' is "
                             f"{spec.backend}{hint}")
            known = ", ".join(["name", "backend", "id", *options])
            return key, (f"unknown key '{key}' in [[models]]{did_you_mean(key, [*options])}; keys: {known}")
        if why := option.problem(key, value):
            return key, why
    for key, option in options.items():
        if option.required and key not in spec.options:
            return None, f"model '{spec.name}' (backend {spec.backend}) needs a {key}"
    return None


def check_model_tables(conf: RunConfig) -> None:
    """Every [[models]] table of a run config checked by its backend, errors at their run.toml line."""
    for i, spec in enumerate(conf.model_specs().values()):
        problem = model_problem(spec)
        if problem is not None:
            key, why = problem
            raise HarnessError(f"{conf.where_model(key, i)}: {why}")
