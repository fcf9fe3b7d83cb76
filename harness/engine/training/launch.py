"""`sft:processes=N`: train one adapter with N local data-parallel processes, for the user.

The main process (the one running the suite, which keeps decoding) writes the encoded training data
and the config to a private temporary folder and starts N workers, `python -m
harness.engine.training.worker FOLDER`, with the torch.distributed environment (MASTER_ADDR=127.0.0.1,
a free MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK); on a machine without CUDA they are forked from a
helper that has already imported torch, transformers and peft (warm.py). Each worker builds an
`accelerate.Accelerator` from that environment (gloo on the CPU, nccl on CUDA: one GPU per process) and trains its shard
(distributed.py); worker 0 saves the adapter and train_report.json straight into the cache entry
being built, and reports progress through a small JSON file that this process shows. A failed
worker stops the others and its one-line error is raised here. Checkpoints go where a one-process
training keeps them (the adapter key's folder), so a killed multi-process training resumes too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.engine.training.config import REPORT_FILE, TrainConfig, TrainReport
from harness.engine.training.data import Encoded
from harness.engine.training.distributed import env_world_size
from harness.engine.training.warm import WorkerProcess, start_worker

JOB_FILE = "job.json"
PROGRESS_FILE = "progress.json"
_ROOT = Path(__file__).resolve().parents[3]  # the folder holding the harness package


def check_processes(processes: Any, device: str) -> int:
    """The number of processes, or a one-line error where it cannot run on `device`."""
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise HarnessError(f"sft:processes must be a whole number of at least 1, not {processes!r}")
    world = env_world_size()  # a run under torchrun / accelerate launch (training/launched.py)
    if world > 1 and processes not in (1, world):
        raise HarnessError(f"sft:processes={processes} in a run launched with {world} processes: the launcher's "
                           f"processes train the adapter; leave processes out (or set it to {world})")
    if processes > 1 and device.startswith("cuda"):
        import torch

        have = torch.cuda.device_count()
        if processes > have:
            raise HarnessError(f"sft:processes={processes} needs one CUDA device per process; this machine has {have}")
    elif processes > 1 and device != "cpu":
        raise HarnessError(f"sft:processes={processes} runs on the CPU (gloo) or on CUDA GPUs (nccl), not on {device}")
    return processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def job_json(**job: Any) -> dict[str, Any]:
    """A training job as plain JSON data: what a worker (worker.run_job) needs to train its shard."""

    def seqs(xs: Sequence[Encoded]) -> list[list[Any]]:
        return [[s.n_prompt, list(s.input_ids)] for s in xs]

    job["train"], job["validation"] = seqs(job["train"]), seqs(job["validation"])
    job["config"] = job["config"].to_json()
    return job


def write_job(folder: Path, **job: Any) -> None:
    (folder / JOB_FILE).write_text(json.dumps(job_json(**job)))


def worker_env(rank: int, processes: int, port: int, device: str) -> dict[str, str]:
    from harness.engine.training.loop import cpu_threads

    env = dict(os.environ)
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(processes), RANK=str(rank),
               LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(processes), TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
    if device == "cpu":  # the cores shared out: N processes with all cores each would thrash
        env["OMP_NUM_THREADS"] = str(max(1, cpu_threads() // processes))
    return env


def launch_training(
    model_path: str,
    tokenizer: Any,
    train: Sequence[Encoded],
    out_dir: Path,
    config: TrainConfig,
    *,
    validation: Sequence[Encoded] = (),
    device: str = "cpu",
    progress: Any = None,
    description: str = "train",
    skipped: int = 0,
    checkpoint_dir: Path | None = None,
) -> TrainReport:
    """train_lora's contract (the adapter and train_report.json in out_dir) with config.processes workers."""
    n = check_processes(config.processes, device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    folder = Path(tempfile.mkdtemp(prefix="sft-harness-train-"))
    procs: list[WorkerProcess] = []
    try:
        write_job(folder, model_path=model_path, out_dir=str(out_dir), config=config, train=train,
                  validation=validation, device=device, pad_id=pad_id, skipped=skipped, description=description,
                  checkpoint_dir=str(checkpoint_dir) if checkpoint_dir is not None else None)
        port = free_port()
        for rank in range(n):
            procs.append(start_worker([str(folder)], worker_env(rank, n, port, device), folder / f"rank-{rank}.log",
                                      device))
        _wait(procs, folder, progress, description)
    finally:
        _stop(procs)
        shutil.rmtree(folder, ignore_errors=True)
    return TrainReport.from_json(json.loads((out_dir / REPORT_FILE).read_text()))


def _wait(procs: list[WorkerProcess], folder: Path, progress: Any, description: str) -> None:
    """Until every worker is done; the first failure stops the others and is raised."""
    task = progress.add_task(description, total=None, info=f"starting {len(procs)} processes") if progress else None
    while True:
        codes = [p.poll() for p in procs]
        if task is not None:
            _show(progress, task, folder / PROGRESS_FILE)
        failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            time.sleep(1.0)  # let the others notice and write their own errors
            raise HarnessError(_failure(folder, failed[0], len(procs)))
        if all(c == 0 for c in codes):
            return
        time.sleep(0.2)


def _show(progress: Any, task: Any, path: Path) -> None:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):  # not written yet, or being replaced
        return
    progress.update(task, total=state["total"], completed=state["completed"], info=state["info"])


def _failure(folder: Path, rank: int, n: int) -> str:
    """One line: a worker's own error message (HarnessError) if any wrote one, else its last log line."""
    for r in range(n):
        err = folder / f"error-{r}.txt"
        if err.exists():
            return err.read_text().strip()
    lines = [ln for ln in (folder / f"rank-{rank}.log").read_text(errors="replace").splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else "no output"
    return f"training process {rank} of {n} failed: {last}"


def _stop(procs: list[WorkerProcess]) -> None:
    """Terminate the workers still running (only ours, by their handles), then wait for them."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
