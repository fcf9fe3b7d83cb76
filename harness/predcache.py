"""Prediction cache: a rerun of an unchanged comparison does no model work.

One JSONL file per (strategy fingerprint, model weights, decoding config), one line per decoded
prompt, appended and fsynced batch by batch, so an interrupted run resumes where it stopped.
A torn last line (killed mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .cache import fingerprint
from .types import Chat, Generation


def prompt_key(chat: Chat) -> str:
    return fingerprint(chat, length=24)


class PredictionCache:
    def __init__(self, root: Path, identity: dict[str, Any]):
        self.path = root / "predictions" / f"{fingerprint(identity)}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, Generation] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    d = json.loads(line)
                    self.entries[d["key"]] = Generation(d["text"], d["latency_s"], d["prompt_tokens"], d["output_tokens"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue

    def get(self, key: str) -> Generation | None:
        return self.entries.get(key)

    def add_many(self, items: list[tuple[str, Generation]]) -> None:
        lines = "".join(
            json.dumps(
                {"key": k, "text": g.text, "latency_s": g.latency_s, "prompt_tokens": g.prompt_tokens, "output_tokens": g.output_tokens},
                ensure_ascii=False,
            )
            + "\n"
            for k, g in items
        )
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())
        for k, g in items:
            self.entries[k] = g
