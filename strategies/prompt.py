"""`prompt`: the base model with an engineered prompt, zero-shot or k-shot.

Shots come from the train split, chosen at random (seeded, the same for every test example) or
per test example by embedding similarity (`select=knn`), and enter the chat as worked turns.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar

from harness.context import RunContext
from harness.errors import HarnessError
from harness.prompting import build_messages
from harness.types import Example, Prompt, Suite

from .base import Strategy


class PromptStrategy(Strategy):
    kind = "prompt"
    options: ClassVar[dict[str, Any]] = {"k": 0, "select": "random"}
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"select": ("random", "knn")}

    def check_params(self) -> None:
        if int(self.params["k"]) < 0:
            raise HarnessError(f"strategy '{self.name}': k must be 0 or more, got {self.params['k']}")

    def check(self, suite: Suite) -> None:
        k = int(self.params["k"])
        if k and len(suite.train) < k:
            raise HarnessError(f"strategy '{self.name}': k={k} but suite '{suite.name}' has {len(suite.train)} train examples")

    def prepare(self, suite: Suite, ctx: RunContext) -> None:
        self.suite = suite
        self.ctx = ctx
        k = int(self.params["k"])
        self._fixed_shots: list[Example] = random.Random(ctx.seed).sample(list(suite.train), k) if k else []
        self._train_vectors = None
        if k and self.params["select"] == "knn":
            self._train_vectors = ctx.embedder().encode(
                [ex.input for ex in suite.train], normalize_embeddings=True, batch_size=64, show_progress_bar=False
            )
        self._artifacts = {"suite": suite.sha256, "seed": ctx.seed if k else None}

    def _knn_shots(self, examples: Sequence[Example]) -> list[list[Example]]:
        import numpy as np

        queries = self.ctx.embedder().encode(
            [ex.input for ex in examples], normalize_embeddings=True, batch_size=64, show_progress_bar=False
        )
        scores = np.asarray(queries) @ np.asarray(self._train_vectors).T
        k = int(self.params["k"])
        train = self.suite.train
        out = []
        for row in scores:
            # Most similar last, so the closest example sits right before the question.
            top = [int(i) for i in np.argsort(-row, kind="stable")[:k]][::-1]
            out.append([train[i] for i in top])
        return out

    def prompts(self, examples: Sequence[Example]) -> list[Prompt]:
        if self._train_vectors is not None:
            shots_per_example = self._knn_shots(examples)
        else:
            shots_per_example = [self._fixed_shots] * len(examples)
        return [
            Prompt(build_messages(self.suite, ex.input, shots=shots))
            for ex, shots in zip(examples, shots_per_example, strict=True)
        ]
