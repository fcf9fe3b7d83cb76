"""The helper that forks `sft:processes=N` workers (harness.engine.training.warm): a forked worker
gets its own environment and log, its exit code or signal comes back as a subprocess's would, and
the helper ends with the process that started it. The training itself is tests/test_distributed.py's."""

from __future__ import annotations

import contextlib
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
# On a CUDA machine (or with SFT_HARNESS_FRESH_WORKERS=1) workers are fresh processes: nothing to test here.
pytestmark = pytest.mark.skipif(not warm.use_forked("cpu"), reason="workers are not forked on this machine")


def _env() -> dict[str, str]:
    return worker_env(0, 1, 29500, "cpu")


def test_a_forked_worker_logs_its_failure_and_exits_with_its_code(tmp_path: Path) -> None:
    assert not warm.use_forked("cuda")
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


def test_a_forked_worker_takes_ctrl_c_as_a_fresh_one_would(tmp_path: Path) -> None:
    """It dies of SIGINT (exit -2, after its traceback) unless the run ignores Ctrl-C, as a shell's
    background job does: then it keeps that, like a fresh process inheriting it."""
    job = tmp_path / "job"
    job.mkdir()
    os.mkfifo(job / "job.json")
    worker = warm.start_worker([str(job)], _env(), tmp_path / "rank-0.log", "cpu")
    time.sleep(0.5)
    os.kill(worker.pid, signal.SIGINT)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        with pytest.raises(subprocess.TimeoutExpired):
            worker.wait(timeout=2)
        worker.terminate()
        assert worker.wait(timeout=30) == -signal.SIGTERM
    else:
        assert worker.wait(timeout=30) == -signal.SIGINT
        assert "KeyboardInterrupt" in (tmp_path / "rank-0.log").read_text()


def test_fresh_workers_where_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(warm.FRESH_ENV, "1")
    assert not warm.use_forked("cpu")


def test_no_worker_outlives_its_helper_and_no_helper_its_run(tmp_path: Path) -> None:
    """A run whose helper is killed: the worker dies with it (PR_SET_PDEATHSIG) and is seen to end,
    and the next training gets a new helper. A run killed itself (no atexit): its helper sees the pipe
    close, stops its worker and exits."""
    job = tmp_path / "job"
    job.mkdir()
    os.mkfifo(job / "job.json")
    script = ("import sys, time\nfrom pathlib import Path\nfrom harness.engine.training import warm, launch\n"
              "def start():\n"
              f"    w = warm.start_worker([{str(job)!r}], launch.worker_env(0, 1, 29500, 'cpu'), Path({str(tmp_path / 'log')!r}), 'cpu')\n"
              "    print(warm._helper.proc.pid, w.pid, flush=True)\n    return w\n"
              "w = start()\nsys.stdin.readline()\nprint(w.wait(timeout=30), flush=True)\n"
              "w = start()\ntime.sleep(600)\n")
    run = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.stdin is not None and run.stdout is not None
    pids: list[int] = []
    try:
        helper, worker = (int(x) for x in run.stdout.readline().split())
        pids += [helper, worker]
        os.kill(helper, signal.SIGKILL)
        _ended(worker)
        run.stdin.write("go\n")
        run.stdin.flush()
        assert int(run.stdout.readline()) == -signal.SIGKILL
        helper2, worker2 = (int(x) for x in run.stdout.readline().split())
        pids += [helper2, worker2]
        assert helper2 != helper and _alive(helper2) and _alive(worker2)
        run.kill()
        run.wait()
        _ended(helper2)
        _ended(worker2)
    finally:  # a failure leaves nothing running
        run.kill()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _ended(pid: int) -> None:
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False
