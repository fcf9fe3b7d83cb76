"""Run folders: named by time and suite, created atomically, removed when a run left nothing in them."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from datetime import datetime
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.runrecord import PREDICTIONS_FILE


def run_id_base(suite_name: str, label: str | None = None) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    # A file name, whatever the suite calls itself: safe characters, and short (names cap at 255 bytes).
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", suite_name).strip(".-")[:80].strip(".-") or "suite"
    return f"{stamp}-{label}-{name}" if label else f"{stamp}-{name}"


def new_run_dir(out: Path, base: str) -> tuple[str, Path]:
    """Create a run folder that no other run shares: `mkdir` either creates it or fails, so a
    failure means "taken" and the next name is tried (two runs started in the same second get
    `...-suite` and `...-suite-2`)."""
    out.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        run_id = base if n == 1 else f"{base}-{n}"
        try:
            (out / run_id).mkdir()
        except FileExistsError:
            continue
        return run_id, out / run_id
    raise AssertionError("unreachable")


def check_out_dir(out: Path, flag: str = "--out") -> Path:
    """The folder for run folders: created if missing, refused (one line) if it cannot hold them."""
    if out.exists() and not out.is_dir():
        raise HarnessError(f"{flag} {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HarnessError(f"{flag} {out}: cannot create the folder ({e.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise HarnessError(f"{flag} {out}: the folder is not writable")
    return out


def remove_if_empty(run_dir: Path) -> None:
    """A run that failed before decoding anything leaves no folder behind (one with predictions stays)."""
    pred = run_dir / PREDICTIONS_FILE
    if pred.is_file() and pred.stat().st_size == 0:
        pred.unlink()
    with contextlib.suppress(OSError):
        run_dir.rmdir()  # only succeeds when nothing else is in it


def link_latest(out: Path, name: str, run_dir: Path) -> Path:
    """Point `out/name` at a finished run folder, atomically (a symlink renamed over the old one),
    so concurrent demos each keep their own complete folder and the link names the last to finish."""
    link = out / name
    tmp = out / f".{name}.{os.getpid()}.link"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(run_dir.name, target_is_directory=True)
    if link.is_dir() and not link.is_symlink():  # a folder from an older version: keep it aside
        link.rename(out / f"{name}-{datetime.fromtimestamp(link.stat().st_mtime):%Y%m%d-%H%M%S}-old")
    os.replace(tmp, link)
    return link
