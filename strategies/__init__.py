"""Strategy registry: the built-ins plus plugins from the entry-point group `sft_harness.strategies`.

A spec string names strategies and their options: `prompt:k=4:select=knn,rag:k=5,sft:epochs=3`.
A strategy can also come from a file: `./my_strategy.py:MyStrategy:k=3` (options after the class).
"""

from __future__ import annotations

import importlib
import importlib.util
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError

from .base import Strategy, did_you_mean

ENTRY_POINT_GROUP = "sft_harness.strategies"


# kind -> module of the built-in strategies; imported lazily so one broken dependency (faiss for
# rag, peft for sft) does not hide the others, and its import error is kept to say why.
BUILTINS: dict[str, tuple[str, str]] = {
    "prompt": ("strategies.prompt", "PromptStrategy"),
    "rag": ("strategies.rag", "RagStrategy"),
    "sft": ("strategies.sft", "SftStrategy"),
    "sft+rag": ("strategies.sft", "SftRagStrategy"),
    "adapter": ("strategies.adapter", "AdapterStrategy"),
    "outputs": ("strategies.outputs", "OutputsStrategy"),
}


def _builtins() -> tuple[dict[str, type[Strategy]], dict[str, str]]:
    """The importable built-ins, and for each one that is not, why."""
    found: dict[str, type[Strategy]] = {}
    broken: dict[str, str] = {}
    for kind, (module, cls) in BUILTINS.items():
        try:
            found[kind] = getattr(importlib.import_module(module), cls)
        except ImportError as e:
            broken[kind] = f"{type(e).__name__}: {e}"
    return found, broken


def registry() -> dict[str, type[Strategy]]:
    """Built-ins plus entry-point plugins; a plugin may not take a built-in's name."""
    reg, broken = _builtins()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTINS:
            raise HarnessError(
                f"strategy plugin '{ep.name}' ({ep.value}) has the name of a built-in strategy: "
                "rename it in its package's entry points"
            )
        try:
            reg[ep.name] = ep.load()
        except Exception as e:  # a broken plugin must not take the others down; say why when asked for
            broken[ep.name] = f"{type(e).__name__}: {e}"
    _BROKEN.clear()
    _BROKEN.update(broken)
    return reg


_BROKEN: dict[str, str] = {}


def load_from_file(ref: str) -> type[Strategy]:
    """`./my_strategy.py:MyStrategy`: a strategy class from a Python file, no packaging needed."""
    path_text, _, cls_name = ref.rpartition(":")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise HarnessError(f"strategy file {path} not found (expected FILE.py:ClassName)")
    if not cls_name.isidentifier():
        raise HarnessError(f"strategy '{ref}': after the ':' give the class name, e.g. {path}:MyStrategy")
    name = f"sft_harness_user_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise HarnessError(f"strategy file {path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code: its error, in one line
        raise HarnessError(f"strategy file {path} failed to import: {type(e).__name__}: {e}") from None
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise HarnessError(f"strategy file {path}: no Strategy subclass named '{cls_name}'")
    return cls


def _is_file_ref(kind: str) -> bool:
    return ".py:" in kind


def parse_spec(spec: str) -> list[tuple[str, dict[str, str]]]:
    """`prompt:k=4,rag` -> [("prompt", {"k": "4"}), ("rag", {})]."""
    out: list[tuple[str, dict[str, str]]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        kind, *opts = part.split(":")
        if kind.endswith(".py") and opts:  # ./file.py:ClassName[:options]
            kind, opts = f"{kind}:{opts[0]}", opts[1:]
        params: dict[str, str] = {}
        for opt in opts:
            if "=" not in opt:
                raise HarnessError(f"strategy option '{opt}' in '{part}' must look like key=value")
            k, v = opt.split("=", 1)
            params[k.strip()] = v.strip()
        out.append((kind.strip(), params))
    if not out:
        raise HarnessError("no strategies given: e.g. --strategies prompt,rag,sft")
    return out


def build(kind: str, params: dict[str, Any], name: str | None = None) -> Strategy:
    if _is_file_ref(kind):
        cls = load_from_file(kind)
        return cls(name=name or cls.kind or kind, **params)
    reg = registry()
    if kind in _BROKEN:
        raise HarnessError(f"strategy '{kind}' cannot be used: it failed to import ({_BROKEN[kind]})")
    if kind not in reg:
        raise HarnessError(f"unknown strategy '{kind}'{did_you_mean(kind, list(reg))}; known: {', '.join(reg)}")
    return reg[kind](name=name, **params)


def from_spec(spec: str) -> list[Strategy]:
    """Strategies from a spec string. Each is named by its spec part, so `prompt,prompt:k=4` both fit.
    A strategy file is executed once, however many parts name it."""
    strategies: list[Strategy] = []
    seen: set[str] = set()
    files: dict[str, type[Strategy]] = {}
    for kind, params in parse_spec(spec):
        cls: type[Strategy] | None = None
        if _is_file_ref(kind):
            if kind not in files:
                files[kind] = load_from_file(kind)
            cls = files[kind]
        base = (cls.kind or kind.rpartition(":")[2]) if cls is not None else kind
        name = params.pop("name", None) or (base if not params else base + "".join(f":{k}={v}" for k, v in params.items()))
        if name in seen:
            raise HarnessError(f"strategy '{name}' is given twice")
        seen.add(name)
        strategies.append(cls(name=name, **params) if cls is not None else build(kind, params, name))
    return strategies


__all__ = ["Strategy", "registry", "parse_spec", "build", "from_spec", "ENTRY_POINT_GROUP"]
