"""The model backend interface (DESIGN.md, "Extension points: Model backend").

Like an HTTP client's transport, one narrow seam: everything the runner, the strategies, the
forgetting check and the judges ask of a model goes through a `Backend`, and no code outside
`harness/engine/backends/` asks which class a backend is. A backend is a plugin like a strategy
or a metric: a class registered by name (`harness.engine.backends`), built from a [[models]]
table (`ModelSpec`) whose backend-specific keys it declares in `options`.

A new backend subclasses `Backend` and implements `generate` and `identity`; the rest have
defaults that say plainly what the backend cannot do (no continuation scores, no adapters, no
local weights to train on). README "Writing a backend" shows a complete one.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.core.config import ModelOption, ModelSpec
from harness.core.errors import Unsupported
from harness.core.types import Chat, ContinuationScores, Generation, GenerationConfig, ScoreRequest

if TYPE_CHECKING:
    from harness.engine.models import LoadedModel

# Called after each decoded batch (or each group of finished requests) with the positions in the
# caller's list and their results, so the caller can record and cache them as they come.
OnBatch = Callable[[list[int], list[Generation]], None]
OnScored = Callable[[list[int], list[ContinuationScores]], None]

# What a backend can do beyond generating text; `Backend.can` answers, the plan refuses early.
SCORE = "score"  # log-probabilities of given continuations (answer=choice, perplexity)
CONSTRAIN = "constrain"  # decoding limited to a label set or a JSON schema (answer=constrained)
ADAPTER = "adapter"  # decode with a LoRA adapter applied
TRAIN = "train"  # local weights a LoRA adapter can be trained on
CAPABILITIES = (SCORE, CONSTRAIN, ADAPTER, TRAIN)
CHARS_PER_TOKEN = 4  # count_tokens without a tokenizer: the usual rule of thumb for English text


@dataclass(frozen=True)
class BuildContext:
    """What building a backend may use: the run's device and trust setting, the decoding batch size,
    and `load_local(id)`, the run's one LoadedModel per local model id (tokenizer now, weights on
    first use), so backends that share weights share one copy."""

    device: str
    trust_remote_code: bool = False
    batch_size: int = 16
    load_local: Callable[[str], LoadedModel] | None = None
    seed: int = 0


class Backend:
    """Base class of every model backend. Subclasses set `name` (the registry key), `options`
    (their [[models]] keys) and `capabilities`, and implement `generate` and `identity`."""

    name: ClassVar[str] = ""
    options: ClassVar[Mapping[str, ModelOption]] = {}
    capabilities: ClassVar[frozenset[str]] = frozenset()
    truncated: int = 0  # prompts cut to fit the model's context, over the backend's life

    # -- building (class level: checked before anything loads) -----------------------------
    @classmethod
    def check_spec(cls, spec: ModelSpec, *, device: str, where: str) -> None:
        """Refuse (HarnessError, prefixed with `where`) a model this backend cannot run here:
        weights that do not exist, a package or a device it needs. Nothing is loaded."""

    @classmethod
    def share_key(cls, spec: ModelSpec) -> str:
        """Specs with the same key share one backend instance (by default each is its own)."""
        return f"{cls.name}\0{spec.name}"

    @classmethod
    def build(cls, spec: ModelSpec, ctx: BuildContext) -> Backend:
        """The backend for `spec`; anything it can check cheaply (a server, a key) is checked now."""
        raise NotImplementedError(f"backend {cls.name} does not say how to build itself")

    @classmethod
    def can(cls, capability: str, spec: ModelSpec | None = None) -> bool:
        """Whether this backend (for this [[models]] table, where it depends on one) can do that."""
        return capability in cls.capabilities

    # -- decoding -------------------------------------------------------------------------------
    def generate(self, chats: Sequence[Chat], config: GenerationConfig, *,
                 on_batch: OnBatch | None = None) -> list[Generation]:
        """One `Generation` per chat, in the caller's order. A request that failed for good has
        `error` set (recorded for its example, never cached) while the others go on; an error that
        will not get better (a refused key, an unknown model) raises HarnessError at once."""
        raise NotImplementedError

    def score(self, requests: Sequence[ScoreRequest], *, on_batch: OnScored | None = None) -> list[ContinuationScores]:
        """Each request's continuations scored after its prompt (see ScoreRequest), in order."""
        raise Unsupported(f"the {self.name} backend cannot score continuations (log-probabilities of given "
                          "answers): use answer=constrained or answer=free with it")

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` (by default an estimate: about 4 characters a token)."""
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    @contextlib.contextmanager
    def adapter(self, path: Path | None) -> Iterator[None]:
        """Decode (and score) with a LoRA adapter inside the block; a no-op for None."""
        if path is not None:
            raise Unsupported(f"the {self.name} backend ({self.identity()}) cannot apply a LoRA adapter ({path}): "
                              "decode adapter strategies with a local backend")
        yield

    # -- identity and records --------------------------------------------------------------------
    def identity(self) -> str:
        """What identifies the model in cache keys: weights' sha256, or a server and model name
        (never a key, never how many requests run at once)."""
        raise NotImplementedError

    def record(self) -> dict[str, Any]:
        """What results.json says of the model (the caller adds its [[models]] name): backend, id,
        and what pins it down (sha256 of weights, a served model's address); never a secret."""
        return {"backend": self.name, "id": self.identity()}

    def token_prices(self) -> tuple[float, float] | None:
        """USD per million input and output tokens, for a model paid by the token (else None:
        priced by device hours)."""
        return None

    # -- weights -------------------------------------------------------------------------------
    def local_weights(self) -> LoadedModel | None:
        """Local weights a strategy may train a LoRA adapter on (None: a served model)."""
        return None

    @property
    def weights_loaded(self) -> bool:
        """Whether the backend loaded model weights into this process during the run."""
        return False

    def free(self) -> None:
        """Give back the memory the weights hold (no later strategy decodes with this model)."""

    def close(self) -> None:
        """Release connections and processes at the end of the run."""
