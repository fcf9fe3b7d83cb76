"""scripts/compile_venv.py, which `make` runs after `pip install --no-compile`: the bytecode import
would write, for the files that lack it or whose source changed, and nothing for a file that does
not compile."""

from __future__ import annotations

import importlib.util
import os
import runpy
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "compile_venv.py"
stale = runpy.run_path(str(SCRIPT))["stale"]


def compile_venv(folder: Path) -> str:
    done = subprocess.run([sys.executable, str(SCRIPT), str(folder)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_only_what_lacks_up_to_date_bytecode_is_compiled(tmp_path: Path) -> None:
    good, bad = tmp_path / "pkg" / "good.py", tmp_path / "pkg" / "sub" / "bad.py"
    bad.parent.mkdir(parents=True)
    good.write_text("X = 1\n")
    bad.write_text("print 'python 2'\n")
    pyc = Path(importlib.util.cache_from_source(str(good)))
    assert stale(good) and stale(bad)
    assert compile_venv(tmp_path).strip() == "byte-compiled 1 files (1 that do not compile stay source)"
    assert pyc.is_file() and not stale(good)
    assert stale(bad) and not Path(importlib.util.cache_from_source(str(bad))).exists()
    written = pyc.stat().st_mtime_ns
    assert compile_venv(tmp_path) == ""
    assert pyc.stat().st_mtime_ns == written  # up to date: left alone
    good.write_text("X = 22\n")  # another size: import would not trust the old bytecode, nor does this
    os.utime(good, (1, 1))
    assert stale(good)
    compile_venv(tmp_path)
    assert not stale(good)


def test_hash_bytecode_is_up_to_date_while_the_source_is_unchanged(tmp_path: Path) -> None:
    """Under SOURCE_DATE_EPOCH (reproducible builds) pip and py_compile write checked-hash pycs."""
    import py_compile

    source = tmp_path / "m.py"
    source.write_text("X = 1\n")
    py_compile.compile(str(source), invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    assert not stale(source)
    source.write_text("X = 2\n")  # the same size: only the hash tells
    assert stale(source)
    py_compile.compile(str(source), invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    source.write_text("X = 3\n")
    assert not stale(source)  # import never checks an unchecked-hash pyc against its source
