"""Strategy registry: the built-ins plus plugins from the entry-point group `sft_harness.strategies`.

A spec string names strategies and their options: `prompt:k=4:select=knn,rag:k=5,sft:epochs=3`.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from harness.errors import HarnessError

from .base import Strategy, did_you_mean

ENTRY_POINT_GROUP = "sft_harness.strategies"


def _builtins() -> dict[str, type[Strategy]]:
    registry: dict[str, type[Strategy]] = {}
    from .prompt import PromptStrategy

    registry[PromptStrategy.kind] = PromptStrategy
    try:  # the other built-ins land module by module; a missing one must not hide the rest
        from .rag import RagStrategy

        registry[RagStrategy.kind] = RagStrategy
    except ImportError:
        pass
    try:
        from .sft import SftRagStrategy, SftStrategy

        registry[SftStrategy.kind] = SftStrategy
        registry[SftRagStrategy.kind] = SftRagStrategy
    except ImportError:
        pass
    try:
        from .adapter import AdapterStrategy

        registry[AdapterStrategy.kind] = AdapterStrategy
    except ImportError:
        pass
    return registry


def registry() -> dict[str, type[Strategy]]:
    reg = _builtins()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in reg:
            reg[ep.name] = ep.load()
    return reg


def parse_spec(spec: str) -> list[tuple[str, dict[str, str]]]:
    """`prompt:k=4,rag` -> [("prompt", {"k": "4"}), ("rag", {})]."""
    out: list[tuple[str, dict[str, str]]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        kind, *opts = part.split(":")
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
    reg = registry()
    if kind not in reg:
        raise HarnessError(f"unknown strategy '{kind}'{did_you_mean(kind, list(reg))}; known: {', '.join(reg)}")
    return reg[kind](name=name, **params)


def from_spec(spec: str) -> list[Strategy]:
    """Strategies from a spec string. Each is named by its spec part, so `prompt,prompt:k=4` both fit."""
    strategies: list[Strategy] = []
    seen: set[str] = set()
    for kind, params in parse_spec(spec):
        name = params.pop("name", None) or (kind if not params else kind + "".join(f":{k}={v}" for k, v in params.items()))
        if name in seen:
            raise HarnessError(f"strategy '{name}' is given twice")
        seen.add(name)
        strategies.append(build(kind, params, name))
    return strategies


__all__ = ["Strategy", "registry", "parse_spec", "build", "from_spec", "ENTRY_POINT_GROUP"]
