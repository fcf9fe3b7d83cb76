"""What a strategy may use while it prepares: the loaded generator, the embedder, caches, progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from .models import DEFAULT_EMBEDDER, LoadedModel, load_embedder


def make_progress(console: Console | None = None) -> Progress:
    """The one progress bar style used for every long step (loading, training, indexing, decoding)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )


@dataclass
class RunContext:
    seed: int
    cache_dir: Path
    run_dir: Path
    generator: LoadedModel
    embedder_name: str = DEFAULT_EMBEDDER
    console: Console = field(default_factory=lambda: Console(stderr=True))
    trust_remote_code: bool = False
    _embedder: Any = None

    @property
    def device(self) -> str:
        return self.generator.device

    def embedder(self) -> Any:
        """The sentence-transformers embedder, loaded on first use and shared by all strategies."""
        if self._embedder is None:
            self._embedder = load_embedder(self.embedder_name, trust_remote_code=self.trust_remote_code)
        return self._embedder

    def progress(self) -> Progress:
        return make_progress(self.console)
