"""The helper process of warm.py: `python -m harness.engine.training.warm_helper`.

It imports what every training worker needs, prints `ready`, then reads one JSON request a line on
stdin ({"id", "argv", "env", "log", "cwd"}), forks a worker for each (its reply: {"id", "pid"}, or
{"id", "error"} if it cannot fork) and reports each worker's exit code ({"exited", "code"}: negative
for a signal, as subprocess gives) until stdin closes, when it stops the workers still running and
exits. The replies go out on the stdout it was started with; its own fd 1 becomes stderr, so nothing
an import prints can mix with them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import traceback
from typing import Any

from harness.engine.training.warm import Lines

# What every worker imports; the model's own architecture module is left to the worker. Imports
# only: an OpenMP parallel region run here would leave every forked worker's thread pool broken.
PRELOAD = ("torch", "torch.distributed", "transformers.modeling_utils", "peft", "accelerate",
           "harness.engine.training.worker", "harness.engine.training.loop", "harness.engine.training.lora_model")


def _die_with(helper: int) -> None:
    """Have the kernel kill this process when the helper ends (Linux), so no worker outlives it."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != helper:  # it ended before the call above
        os._exit(1)


def _child(message: dict[str, Any], helper: int, sigint: Any) -> int:
    """In the forked worker: its environment, folder and log (which the run has created), then the
    worker's main. Returns its exit status: negative for a signal it should die of, as a fresh
    process would."""
    _die_with(helper)
    try:
        signal.signal(signal.SIGINT, sigint)  # what a fresh worker would have had: the run's own
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        log = os.open(message["log"], os.O_WRONLY | os.O_APPEND)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(devnull)
        os.close(log)
        os.environ.clear()
        os.environ.update(message["env"])
        os.chdir(message["cwd"])
        sys.argv = ["harness.engine.training.worker", *message["argv"]]
        from harness.engine.training import worker

        return worker.main(list(message["argv"]))
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        traceback.print_exc()
        return -signal.SIGINT  # Python ends an uncaught Ctrl-C by dying of SIGINT
    except BaseException:
        traceback.print_exc()
        return 1


def _end(code: int) -> None:
    """Leave the forked worker with `code`; never return into the helper's loop."""
    try:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        if code < 0:
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
    finally:
        os._exit(1 if code < 0 else code)


def serve() -> None:
    """Import what every worker needs, say so, then fork a worker for each request on stdin and report
    each worker's exit code, until stdin closes; the workers still running are then stopped."""
    import importlib

    sigint = signal.getsignal(signal.SIGINT)  # the run's: ignored in a shell's background job
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the workers and the run, which stop us
    # The replies get a descriptor of their own: whatever an import or a worker prints goes to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    for name in PRELOAD:
        importlib.import_module(name)
    sys.stdout.flush()  # what an import printed: not copied into every worker's log
    helper = os.getpid()
    children: set[int] = set()
    requests = Lines(sys.stdin.fileno())
    try:
        out.write("ready\n")
        out.flush()
        while True:
            line = requests.next(0.05 if children else None)  # only a worker running needs watching
            if line == b"":  # the run closed its end (it exited, or was killed)
                return
            for pid, status in _reaped(children):
                out.write(json.dumps({"exited": pid, "code": os.waitstatus_to_exitcode(status)}) + "\n")
                out.flush()
            if line is None:
                continue
            message = json.loads(line)
            try:
                pid = os.fork()
            except OSError as e:  # out of processes or memory: the run starts a fresh worker instead
                out.write(json.dumps({"id": message["id"], "error": str(e)}) + "\n")
                out.flush()
                continue
            if pid == 0:  # the worker: whatever happens, it never returns into this loop
                code = 1
                try:
                    out.close()  # the replies are the helper's: the run must see them end with it
                    code = _child(message, helper, sigint)
                finally:
                    _end(code)
            children.add(pid)
            out.write(json.dumps({"id": message["id"], "pid": pid}) + "\n")
            out.flush()
    except BrokenPipeError:  # the run has gone
        return
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def _reaped(children: set[int]) -> list[tuple[int, int]]:
    done = []
    for pid in list(children):
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            children.discard(pid)
            done.append((pid, status))
    return done


if __name__ == "__main__":
    serve()
