"""Atomic cache folders: a killed writer's temp folder is cleared by the next writer, a live one's kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from harness.core.cache import atomic_dir, sweep_stale_tmp

KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from harness.core.cache import atomic_dir
with atomic_dir(Path(sys.argv[1])) as tmp:
    (tmp / "half.bin").write_bytes(b"x" * 100)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writers_temp_folder_is_swept(tmp_path: Path) -> None:
    final = tmp_path / "adapters" / "abc.v1"
    res = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(final)], cwd=Path(__file__).parents[1])
    assert res.returncode == -signal.SIGKILL
    leftovers = list(final.parent.glob(".abc.v1.*.tmp"))
    assert len(leftovers) == 1 and not final.exists()

    with atomic_dir(final) as tmp:
        (tmp / "done").write_text("ok")
        assert list(final.parent.glob(".abc.v1.*.tmp")) == [tmp]  # the dead one is gone, ours is live
    assert (final / "done").read_text() == "ok"
    assert not list(final.parent.glob(".abc.v1.*.tmp"))


def test_a_live_writers_temp_folder_is_kept(tmp_path: Path) -> None:
    final = tmp_path / "entry"
    with atomic_dir(final) as tmp:
        assert f"-{os.getpid()}." in tmp.name
        assert sweep_stale_tmp(final) == [] and tmp.is_dir()
    # Unknown shapes (another tool's files, another host's writer) are never touched.
    foreign = tmp_path / ".entry.otherhost-1.abcd.tmp"
    foreign.mkdir()
    assert sweep_stale_tmp(final) == [] and foreign.is_dir()
