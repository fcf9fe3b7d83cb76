"""The default backend: local weights through transformers (harness.engine.generate.Engine)."""

from __future__ import annotations

from typing import Any

from harness.engine.generate import Engine


class TransformersBackend(Engine):
    """Batched greedy decoding on local weights, LoRA adapters through PEFT: the `Engine` as a `Backend`."""

    name = "transformers"

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "id": self.loaded.name, **self.loaded.info()}
