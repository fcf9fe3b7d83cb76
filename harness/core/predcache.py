"""Prediction cache: a rerun of an unchanged comparison does no model work.

One JSONL file per (strategy fingerprint, model weights, decoding config), one line per decoded
prompt (a local generation or an API response; a failed request is not cached), appended and
fsynced batch by batch, so an interrupted run resumes where it stopped.
A torn last line (a writer killed mid-line) is skipped on reading and closed before the next
append (harness.jsonl), so no entry is ever lost or glued to the fragment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core import jsonl
from harness.core.cache import fingerprint
from harness.core.types import Chat, Generation


def prompt_key(chat: Chat) -> str:
    return fingerprint(chat, length=24)


def _generation(d: Any) -> tuple[str, Generation] | None:
    """A cache line as (key, generation), or None when it is not a complete, well-typed entry."""
    if not isinstance(d, dict):
        return None
    key, text = d.get("key"), d.get("text")
    numbers = [d.get(k) for k in ("latency_s", "prompt_tokens", "output_tokens")]
    if not isinstance(key, str) or not isinstance(text, str):
        return None
    if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
        return None
    request = d.get("request_latency_s")
    request = float(request) if isinstance(request, (int, float)) and not isinstance(request, bool) else None
    scores = d.get("choice_scores")
    if scores is not None and not (isinstance(scores, list) and all(
            isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores)):
        return None
    return key, Generation(text, float(numbers[0]), int(numbers[1]), int(numbers[2]),  # type: ignore[arg-type]
                           request_latency_s=request,
                           choice_scores=tuple(float(s) for s in scores) if scores is not None else None)


def _line(key: str, g: Generation) -> dict[str, Any]:
    line: dict[str, Any] = {"key": key, "text": g.text, "latency_s": g.latency_s, "prompt_tokens": g.prompt_tokens,
                            "output_tokens": g.output_tokens}
    if g.request_latency_s is not None:
        line["request_latency_s"] = g.request_latency_s
    if g.choice_scores is not None:
        line["choice_scores"] = list(g.choice_scores)
    return line


class PredictionCache:
    def __init__(self, root: Path, identity: dict[str, Any]):
        self.path = root / "predictions" / f"{fingerprint(identity)}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, Generation] = {}
        if self.path.exists():
            for line in jsonl.read(self.path):
                entry = _generation(line.value)
                if entry is not None:
                    self.entries[entry[0]] = entry[1]

    def get(self, key: str) -> Generation | None:
        return self.entries.get(key)

    def add_many(self, items: list[tuple[str, Generation]]) -> None:
        """Append generations; a failed one (`error` set) is never cached, so a rerun asks again."""
        items = [(k, g) for k, g in items if g.error is None]
        if not items:
            return
        jsonl.append(self.path, (_line(k, g) for k, g in items))
        for k, g in items:
            self.entries[k] = g
