"""The suite folder, written atomically: built in a hidden folder beside --out, checked, renamed.

An existing non-empty --out is refused, unless --force; and --force replaces only a suite folder
(one holding suite.toml), so a mistyped --out can never delete a folder of something else.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core import jsonl
from harness.core.errors import HarnessError


@dataclass(frozen=True)
class SuiteSpec:
    """What suite.toml says."""

    name: str
    task: str
    description: str
    instruction: str
    labels: tuple[str, ...]
    fields: tuple[str, ...]
    metrics: tuple[str, ...]
    splits: tuple[str, ...]  # the splits written, of train / test / validation
    corpus: bool
    max_new_tokens: int


def _s(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a TOML basic string: JSON's escapes are TOML's


def _array(values: Sequence[str]) -> str:
    return "[" + ", ".join(_s(v) for v in values) + "]"


def suite_toml(spec: SuiteSpec) -> str:
    lines = [f"name = {_s(spec.name)}", f"task = {_s(spec.task)}", f"description = {_s(spec.description)}",
             f"instruction = {_s(spec.instruction)}", f"labels = {_array(spec.labels)}",
             f"fields = {_array(spec.fields)}", f"metrics = {_array(spec.metrics)}", "", "[splits]"]
    lines += [f"{split} = {_s(split + '.jsonl')}" for split in spec.splits]
    if spec.corpus:
        lines += ["", "[corpus]", 'path = "corpus.jsonl"']
    lines += ["", "[generation]", f"max_new_tokens = {spec.max_new_tokens}", "stop = []", ""]
    return "\n".join(lines)


def jsonl_bytes(rows: Sequence[dict[str, Any]]) -> bytes:
    return "".join(jsonl.dumps(r) + "\n" for r in rows).encode("utf-8")


def check_out(out: Path, force: bool) -> None:
    """Refuse an --out that would overwrite something, before any work is done."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise HarnessError(f"--out {out}: exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise HarnessError(f"--out {out}: folder exists and is not empty; pass --force to replace it")
    if not (out / "suite.toml").is_file():
        raise HarnessError(f"--out {out}: --force replaces only a suite folder (one with suite.toml); "
                           "this one has none: choose another --out")


def write_suite(out: Path, files: dict[str, bytes], force: bool, check: Callable[[Path], None]) -> None:
    """Write `files` into a new folder beside `out`, run `check` on it (it raises when the suite
    is not valid), then put it in place of `out`; on any failure nothing is left behind."""
    check_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.import-{secrets.token_hex(4)}"
    tmp.mkdir()  # not mkdtemp: its 0700 would stay on the suite folder
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        check(tmp)
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.replace(tmp, out)
        return
    if not any(out.iterdir()):
        out.rmdir()
        os.replace(tmp, out)
        return
    old = out.parent / f".{out.name}.replaced-{secrets.token_hex(4)}"
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)  # put the earlier suite back
        raise
    shutil.rmtree(old, ignore_errors=True)
