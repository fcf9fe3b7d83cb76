"""Where a suite is: a folder, a path to its suite.toml, or the name of a built-in suite."""

from __future__ import annotations

import os
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.suites.files import _has_toml
from harness.core.suites.problems import _show
from harness.core.text import did_you_mean


def builtin_suites_dir() -> Path:
    """Built-in suites live in the repository's `suites/` (overridable for installed copies)."""
    env = os.environ.get("SFT_HARNESS_SUITES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "suites"  # this file is REPO/harness/core/suites/find.py


def builtin_suite_names() -> list[str]:
    root = builtin_suites_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "suite.toml").is_file())


def find_suite(ref: str) -> Path:
    """A suite folder, a path to its suite.toml, or the name of a built-in suite."""
    try:
        return _find_suite(ref)
    except OSError as e:  # a name too long, a folder that cannot be listed
        raise HarnessError(f"suite '{_show(ref)}': {e.strerror or type(e).__name__}") from None


def _find_suite(ref: str) -> Path:
    try:
        path = Path(ref).expanduser()
    except RuntimeError:  # `~user` of no known user: the name as written
        path = Path(ref)
    if path.name == "suite.toml" and (path.is_file() or path.is_symlink()):
        return path.parent
    if path.is_dir():
        if not _has_toml(path):
            raise HarnessError(f"{path}: no suite.toml in this folder")
        return path
    if ref and "/" not in ref and ref not in (".", ".."):
        builtin = builtin_suites_dir() / ref
        if (builtin / "suite.toml").is_file():
            return builtin
    names = builtin_suite_names()
    raise HarnessError(
        f"suite '{_show(ref)}' is neither a folder nor a built-in suite{did_you_mean(ref, names)}; "
        f"built-in: {', '.join(names) or 'none'}"
    )
