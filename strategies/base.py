"""The strategy plugin interface: decide what the model sees (and which adapter decodes it).

A strategy never decodes: the runner hands its prompts to the one shared engine, so every
strategy is decoded the same way and the comparison stays fair.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.cache import fingerprint
from harness.context import RunContext
from harness.errors import HarnessError
from harness.types import Example, Prompt, Suite


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(strategy: str, key: str, raw: Any, default: Any) -> Any:
    """Turn an option given as text (CLI) or TOML value into the type of its default."""
    if not isinstance(raw, str) or isinstance(default, str) or default is None:
        return raw
    try:
        if isinstance(default, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, (list, tuple)):
            return tuple(s for s in raw.replace("+", ",").split(",") if s)
    except ValueError:
        pass
    raise HarnessError(f"strategy '{strategy}': option {key}={raw!r} should be a {type(default).__name__}")


class Strategy:
    """Base class for strategies. Subclasses set `kind`, `options` (defaults) and the two methods."""

    kind: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, name: str | None = None, **params: Any):
        self.name = name or self.kind
        unknown = [k for k in params if k not in self.options]
        if unknown:
            k = unknown[0]
            known = ", ".join(sorted(self.options)) or "none"
            raise HarnessError(
                f"strategy '{self.kind}' has no option '{k}'{did_you_mean(k, list(self.options))}; options: {known}"
            )
        self.params: dict[str, Any] = {k: _coerce(self.kind, k, params.get(k, d), d) for k, d in self.options.items()}
        for key, allowed in self.choices.items():
            if self.params[key] not in allowed:
                raise HarnessError(
                    f"strategy '{self.kind}': {key}={self.params[key]!r} is not one of {', '.join(allowed)}"
                    + did_you_mean(str(self.params[key]), allowed)
                )
        self.adapter: Path | None = None  # set by prepare() when decoding needs a LoRA adapter
        self._artifacts: dict[str, Any] = {}  # what prepare() built: folds into the fingerprint

    def check(self, suite: Suite) -> None:
        """Refuse a suite this strategy cannot run on (HarnessError), before any model work."""

    def prepare(self, suite: Suite, ctx: RunContext) -> None:  # pragma: no cover - trivial default
        """Train, index or choose shots. Cached work is keyed on what it depends on."""

    def prompts(self, examples: Sequence[Example]) -> list[Prompt]:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Identity of this strategy's predictions: kind, params and what prepare() built."""
        return fingerprint({"kind": self.kind, "params": self.params, "artifacts": self._artifacts})

    def details(self) -> dict[str, Any]:
        """Extra sections for results.json: {"retrieval": ..., "training": ...} where they apply."""
        return {}
