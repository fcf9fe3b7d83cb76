"""The model backend interface (DESIGN.md, "Extension points: Model backend").

A handful of methods, like an HTTP client's transport: decode a list of chats with a decoding
config, count tokens, describe itself for results.json, and apply a LoRA adapter where it can.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.core.types import Chat, Generation, GenerationConfig

# Called after each decoded batch (or each group of finished requests) with the positions in the
# caller's list and their generations, so the caller can record and cache them as they come.
OnBatch = Callable[[list[int], list[Generation]], None]


@runtime_checkable
class Backend(Protocol):
    """What the runner and strategies decode with.

    `generate` returns one `Generation` per chat, in the caller's order; a generation whose
    request failed for good has `error` set (recorded for its example, never cached) while the
    others go on. An error that will not get better (a refused key, an unknown model) raises
    `HarnessError` at once. `truncated` counts prompts cut to fit the model's context.
    """

    name: str  # "transformers", "openai"
    truncated: int

    def generate(
        self, chats: Sequence[Chat], config: GenerationConfig, *, on_batch: OnBatch | None = None
    ) -> list[Generation]: ...

    def count_tokens(self, text: str) -> int: ...

    def describe(self) -> dict[str, Any]:
        """What results.json says of the model: backend, id, base_url or weights' sha256; never a secret."""
        ...

    def adapter(self, path: Path | None) -> contextlib.AbstractContextManager[None]:
        """Decode with a LoRA adapter inside the block (a no-op for None); HarnessError if it cannot."""
        ...
