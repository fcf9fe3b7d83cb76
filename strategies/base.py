"""The strategy plugin interface: decide what the model sees (and which adapter decodes it).

A strategy never decodes: the runner hands its prompts to the one shared engine, so every
strategy is decoded the same way and the comparison stays fair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from harness.core.errors import HarnessError
from harness.core.text import did_you_mean
from harness.core.types import ANSWER_MODES, CHOICE_NORMS, AnswerMode, Example, Prompt, Suite
from harness.engine.context import Prepared, StrategyContext


def _type_word(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, (list, tuple)):
        return 'a list of names (a+b on the command line, ["a", "b"] in TOML)'
    return "text"


def _from_text(raw: str, default: Any) -> Any:
    """An option typed on the command line, as the type of its default (ValueError if it is not one)."""
    if isinstance(default, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(raw)
        return value
    if isinstance(default, (list, tuple)):
        return tuple(s for s in raw.replace("+", ",").split(",") if s)
    return raw


def _coerce(strategy: str, key: str, raw: Any, default: Any) -> Any:
    """An option given as text (CLI) or as a TOML value, checked against the type of its default.

    TOML values are not converted silently: `k = 1.5` or `k = true` for a whole number, or a
    number for a text option, is refused rather than read as 1.
    """
    if default is None:
        return raw
    try:
        if isinstance(raw, str) and not isinstance(default, str):
            return _from_text(raw, default)
        if isinstance(default, bool):
            ok = isinstance(raw, bool)
        elif isinstance(default, int):
            ok = isinstance(raw, int) and not isinstance(raw, bool)
        elif isinstance(default, float):
            ok = isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw)
            raw = float(raw) if ok else raw
        elif isinstance(default, (list, tuple)):
            ok = isinstance(raw, (list, tuple)) and all(isinstance(x, str) for x in raw)
            raw = tuple(raw) if ok else raw
        else:
            ok = isinstance(raw, str)
        if ok:
            return raw
    except (ValueError, OverflowError):
        pass
    raise HarnessError(f"strategy '{strategy}': option {key}={raw!r} should be {_type_word(default)}")


class Strategy:
    """Base class for strategies. Subclasses set `kind`, `options` (defaults) and the two methods."""

    kind: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Options that change how the work is done, not what it produces (left out of cache keys).
    neutral_options: ClassVar[frozenset[str]] = frozenset()

    # Options every strategy accepts besides its own: `model`, the [[models]] name to decode with
    # ("" is the run's --model). Kept out of `params`, so it reaches cache keys only as the model's identity.
    # `answer`, `choice_norm`, `calibrate`: how the answer comes out of the model (harness.core.types.
    # AnswerMode); "" leaves it to the run's --answer. Kept out of `params` like `model`: they reach
    # the cache key through the prediction identity, and free decoding keeps the keys it had.
    common_options: ClassVar[dict[str, Any]] = {"model": "", "answer": "", "choice_norm": "", "calibrate": ""}
    # Whether the strategy trains or applies a LoRA adapter (then it needs a model with local weights).
    needs_local_weights: ClassVar[bool] = False

    def __init__(self, name: str | None = None, **params: Any):
        self.name = name or self.kind
        model = params.pop("model", "")
        if not isinstance(model, str):
            raise HarnessError(f"strategy '{self.kind}': option model={model!r} should be text (a [[models]] name)")
        self.model: str = model.strip()
        self.answer = self._answer_options(params)
        unknown = [k for k in params if k not in self.options]
        if unknown:
            k = unknown[0]
            known = ", ".join(sorted({*self.options, *self.common_options}))
            raise HarnessError(
                f"strategy '{self.kind}' has no option '{k}'{did_you_mean(k, [*self.options, *self.common_options])}; "
                f"options: {known}"
            )
        self.params: dict[str, Any] = {k: _coerce(self.kind, k, params.get(k, d), d) for k, d in self.options.items()}
        for key, allowed in self.choices.items():
            if self.params[key] not in allowed:
                raise HarnessError(
                    f"strategy '{self.kind}': {key}={self.params[key]!r} is not one of {', '.join(allowed)}"
                    + did_you_mean(str(self.params[key]), allowed)
                )
        self.check_params()  # refuse bad values now, before any model loads or folder is made

    def _answer_options(self, params: dict[str, Any]) -> dict[str, Any]:
        """The answer options given to this strategy (popped from `params`), checked."""
        given: dict[str, Any] = {k: params.pop(k) for k in ("answer", "choice_norm", "calibrate") if k in params}
        allowed = {"answer": ANSWER_MODES, "choice_norm": CHOICE_NORMS}
        for key, value in given.items():
            if key == "calibrate":
                given[key] = _coerce(self.kind, key, value, False)
            elif value not in allowed[key]:
                raise HarnessError(f"strategy '{self.kind}': {key}={value!r} is not one of {', '.join(allowed[key])}"
                                   + did_you_mean(str(value), allowed[key]))
        return given

    def answer_mode(self, default: AnswerMode) -> AnswerMode:
        """This strategy's answer mode: its own options over the run's default."""
        return AnswerMode(self.answer.get("answer", default.mode), self.answer.get("choice_norm", default.norm),
                          bool(self.answer.get("calibrate", default.calibrate)))

    def check_params(self) -> None:
        """Refuse option values out of range (HarnessError naming the option); types are already checked."""

    def check_device(self, device: str) -> None:
        """Refuse (HarnessError) a device this strategy cannot run on, before any model loads."""

    def needs_embedder(self) -> bool:
        """Whether prepare() or prompts() embed text (the run then checks the embedder first)."""
        return False

    def uses_train(self) -> bool:
        """Whether what it builds depends on the train split (a learning curve then measures it at
        every train size; otherwise once). True unless a strategy says otherwise: a curve that
        measures a plugin at every size wastes time, one that measures it once would be wrong."""
        return True

    def check(self, suite: Suite) -> None:
        """Refuse a suite this strategy cannot run on (HarnessError), before any model work."""

    def prepare(self, suite: Suite, ctx: StrategyContext) -> Prepared:
        """Train, index or choose shots (cached work is keyed on what it depends on), and return
        what was built: it becomes part of the predictions' cache identity."""
        self.suite = suite
        return Prepared()

    def prompts(self, examples: Sequence[Example]) -> list[Prompt]:
        raise NotImplementedError

    def details(self) -> dict[str, Any]:
        """Extra sections for results.json: {"retrieval": ..., "training": ...} where they apply."""
        return {}
