"""Sentence embeddings for strategies: one lazy encoder per run, with an on-disk cache.

Few-shot knn prompting embeds the train split and every test input; rag embeds the corpus (its
index is cached on its own) and the queries. On a rerun the same texts give the same vectors,
so they come from the cache and the embedder is never loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.cache import cache_root, fingerprint


def embed(embedder: Any, texts: Sequence[str], *, batch_size: int = 64, progress: Any = None) -> np.ndarray:
    """float32 [n, dim] L2-normalised embeddings, computed in batches (a rich Progress is advanced)."""
    # sentence-transformers 6 renamed the method; older releases only have the long name.
    dim_of = getattr(embedder, "get_embedding_dimension", None) or embedder.get_sentence_embedding_dimension
    dim = int(dim_of())
    out = np.zeros((len(texts), dim), dtype=np.float32)
    if not texts:
        return out
    # Sort by length so each batch pads little; results are written back in input order.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    task = progress.add_task("embedding", total=len(texts), info="") if progress is not None else None
    for lo in range(0, len(order), batch_size):
        idx = order[lo : lo + batch_size]
        vecs = embedder.encode(
            [texts[i] for i in idx],
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        out[idx] = np.asarray(vecs, dtype=np.float32)
        if task is not None:
            progress.advance(task, len(idx))
    return out


class Encoder:
    """`encode(texts)` -> float32 [n, dim], L2-normalised; the model loads on the first miss."""

    def __init__(self, name: str, *, trust_remote_code: bool = False, cache_dir: Path | None = None):
        from harness.engine.models import check_model_ref, weights_sha256

        self.name = name
        self.trust_remote_code = trust_remote_code
        resolved = check_model_ref(name, "--embedder")
        self.source = resolved.source
        # Vectors are keyed by the weights, not the name: a retrained folder gets new vectors.
        self.identity = (weights_sha256(resolved.source) if resolved.is_local else "") or name
        self.cache_dir = (cache_dir or cache_root()) / "embeddings"
        self._model: Any = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> Any:
        """The sentence-transformers model (loads it: only building an index or a cache miss needs it)."""
        if self._model is None:
            from harness.engine.models import load_embedder

            self._model = load_embedder(self.name, trust_remote_code=self.trust_remote_code)
        return self._model

    def max_seq_length(self) -> int | None:
        """How many tokens the embedder reads, from its folder's config when it has one."""
        config = Path(self.source) / "sentence_bert_config.json"
        if self._model is None and config.is_file():
            try:
                value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
                return int(value) if value else None
            except (OSError, ValueError, TypeError):
                pass
        return int(getattr(self.model, "max_seq_length", 0) or 0) or None

    def encode(self, texts: Sequence[str], *, progress: Any = None) -> np.ndarray:
        path = self.cache_dir / f"{self._key(texts)}.npy"
        if path.is_file():
            try:
                vecs = np.load(path, allow_pickle=False)
                if vecs.shape[0] == len(texts):
                    return vecs
            except (OSError, ValueError):
                pass  # a torn or foreign file: recompute and replace it
        vecs = embed(self.model, list(texts), progress=progress)
        self._store(path, vecs)
        return vecs

    def _key(self, texts: Sequence[str]) -> str:
        h = hashlib.sha256()
        for t in texts:
            h.update(hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest())
        return fingerprint({"embedder": self.identity, "texts": h.hexdigest(), "format": "l2-float32/v1"}, length=24)

    def _store(self, path: Path, vecs: np.ndarray) -> None:
        import os
        import tempfile

        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, vecs, allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
