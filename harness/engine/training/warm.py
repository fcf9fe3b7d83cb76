"""Training workers forked from a process that has already imported torch, transformers and peft.

A fresh `python -m harness.engine.training.worker` spends some 5-7 s of a 2-core CPU importing before
it trains, and `sft:processes=N` pays that at every training: each strategy, seed and curve cell.
On the CPU, the first launch of a run instead starts one helper, `python -m
harness.engine.training.warm_helper`, which imports once and then forks each worker on request; a forked
worker starts training at once. Its environment is the launch's own (os.environ is replaced in the
child), its output goes to the worker's log file, and its exit status comes back through the helper,
so `launch.py` handles a forked worker as it handles a subprocess (`poll`, `terminate`, `kill`,
`wait`). The helper ends when this process closes its pipe: at exit, or if it is killed.

Only where no CUDA device exists: a process forked after CUDA is initialised cannot use it, so GPU
machines start fresh workers as before. `SFT_HARNESS_FRESH_WORKERS=1` does so everywhere (and a
helper that fails to start falls back to it).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol

FRESH_ENV = "SFT_HARNESS_FRESH_WORKERS"


class WorkerProcess(Protocol):
    """What launch.py needs of a worker: subprocess.Popen, or a ForkedWorker."""

    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def wait(self, timeout: float | None = None) -> int: ...


class ForkedWorker:
    """A worker the helper forked: the slice of subprocess.Popen that launch.py uses."""

    def __init__(self, helper: Helper, pid: int) -> None:
        self.helper, self.pid = helper, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.helper.exit_code(self.pid)
        return self.returncode

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        if self.poll() is None:  # not yet reaped by the helper, so the pid is still this worker's
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"training worker {self.pid}", timeout or 0.0)
            time.sleep(0.05)
        return code


class Lines:
    """Whole lines from a pipe's file descriptor. Unbuffered reads: a buffered reader can hold lines
    that select() no longer sees on the descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd, self.pending = fd, b""

    def next(self, timeout: float | None) -> bytes | None:
        """The next line; None if none came within `timeout`; b"" once the pipe has closed."""
        while b"\n" not in self.pending:
            if not select.select([self.fd], [], [], timeout)[0]:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return b""
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line + b"\n"


class Helper:
    """This process's end of the helper: its pipes, and the exit codes it has reported."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "harness.engine.training.warm_helper"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self.lines = Lines(self.proc.stdout.fileno())
        self.codes: dict[int, int] = {}
        self.lock = threading.Lock()
        self.ready = self.lines.next(None) == b"ready\n"  # after its imports; b"" if they failed

    def alive(self) -> bool:
        return self.ready and self.proc.poll() is None

    def fork(self, argv: list[str], env: dict[str, str], log: Path) -> ForkedWorker:
        assert self.proc.stdin is not None
        with self.lock:
            self.proc.stdin.write((json.dumps({"argv": argv, "env": env, "log": str(log)}) + "\n").encode())
            self.proc.stdin.flush()
            while (reply := self._read(None)) is None:
                pass
        return ForkedWorker(self, int(reply["pid"]))

    def exit_code(self, pid: int) -> int | None:
        with self.lock:
            try:
                self._read(0)
            except OSError:  # the helper died: its workers died with it or are no longer ours to follow
                self.codes.setdefault(pid, -signal.SIGKILL)
            return self.codes.get(pid)

    def _read(self, timeout: float | None) -> dict[str, Any] | None:
        """Record the exit codes the helper has sent; return the first other message (a fork's pid)."""
        while (line := self.lines.next(timeout)) is not None:
            if not line:
                raise OSError("the training helper process ended")
            message = json.loads(line)
            if "exited" not in message:
                return dict(message)
            self.codes[int(message["exited"])] = int(message["code"])
        return None

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.close()  # the helper stops its workers and exits
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


_helper: Helper | None = None
_helper_lock = threading.Lock()


def use_forked(device: str) -> bool:
    if device != "cpu" or os.environ.get(FRESH_ENV, "") not in ("", "0") or not hasattr(os, "fork"):
        return False
    import torch

    return not torch.cuda.is_available()


def start_worker(argv: list[str], env: dict[str, str], log: Path, device: str) -> WorkerProcess:
    """A training worker on `argv` (the worker module's arguments): forked by the helper where
    use_forked allows and the helper is running, else a fresh `python -m harness.engine.training.worker`."""
    global _helper
    if use_forked(device):
        with _helper_lock:
            if _helper is None:
                _helper = Helper({k: v for k, v in env.items() if k not in ("RANK", "LOCAL_RANK")})
                atexit.register(_helper.close)
            helper = _helper
        if helper.alive():
            try:
                return helper.fork(argv, env, log)
            except OSError:
                pass  # the helper died since: a fresh worker below
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "harness.engine.training.worker", *argv], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
