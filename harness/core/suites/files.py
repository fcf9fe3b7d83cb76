"""The files of a suite: confined to its folder (symlinks followed), read whole, JSONL parsed.

Nothing a suite names is opened before it is known to lie inside the suite folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.core import jsonl
from harness.core.suites.problems import _json_type, _Problems, _show, _size, _toml_type


def _has_toml(folder: Path) -> bool:
    """A suite.toml of any kind (a broken link, a folder): reading it names what is wrong."""
    toml = folder / "suite.toml"
    try:
        return toml.exists() or toml.is_symlink()
    except OSError:  # not even stat-able (permissions): reading it says why
        return True


def _inside(root: Path, rel: str) -> Path | str:
    """`rel` resolved (symlinks followed) when it names something inside `root` (resolved), else
    why not: "outside" or another reason. Nothing is opened."""
    if "\0" in rel:
        return "is not a valid file name (it holds a NUL character)"
    if Path(rel).is_absolute():
        return "outside"
    try:
        resolved = (root / rel).resolve()
    except RuntimeError:
        return "is a symlink loop"
    except (OSError, ValueError) as e:  # a name too long, ...
        return f"cannot be resolved ({getattr(e, 'strerror', None) or type(e).__name__})"
    if not resolved.is_relative_to(root):
        return "outside"
    return resolved


def _read_bytes(path: Path, shown: Path, problems: _Problems, max_bytes: int) -> bytes | None:
    """A file's bytes, or None with the reason recorded against `shown`; `max_bytes` is the
    package's MAX_FILE_BYTES."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            problems.add(shown, None, f"file is {_size(size)}, more than the {_size(max_bytes)} a suite file may have")
            return None
        return path.read_bytes()
    except IsADirectoryError:
        problems.add(shown, None, "is a folder, not a file")
    except MemoryError:
        problems.add(shown, None, "too large to read into memory")
    except OSError as e:
        problems.add(shown, None, f"cannot read: {e.strerror or type(e).__name__}")
    return None


def _read_jsonl(data: bytes, path: Path, problems: _Problems,
                max_line: int) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    """(line number, object) of every good line, and whether the file has any non-blank line;
    `max_line` is the package's MAX_LINE_BYTES."""
    rows: list[tuple[int, dict[str, Any]]] = []
    any_line = False
    if data and max(map(len, data.split(b"\n"))) > max_line:
        kept = []
        for n, raw in enumerate(data.split(b"\n"), 1):
            if len(raw) > max_line:
                problems.add(path, n, f"line is {_size(len(raw))}, more than the {_size(max_line)} a line may have")
                any_line = True
                raw = b""
            kept.append(raw)
        data = b"\n".join(kept)
    for line in jsonl.parse_lines(data):
        any_line = True
        if line.error is not None:
            problems.add(path, line.number, line.error)
        elif not isinstance(line.value, dict):
            problems.add(path, line.number, f"expected a JSON object, got {_json_type(line.value)}")
        else:
            rows.append((line.number, line.value))
    return rows, any_line


def _suite_file(folder: Path, root: Path, rel: Any, *, toml_path: Path, line: int | None, what: str,
                noun: str, problems: _Problems, max_bytes: int) -> tuple[Path, bytes] | None:
    """(path as shown, bytes) of the file a [splits] / [corpus] entry names (`rel`, at `line` of
    suite.toml), read only once it is known to lie inside the suite (`root`: the folder resolved);
    None once the reason why not is recorded. `what` names the entry ("split 'test'"), `noun` the
    file ("test split file")."""
    if not isinstance(rel, str) or not rel.strip():
        got = f", got {_toml_type(rel)}" if not isinstance(rel, str) else ""
        problems.add(toml_path, line, f"{what} must be a file name inside the suite folder{got}")
        return None
    resolved = _inside(root, rel)
    if isinstance(resolved, str):
        why = "points outside the suite folder" if resolved == "outside" else resolved
        problems.add(toml_path, line, f"{what} {why} ('{_show(rel, 300)}')")
        return None
    shown = folder / rel
    try:
        exists, regular = resolved.exists(), resolved.is_file()
    except OSError as e:  # a name too long, ...
        problems.add(toml_path, line, f"{noun} '{_show(rel, 300)}' cannot be used ({e.strerror or type(e).__name__})")
        return None
    if not exists:
        problems.add(toml_path, line, f"{noun} '{_show(rel, 300)}' not found")
        return None
    if not regular:
        problems.add(toml_path, line, f"{noun} '{_show(rel, 300)}' is not a regular file")
        return None
    data = _read_bytes(resolved, shown, problems, max_bytes)
    if data is None:
        return None
    return shown, data


def _sha256_parts(parts: Iterable[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in parts:
        h.update(name.encode() + b"\0")
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()


def _sha256_files(paths: Iterable[Path]) -> str:
    return _sha256_parts((p.name, p.read_bytes()) for p in paths)
