"""The on-disk cache and the small file helpers that keep it consistent.

Everything expensive (converted models, adapters, indexes, predictions) lives under one root,
keyed by a fingerprint of exactly what it depends on. Writes are atomic: a temp file or folder,
then a rename, so an interrupted run never leaves a half-written entry that a later run trusts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    root = Path(os.environ.get("SFT_HARNESS_CACHE", Path.home() / ".cache" / "sft-harness"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def fingerprint(obj: Any, length: int = 16) -> str:
    """A stable short hash of any JSON-serialisable object (keys sorted)."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def stamped_sha256(path: Path, stamps: Path) -> str:
    """sha256_file, read once per (path, inode, size, mtime, ctime) and kept as a stamp in `stamps`:
    ctime and the inode change when a file is replaced even by a copy that keeps the mtime (cp -p).
    A file that changed while it was read gets no stamp."""

    def identity() -> dict[str, Any]:
        st = path.stat()
        return {"path": str(path.resolve()), "dev": st.st_dev, "ino": st.st_ino, "size": st.st_size,
                "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}

    before = identity()
    stamp = stamps / fingerprint(before)
    if stamp.exists():
        return stamp.read_text().strip()
    digest = sha256_file(path)
    if identity() == before:
        write_text_atomic(stamp, digest)
    return digest


def file_mode() -> int:
    """The mode a plain `open(path, "w")` would give: 0o666 less the user's umask.

    mkstemp creates 0600 files; without this, files written atomically would be private while
    the ones appended in place follow the umask, and a run folder would mix both.
    """
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def _owner_tag() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def sweep_stale_tmp(final: Path) -> list[Path]:
    """Remove temp folders for `final` left by a process that died (SIGKILL, power loss).

    Only folders this host's dead processes own are touched: a live writer, or one on another
    machine sharing the cache, keeps its folder.
    """
    host = socket.gethostname()
    removed = []
    for tmp in final.parent.glob(f".{final.name}.*.tmp"):
        tag = tmp.name[len(final.name) + 2 :].rsplit(".", 2)[0]  # "<host>-<pid>" from "<host>-<pid>.<random>.tmp"
        owner_host, _, pid = tag.rpartition("-")
        if tmp.is_dir() and owner_host == host and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temp folder beside `final`; on success it is renamed into place, on error removed.

    If another process finished the same entry first, its copy wins and ours is discarded.
    The temp name carries host and pid, so a later writer can clear what a killed one left.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_tmp(final)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.{_owner_tag()}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.replace(tmp, final)
    except OSError:
        if final.exists():  # lost a race with an identical entry: keep the existing one
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise
