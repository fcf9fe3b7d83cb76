"""The prediction cache survives a torn last line and reads lines by `\\n` only."""

from __future__ import annotations

import json
from pathlib import Path

from harness.core import jsonl
from harness.core.predcache import PredictionCache
from harness.core.types import Generation

ODD_SEPARATORS = "a\u2028b\u2029c\x85d\x1ce\x1df\x1eg\x0bh\x0ci\rj"


def test_an_output_with_unicode_line_separators_is_read_back(tmp_path: Path) -> None:
    cache = PredictionCache(tmp_path, {"strategy": "x"})
    cache.add_many([("k1", Generation(ODD_SEPARATORS, 0.5, 3, 4))])
    again = PredictionCache(tmp_path, {"strategy": "x"})
    assert again.get("k1") == Generation(ODD_SEPARATORS, 0.5, 3, 4)


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_fresh(tmp_path: Path) -> None:
    cache = PredictionCache(tmp_path, {"strategy": "x"})
    cache.add_many([("k1", Generation("one", 0.1, 1, 1)), ("k2", Generation("two", 0.1, 1, 1))])
    # A writer killed mid-line leaves a fragment without its newline.
    with open(cache.path, "ab") as f:
        f.write(b'{"key": "k3", "text": "thr')
    resumed = PredictionCache(tmp_path, {"strategy": "x"})
    assert set(resumed.entries) == {"k1", "k2"}
    resumed.add_many([("k3", Generation("three", 0.1, 1, 1)), ("k4", Generation("four", 0.1, 1, 1))])
    final = PredictionCache(tmp_path, {"strategy": "x"})
    assert {k: g.text for k, g in final.entries.items()} == {"k1": "one", "k2": "two", "k3": "three", "k4": "four"}
    lines = cache.path.read_bytes().split(b"\n")
    assert lines[2] == b'{"key": "k3", "text": "thr'  # the fragment stays a line of its own
    assert json.loads(lines[3])["key"] == "k3"


def test_wrongly_typed_cache_lines_are_ignored(tmp_path: Path) -> None:
    cache = PredictionCache(tmp_path, {"strategy": "x"})
    cache.path.write_text(
        '{"key": "a", "text": 5, "latency_s": 0, "prompt_tokens": 1, "output_tokens": 1}\n'
        '{"key": "b", "text": "ok", "latency_s": "slow", "prompt_tokens": 1, "output_tokens": 1}\n'
        "[1, 2]\n" + "[" * 100_000 + "\n"
        '{"key": "c", "text": "ok", "latency_s": 0.2, "prompt_tokens": 1, "output_tokens": 2}\n'
    )
    assert set(PredictionCache(tmp_path, {"strategy": "x"}).entries) == {"c"}


def test_jsonl_reports_hostile_lines_without_raising() -> None:
    data = ("[" * 200_000 + "\n" + '{"id": ' + "9" * 5000 + "}\n" + '{"ok": "\u2028"}\n').encode() + b"\xff\xfe\n"
    lines = list(jsonl.parse_lines(data))
    assert [line.number for line in lines] == [1, 2, 3, 4]
    assert "nested too deeply" in (lines[0].error or "")
    assert lines[1].error and "digits" in lines[1].error
    assert lines[2].value == {"ok": "\u2028"}
    assert lines[3].error and "UTF-8" in lines[3].error


def test_a_failed_generation_is_not_cached_and_request_latency_is_kept(tmp_path: Path) -> None:
    cache = PredictionCache(tmp_path, {"strategy": "x"})
    cache.add_many([("ok", Generation("yes", 0.2, 3, 1, request_latency_s=0.2)),
                    ("failed", Generation("", 1.0, 0, 0, error="HTTP 503: busy (after 5 attempts)"))])
    cache.add_many([("failed-too", Generation("", 1.0, 0, 0, error="timed out"))])  # nothing to write
    again = PredictionCache(tmp_path, {"strategy": "x"})
    assert set(again.entries) == {"ok"} and again.get("ok") == Generation("yes", 0.2, 3, 1, request_latency_s=0.2)
    assert len(cache.path.read_text().splitlines()) == 1
