"""`prompt`: the base model with an engineered prompt, zero-shot or k-shot.

Shots come from the train split, chosen at random (seeded, the same for every test example) or
per test example by embedding similarity (`select=knn`), and enter the chat as worked turns.
`Shots` is reusable: `rag:shots=4:select=knn` puts the same worked examples before the passages.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar

from harness.core.errors import HarnessError
from harness.core.types import Example, Prompt, Suite
from harness.engine.context import Prepared, StrategyContext
from harness.engine.prompting import build_messages

from .base import Strategy


class Shots:
    """k worked examples per test input, drawn from the train split (fixed or nearest neighbours)."""

    def __init__(self, k: int, select: str):
        self.k, self.select = k, select
        self._fixed: list[Example] = []
        self._train: tuple[Example, ...] = ()
        self._train_vectors: Any = None
        self._ctx: StrategyContext | None = None

    @staticmethod
    def check(name: str, k: int, suite: Suite) -> None:
        if k and len(suite.train) < k:
            raise HarnessError(f"strategy '{name}': {k} shots but suite '{suite.name}' has {len(suite.train)} train examples")

    def prepare(self, suite: Suite, ctx: StrategyContext) -> dict[str, Any]:
        """Draw or index the shots; returns what the prompts depend on (for the cache identity)."""
        self._train, self._ctx = suite.train, ctx
        if not self.k:
            return {}
        if self.select == "knn":
            self._train_vectors = ctx.embed([ex.input for ex in suite.train])
            return {"shots": "knn", "train": suite.sha256, "embedder": ctx.encoder.identity}
        self._fixed = random.Random(ctx.seed).sample(list(suite.train), self.k)
        return {"shots": [ex.id for ex in self._fixed], "train": suite.sha256}

    def fixed(self) -> list[Example] | None:
        """The shots every input gets (none for k=0); None when they are chosen per input (knn)."""
        return None if self._train_vectors is not None else list(self._fixed)

    def for_examples(self, examples: Sequence[Example]) -> list[list[Example]]:
        if not self.k:
            return [[] for _ in examples]
        if self._train_vectors is None:
            return [self._fixed] * len(examples)
        import numpy as np

        assert self._ctx is not None
        queries = self._ctx.embed([ex.input for ex in examples])
        scores = np.asarray(queries) @ np.asarray(self._train_vectors).T
        # Most similar last, so the closest example sits right before the question.
        return [[self._train[int(i)] for i in np.argsort(-row, kind="stable")[: self.k][::-1]] for row in scores]


class PromptStrategy(Strategy):
    kind = "prompt"
    options: ClassVar[dict[str, Any]] = {"k": 0, "select": "random"}
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"select": ("random", "knn")}

    def check_params(self) -> None:
        if int(self.params["k"]) < 0:
            raise HarnessError(f"strategy '{self.name}': k must be 0 or more, got {self.params['k']}")

    def needs_embedder(self) -> bool:
        return int(self.params["k"]) > 0 and self.params["select"] == "knn"

    def uses_train(self) -> bool:
        return int(self.params["k"]) > 0  # shots (and the knn pool) come from the train split

    def check(self, suite: Suite) -> None:
        Shots.check(self.name, int(self.params["k"]), suite)

    def prepare(self, suite: Suite, ctx: StrategyContext) -> Prepared:
        self.suite = suite
        self.shots = Shots(int(self.params["k"]), str(self.params["select"]))
        return Prepared(artifacts=self.shots.prepare(suite, ctx))

    def prompts(self, examples: Sequence[Example]) -> list[Prompt]:
        return [
            Prompt(build_messages(self.suite, ex.input, shots=shots))
            for ex, shots in zip(examples, self.shots.for_examples(examples), strict=True)
        ]
