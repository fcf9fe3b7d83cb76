"""The helper that forks `sft:processes=N` workers (harness.engine.training.warm): a forked worker
gets its own environment and log, its exit code or signal comes back as a subprocess's would, and
the helper ends with the process that started it. The training itself is tests/test_distributed.py's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.engine.training import warm
from harness.engine.training.launch import worker_env

REPO = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    return worker_env(0, 1, 29500, "cpu")


def test_a_forked_worker_logs_its_failure_and_exits_with_its_code(tmp_path: Path) -> None:
    assert warm.use_forked("cpu") and not warm.use_forked("cuda")  # this machine has no CUDA
    worker = warm.start_worker([str(tmp_path / "no-job")], _env(), tmp_path / "rank-0.log", "cpu")
    assert isinstance(worker, warm.ForkedWorker)
    assert worker.wait(timeout=60) == 1  # no job.json: the worker's traceback, exit status 1
    log = (tmp_path / "rank-0.log").read_text()
    assert "FileNotFoundError" in log and "job.json" in log
    assert worker.poll() == 1


def test_a_forked_worker_is_stopped_by_a_signal(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    os.mkfifo(job / "job.json")  # reading it blocks: a worker that never finishes
    worker = warm.start_worker([str(job)], _env(), tmp_path / "rank-0.log", "cpu")
    time.sleep(0.5)
    assert worker.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        worker.wait(timeout=0.2)
    worker.terminate()
    assert worker.wait(timeout=30) == -signal.SIGTERM
    worker.kill()  # already gone: nothing to signal, no error


def test_fresh_workers_where_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(warm.FRESH_ENV, "1")
    assert not warm.use_forked("cpu")


def test_the_helper_ends_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A process that started a helper and is then killed (no atexit): the helper sees its pipe close,
    stops its worker and exits."""
    job = tmp_path / "job"
    job.mkdir()
    os.mkfifo(job / "job.json")
    script = (f"import os, sys, time\nfrom pathlib import Path\nfrom harness.engine.training import warm, launch\n"
              f"w = warm.start_worker([{str(job)!r}], launch.worker_env(0, 1, 29500, 'cpu'), Path({str(tmp_path / 'log')!r}), 'cpu')\n"
              "print(warm._helper.proc.pid, w.pid, flush=True)\ntime.sleep(600)\n")
    run = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.stdout is not None
    helper, worker = (int(x) for x in run.stdout.readline().split())
    run.kill()
    run.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in (helper, worker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(helper) and not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False
