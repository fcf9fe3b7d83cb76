"""Training workers forked from a process that has already imported torch, transformers and peft.

A fresh `python -m harness.engine.training.worker` spends some 5-7 s of a 2-core CPU importing before
it trains, and `sft:processes=N` pays that at every training: each strategy, seed and curve cell.
On the CPU, the first launch of a run instead starts one helper, `python -m
harness.engine.training.warm_helper`, which imports once and then forks each worker on request; a forked
worker starts training at once. Its environment and working folder are the launch's own (replaced in
the child; what a library read from the environment at import, such as huggingface_hub's settings,
stays the helper's, which was this process's at the first launch), its output goes to the worker's
log file, and its exit status comes back through the helper, so `launch.py` handles a forked worker
as it handles a subprocess (`poll`, `terminate`, `kill`, `wait`). The helper stays for the rest of
the run (about 0.5 GB resident) and ends when this process closes its pipe: at exit, or if it is
killed; it then stops its workers, and a worker dies with the helper (PR_SET_PDEATHSIG).

Only on Linux (fork after importing torch is not safe on macOS) and where no CUDA device exists (a
process forked after CUDA is initialised cannot use it): elsewhere, and with
`SFT_HARNESS_FRESH_WORKERS=1`, workers are fresh processes as before, as they are when the helper
cannot start or fork.
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
        self.requests = 0
        self.ready = self.lines.next(None) == b"ready\n"  # after its imports; b"" if they failed

    def alive(self) -> bool:
        return self.ready and self.proc.poll() is None

    def fork(self, argv: list[str], env: dict[str, str], log: Path) -> ForkedWorker:
        """A forked worker; OSError if the helper could not fork it or has ended."""
        assert self.proc.stdin is not None
        with self.lock:
            self.requests += 1
            request = {"id": self.requests, "argv": argv, "env": env, "log": str(log), "cwd": os.getcwd()}
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            # The reply to this request: one to an earlier request that an interrupt left unread is
            # skipped (that worker is stopped with the helper at exit).
            while (reply := self._read(None)) is None or reply.get("id") != request["id"]:
                pass
            if "error" in reply:
                raise OSError(reply["error"])
            pid = int(reply["pid"])
            self.codes.pop(pid, None)  # an earlier worker's code under a pid the system has reused
        return ForkedWorker(self, pid)

    def exit_code(self, pid: int) -> int | None:
        with self.lock:
            try:
                self._read(0)
                if pid not in self.codes and not _exists(pid):
                    self._read(1.0)  # reaped by the helper: its exit line is on its way
            except OSError:  # the helper ended: its workers die with it (PR_SET_PDEATHSIG)
                pass
            if pid not in self.codes and not _exists(pid):
                self.codes[pid] = -signal.SIGKILL  # gone, and its line lost (an interrupt) or never sent
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


def _exists(pid: int) -> bool:
    """Whether a process (a zombie included: not yet reaped by the helper) has this pid."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # none, or someone else's: the pid was reused
        return False
    return True


_helper: Helper | None = None
_helper_failed = False  # its imports failed once: fresh workers from then on
_helper_lock = threading.Lock()


def use_forked(device: str) -> bool:
    if device != "cpu" or os.environ.get(FRESH_ENV, "") not in ("", "0") or not sys.platform.startswith("linux"):
        return False
    import torch

    return not torch.cuda.is_available()


def start_worker(argv: list[str], env: dict[str, str], log: Path, device: str) -> WorkerProcess:
    """A training worker on `argv` (the worker module's arguments): forked by the helper where
    use_forked allows and the helper is running, else a fresh `python -m harness.engine.training.worker`."""
    global _helper, _helper_failed
    if use_forked(device) and not _helper_failed:
        with _helper_lock:
            if _helper is None or not _helper.alive():  # the first launch, or the helper was killed
                try:
                    _helper = Helper({k: v for k, v in env.items() if k not in ("RANK", "LOCAL_RANK")})
                except OSError:  # cannot start a process now: nor a fresh worker, which says so below
                    _helper = None
                else:
                    _helper_failed = not _helper.ready
                    atexit.register(_helper.close)
            helper = _helper
        if helper is not None and helper.alive():
            log.open("wb").close()  # there, whatever the worker does, as for a fresh one
            try:
                return helper.fork(argv, env, log)
            except OSError:
                pass  # the helper could not fork (out of processes or memory) or has ended: a fresh worker
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "harness.engine.training.worker", *argv], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
