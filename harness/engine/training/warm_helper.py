"""The helper process of warm.py: `python -m harness.engine.training.warm_helper`.

It imports what every training worker needs, prints `ready`, then reads one JSON request a line on
stdin ({"argv", "env", "log"}), forks a worker for each (its reply: {"pid"}) and reports each
worker's exit code ({"exited", "code"}: negative for a signal, as subprocess gives) until stdin
closes, when it stops the workers still running and exits.
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

# What every worker imports; the model's own architecture module is left to the worker.
PRELOAD = ("torch", "torch.distributed", "transformers.modeling_utils", "peft", "accelerate",
           "harness.engine.training.worker", "harness.engine.training.loop", "harness.engine.training.lora_model")


def _child(message: dict[str, Any]) -> int:
    """In the forked worker: its environment, its log as stdout and stderr, then the worker's main."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the helper ignores Ctrl-C; a worker does not
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    log = os.open(message["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    os.environ.clear()
    os.environ.update(message["env"])
    sys.argv = ["harness.engine.training.worker", *message["argv"]]
    from harness.engine.training import worker

    try:
        return worker.main(list(message["argv"]))
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        traceback.print_exc()
        return 1


def serve() -> None:
    """Import what every worker needs, say so, then fork a worker for each request on stdin and report
    each worker's exit code, until stdin closes."""
    import importlib

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the workers and the run, which stop us
    for name in PRELOAD:
        importlib.import_module(name)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    children: set[int] = set()
    requests = Lines(sys.stdin.fileno())
    while True:
        line = requests.next(0.05 if children else None)  # only a worker running needs watching
        for pid, status in _reaped(children):
            out.write(json.dumps({"exited": pid, "code": os.waitstatus_to_exitcode(status)}) + "\n")
            out.flush()
        if line is None:
            continue
        if not line:  # the run closed its end: stop what still runs
            for pid in children:
                os.kill(pid, signal.SIGTERM)
            return
        message = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the worker: whatever happens, it never returns into this loop
            code = 1
            try:
                code = _child(message)
            finally:
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.flush()
                os._exit(code)
        children.add(pid)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()


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
