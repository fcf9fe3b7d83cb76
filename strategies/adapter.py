"""`adapter`: evaluate an existing PEFT adapter (trained elsewhere) without training.

`adapter:path=/models/ticket-lora` decodes the zero-shot prompt with that adapter on the base
model, so a production adapter can be compared with the strategies trained here, or gated.
Weights must be safetensors (untrusted input stays data: no pickles).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.core.cache import sha256_file
from harness.core.errors import HarnessError
from harness.core.types import Example, Prompt, Suite
from harness.engine.adapter_checks import check_b_nonzero_file
from harness.engine.context import Prepared, StrategyContext
from harness.engine.prompting import build_messages

from .base import Strategy

WEIGHTS = "adapter_model.safetensors"


def read_adapter_config(folder: Path) -> dict[str, Any]:
    """adapter_config.json of a PEFT adapter folder, or a HarnessError that says what is wrong."""
    if not folder.is_dir():
        raise HarnessError(f"adapter: {folder} is not a folder")
    cfg_file = folder / "adapter_config.json"
    if not cfg_file.is_file():
        raise HarnessError(f"adapter: {folder} is not a PEFT adapter folder (no adapter_config.json)")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # ValueError: bad JSON, bad UTF-8, a 5,000-digit number
        raise HarnessError(f"adapter: {cfg_file} is not valid JSON: {type(e).__name__}: {str(e)[:200]}") from None
    if not isinstance(config, dict) or "peft_type" not in config:
        raise HarnessError(f"adapter: {cfg_file} has no peft_type: not a PEFT adapter config")
    if not (folder / WEIGHTS).is_file():
        hint = (
            " (only adapter_model.bin: convert it to safetensors)"
            if (folder / "adapter_model.bin").exists()
            else ""
        )
        raise HarnessError(f"adapter: {folder} has no {WEIGHTS}{hint}")
    for key in ("r", "lora_alpha"):
        if key in config and not (isinstance(config[key], int) and not isinstance(config[key], bool) and config[key] > 0):
            raise HarnessError(f"adapter: {cfg_file}: '{key}' must be a positive whole number, got {config[key]!r}")
    modules = config.get("target_modules")
    if modules is not None and not isinstance(modules, str) and not (
        isinstance(modules, list) and all(isinstance(m, str) for m in modules)
    ):
        raise HarnessError(f"adapter: {cfg_file}: 'target_modules' must be a name or a list of names")
    _check_safetensors(folder / WEIGHTS)
    return config


def _check_safetensors(path: Path) -> None:
    """Read the weights' header now: a truncated or foreign file is the user's input, not our crash."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            list(f.keys())
    except Exception as e:
        raise HarnessError(f"adapter: {path} is not a readable safetensors file ({str(e)[:120]})") from None


class AdapterStrategy(Strategy):
    kind = "adapter"
    options: ClassVar[dict[str, Any]] = {"path": ""}
    needs_local_weights: ClassVar[bool] = True

    def __init__(self, name: str | None = None, **params: Any):
        super().__init__(name, **params)
        if not self.params["path"]:
            raise HarnessError("strategy 'adapter' needs path=FOLDER (a PEFT adapter folder)")
        self.path = Path(str(self.params["path"])).expanduser().resolve()
        self.config = read_adapter_config(self.path)  # fail before any model loads
        self.sha256 = ""

    def uses_train(self) -> bool:
        return False  # trained elsewhere: the train split shapes nothing here

    def prepare(self, suite: Suite, ctx: StrategyContext) -> Prepared:
        self.suite = suite
        self.config = read_adapter_config(self.path)
        if self.config.get("peft_type") == "LORA":
            ctx.check_adapter_fits(self.path / WEIGHTS)
            check_b_nonzero_file(self.path / WEIGHTS)
        self.sha256 = sha256_file(self.path / WEIGHTS)
        # The runner keys predictions on the adapter's weights; its config changes them too.
        return Prepared(artifacts={"config_sha256": sha256_file(self.path / "adapter_config.json")}, adapter=self.path)

    def prompts(self, examples: Sequence[Example]) -> list[Prompt]:
        return [Prompt(build_messages(self.suite, ex.input)) for ex in examples]

    def details(self) -> dict[str, Any]:
        c = self.config
        return {
            "adapter": {
                "path": str(self.path),
                "sha256": self.sha256,
                "peft_type": c.get("peft_type"),
                "base_model_name_or_path": c.get("base_model_name_or_path"),
                "r": c.get("r"),
                "lora_alpha": c.get("lora_alpha"),
                "target_modules": c.get("target_modules"),
            }
        }
