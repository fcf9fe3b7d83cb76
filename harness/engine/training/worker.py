"""One data-parallel training process: `python -m harness.engine.training.worker FOLDER`.

Started by launch.py (or, by hand, under `accelerate launch` / torchrun, which set the same
WORLD_SIZE/RANK environment) on a job folder that launch.write_job wrote. Rank 0 saves the adapter
into the job's out_dir; a HarnessError becomes error-RANK.txt (one line) and exit status 2.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from harness.core.errors import HarnessError
from harness.engine.training.config import TrainConfig
from harness.engine.training.data import Encoded
from harness.engine.training.launch import JOB_FILE, PROGRESS_FILE


class FileProgress:
    """The slice of rich's Progress that fit_lora uses, written to a JSON file the launcher reads."""

    def __init__(self, path: Path):
        self.path = path
        self.state: dict[str, Any] = {}
        self.written = 0.0

    def add_task(self, description: str, total: int, completed: int = 0, info: str = "") -> int:
        self.state = {"total": total, "completed": completed, "info": info}
        self._write()
        return 0

    def update(self, task: int, advance: int = 0, info: str = "") -> None:
        self.state["completed"] += advance
        self.state["info"] = info
        if time.monotonic() - self.written > 0.3 or self.state["completed"] >= self.state["total"]:
            self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)  # the reader never sees half a file
        self.written = time.monotonic()


def run(folder: Path) -> None:
    job = json.loads((folder / JOB_FILE).read_text())
    main = int(os.environ.get("RANK", "0")) == 0
    run_job(job, FileProgress(folder / PROGRESS_FILE) if main else None)


def run_job(job: dict[str, Any], progress: Any) -> None:
    """Train this process's shard of a job (launch.job_json): the one code path of `sft:processes=N`
    workers and of the other ranks of a launched run (harness.engine.training.launched)."""
    from harness.engine.training.loop import train_lora

    config = TrainConfig(**{**job["config"], "target_modules": tuple(job["config"]["target_modules"])})
    train = [Encoded(tuple(ids), n) for n, ids in job["train"]]
    validation = [Encoded(tuple(ids), n) for n, ids in job["validation"]]
    train_lora(
        job["model_path"],
        SimpleNamespace(pad_token_id=job["pad_id"]),  # all train_lora needs of the tokenizer
        train,
        Path(job["out_dir"]),
        config,
        validation=validation,
        device=job["device"],
        progress=progress,
        description=job["description"],
        skipped=job["skipped"],
        checkpoint_dir=Path(job["checkpoint_dir"]) if job["checkpoint_dir"] else None,
    )


def main(argv: list[str]) -> int:
    import torch.distributed

    if len(argv) != 1:
        print("usage: python -m harness.engine.training.worker JOB_FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    rank = os.environ.get("RANK", "0")
    try:
        run(folder)
    except HarnessError as e:
        (folder / f"error-{rank}.txt").write_text(str(e))
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
