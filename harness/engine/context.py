"""What a strategy may use while it prepares, and what it hands back.

Strategies get a `StrategyContext`: token counting on the generator's tokenizer, an embedding
encoder, the trainer, the cache, progress bars. They never get the raw model object, so the
runner decides when weights load (a fully cached rerun loads none) and which backend decodes.
`prepare` returns a `Prepared`: what it built is part of the prediction-cache identity by
construction, so a strategy cannot be served stale predictions for a changed adapter or index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.core.errors import HarnessError
from harness.engine.backends.base import Backend
from harness.engine.models import DEFAULT_EMBEDDER, LoadedModel

if TYPE_CHECKING:
    import numpy as np

    from harness.core.types import Chat
    from harness.engine.encoder import Encoder
    from harness.engine.training import TrainConfig, TrainedAdapter


def make_progress(console: Console | None = None, *, eta: bool = True) -> Progress:
    """The one progress bar style used for every long step (loading, training, indexing, decoding),
    with the time left (rich's estimate from the rate so far)."""
    time_left = (TextColumn("eta"), TimeRemainingColumn()) if eta else ()
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        *time_left,
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )


@dataclass(frozen=True)
class Prepared:
    """What `Strategy.prepare` built.

    `artifacts`: fingerprints of what the predictions depend on beyond the strategy's options
    (an index, chosen shots, an adapter's cache key). `adapter`: the LoRA adapter folder to decode
    with; the runner adds the hash of its weights to the cache identity itself.
    """

    artifacts: dict[str, Any] = field(default_factory=dict)
    adapter: Path | None = None


class StrategyContext:
    """The run's services for strategies (see the module docstring)."""

    def __init__(
        self,
        *,
        seed: int,
        cache_dir: Path,
        run_dir: Path,
        backend: Backend,
        embedder_name: str = DEFAULT_EMBEDDER,
        encoder: Encoder | None = None,
        console: Console | None = None,
        trust_remote_code: bool = False,
    ):
        self.seed = seed
        self.cache_dir = Path(cache_dir)
        self.run_dir = Path(run_dir)
        self.console = console or Console(stderr=True)
        self.embedder_name = embedder_name
        self.trust_remote_code = trust_remote_code
        self._backend = backend  # the strategy's model
        self._weights = backend.local_weights()  # None: a served model (no training)
        self._encoder = encoder

    # -- the model, without its weights ----------------------------------------------------------
    @property
    def local(self) -> bool:
        """Whether the strategy's model has local weights (an API model has none: no training)."""
        return self._weights is not None

    def _local(self, what: str) -> LoadedModel:
        if self._weights is None:
            raise HarnessError(f"{what} needs local weights: the model ({self._backend.name} backend, "
                               f"{self._backend.identity()}) is served by an API; fine-tuning needs local weights")
        return self._weights

    @property
    def device(self) -> str:
        return self._weights.device if self._weights is not None else "api"

    @property
    def model_id(self) -> str:
        """What identifies the weights an adapter is trained on (a served model: its identity) in cache keys."""
        if self._weights is None:
            return self._backend.identity()
        return self._weights.sha256 or self._weights.path

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer: prompts are rendered and counted with it (None for an API model)."""
        return self._weights.tokenizer if self._weights is not None else None

    def count_tokens(self, text: str) -> int:
        return int(self._backend.count_tokens(text))

    # -- embeddings ------------------------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        """The run's embedder (loaded only when a vector is not in the cache)."""
        if self._encoder is None:
            from harness.engine.encoder import Encoder

            self._encoder = Encoder(self.embedder_name, trust_remote_code=self.trust_remote_code,
                                    cache_dir=self.cache_dir)
        return self._encoder

    @property
    def encoder_loaded(self) -> bool:
        return self._encoder is not None and self._encoder.loaded

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(texts)

    # -- training --------------------------------------------------------------------------------
    def train_adapter(
        self,
        train_pairs: Sequence[tuple[Chat, str]],
        validation_pairs: Sequence[tuple[Chat, str]],
        config: TrainConfig,
        *,
        description: str = "train",
    ) -> TrainedAdapter:
        """Train (or take from the cache) a LoRA adapter of the generator on these pairs."""
        from harness.engine.training import train_adapter

        generator = self._local("training a LoRA adapter")
        with self.progress() as progress:
            return train_adapter(
                model_path=generator.path,
                model_id=self.model_id,
                tokenizer=generator.tokenizer,
                train_pairs=train_pairs,
                validation_pairs=validation_pairs,
                config=config,
                end_ids=generator.end_token_ids(),
                device=self.device,
                progress=progress,
                description=description,
                cache_dir=self.cache_dir,
            )

    def check_adapter_fits(self, weights: Path) -> None:
        """Refuse (HarnessError) a LoRA adapter whose layers the generator lacks or sizes differ."""
        from harness.engine.models import check_lora_fits

        check_lora_fits(weights, self._local("a LoRA adapter"))

    def progress(self) -> Progress:
        return make_progress(self.console)
