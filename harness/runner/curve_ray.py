"""`sft-harness curve --executor ray [--address ADDR]`: every cell of the grid as one Ray task.

The cells of a curve are independent (each an ordinary cached strategy turn), so each runs as a task
of its own, through the same code as the local executor (curve_cells.run_cell), on a local Ray
instance (started here with this machine's cores and GPUs) or on a running cluster (`--address`).
A task reserves what its cell needs: one GPU (`processes` GPUs for `sft:processes=N`) when the run is
on CUDA, since Ray hides the GPUs from a task that reserves none; else one CPU (`processes` CPUs).

What lands where: the cache entries (adapters, predictions) in the cache of the machine the task ran
on (the driver's `SFT_HARNESS_*` settings are passed on to the tasks, so a local instance, or a
cluster with the cache on shared storage, fills the driver's cache); the cell's folder (predictions, adapter copy) straight into
the curve folder when the task can see it (a marker file with a token tells), else in a temporary
folder whose files the task sends back to the driver. The driver alone writes curve.json.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.core.errors import HarnessError
from harness.engine.context import make_progress
from harness.runner.curve_cells import Cell, CellResult, cell_folder, cell_label, run_cell
from harness.runner.plan import RunPlan

EXECUTORS = ("local", "ray")
RAY_HINT = "pip install 'sft-harness[ray]'"
# What a task needs of the driver's environment: our own settings (the cache it fills, converted
# models, suites) and the Hugging Face offline switches.
FORWARDED_ENV = ("HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")
MARKER = ".ray-driver"  # in the curve folder while the grid runs: its token proves a task sees the folder


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise HarnessError(f"--executor ray needs Ray, which is not installed: {RAY_HINT}") from None
    return ray


def check_executor(executor: str, address: str | None) -> None:
    """The executor options, refused (one line) before any model work."""
    if executor not in EXECUTORS:
        raise HarnessError(f"--executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
    if address is not None and executor != "ray":
        raise HarnessError("--address names a Ray cluster: it needs --executor ray")
    if executor == "ray":
        import_ray()
        if address is not None:
            _check_address(address)


def _check_address(address: str) -> None:
    """A host:port (or ray://host:port) that answers, or `auto`: a wrong address fails in seconds
    here rather than after Ray's own connection retries."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise HarnessError(f"--address {address}: not a Ray address (HOST:PORT, ray://HOST:PORT or auto)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        raise HarnessError(f"--address {address}: nothing answers there ({e.strerror or e}); "
                           "start the cluster's head with `ray start --head`") from None


class RayExecutor:
    """Runs the cells as Ray tasks on the instance `connect` joined (or started)."""

    def __init__(self, address: str | None):
        self.ray = import_ray()
        self.started = False
        self.connect(address)

    def connect(self, address: str | None) -> None:
        ray = self.ray
        if ray.is_initialized():  # the caller's own instance (a notebook, a test): used as it is
            return
        env = {k: v for k, v in os.environ.items() if k.startswith("SFT_HARNESS_") or k in FORWARDED_ENV}
        common: dict[str, Any] = {"runtime_env": {"env_vars": env} if env else None, "log_to_driver": True,
                                  "logging_level": logging.WARNING, "configure_logging": True}
        try:
            if address is None:
                from harness.engine.training import cpu_threads

                ray.init(num_cpus=cpu_threads(), include_dashboard=False, **common)
            else:
                ray.init(address=address, **common)
        except Exception as e:  # ConnectionError, RuntimeError, ValueError: Ray's, in several forms
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            where = f"--address {address}" if address else "--executor ray"
            raise HarnessError(f"{where}: could not start or join Ray: {first}") from None
        self.started = True

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False

    def check_resources(self, plan: RunPlan, cells: list[Cell]) -> None:
        """A cell that asks for more GPUs (or CPUs) than the whole cluster has would wait forever."""
        have = self.ray.cluster_resources()
        for cell in cells:
            for key, need in cell_resources(cell, plan.device).items():
                name = {"num_gpus": "GPU", "num_cpus": "CPU"}[key]
                if need > have.get(name, 0):
                    raise HarnessError(f"curve cell {cell_label(cell)} needs {need:g} {name}(s) and the Ray cluster "
                                       f"has {have.get(name, 0):g}")

    def run(self, plan: RunPlan, cells: list[Cell], folder: Path, console: Console) -> tuple[list[CellResult], bool]:
        """Every cell as a task; one progress bar as they finish. Returns the results in the cells' order
        and whether any task loaded model weights."""
        ray = self.ray
        self.check_resources(plan, cells)
        token = secrets.token_hex(16)
        (folder / MARKER).write_text(token)
        task = ray.remote(cell_task)
        shared = ray.put(plan)  # one copy in the object store for all tasks
        refs = [task.options(**cell_resources(c, plan.device)).remote(shared, c, str(folder), token) for c in cells]
        which = {ref: i for i, ref in enumerate(refs)}
        got: dict[int, dict[str, Any]] = {}
        try:
            with make_progress(console, eta=True) as progress:
                bar = progress.add_task("curve (ray)", total=len(cells), info=f"{len(cells)} tasks")
                pending = list(refs)
                while pending:
                    ready, pending = ray.wait(pending, num_returns=1)
                    i = which[ready[0]]
                    got[i] = _result(ray, ready[0], cells[i])
                    progress.update(bar, advance=1, info=escape(cell_label(cells[i])))
                progress.update(bar, info="done")
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise
        finally:
            (folder / MARKER).unlink(missing_ok=True)
        done = [_cell_result(cells[i], got[i], folder) for i in range(len(cells))]
        return done, any(r["weights_loaded"] for r in got.values())


def cell_resources(cell: Cell, device: str) -> dict[str, float]:
    """What a cell's task reserves: a GPU per training process on CUDA (decoding needs the GPU too),
    else a CPU per process."""
    processes = int(cell.strategy.params.get("processes", 1) or 1) if cell.size is not None else 1
    if device.startswith("cuda"):
        return {"num_gpus": float(processes), "num_cpus": 1.0}
    return {"num_cpus": float(processes)}


def _result(ray: Any, ref: Any, cell: Cell) -> dict[str, Any]:
    """A finished task's result, or its failure as one line naming the cell."""
    try:
        result: dict[str, Any] = ray.get(ref)
    except Exception as e:  # RayTaskError (a bug in the cell), WorkerCrashedError, OutOfMemoryError, ...
        cause = getattr(e, "cause", None) or e
        text = str(cause).strip().splitlines()
        raise HarnessError(f"curve cell {cell_label(cell)} failed on Ray: {type(cause).__name__}"
                           f"{': ' + text[-1] if text else ''}") from None
    if result.get("error"):
        raise HarnessError(f"curve cell {cell_label(cell)}: {result['error']}")
    return result


def _cell_result(cell: Cell, r: dict[str, Any], folder: Path) -> CellResult:
    """The driver's record of a finished task; the cell's files written where the task could not."""
    for rel, data in (r.get("files") or {}).items():
        path = folder / r["folder"] / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return CellResult(cell, r["metrics"], r["rows"], train_s=r["train_s"], decode_s=r["decode_s"],
                      score_s=r["score_s"], decoded=r["decoded"], trained=r["trained"], folder=r["folder"])


def cell_task(plan: RunPlan, cell: Cell, folder: str, token: str) -> dict[str, Any]:
    """One cell, in a Ray worker: its own models (weights load on the first uncached prompt), a quiet
    console (the driver shows the progress), the cell's folder in the curve folder if this machine
    sees it, else in a temporary folder whose files go back with the result."""
    if plan.device.startswith("cuda"):  # Ray shows the task only its reserved GPUs, numbered from 0
        plan = dataclasses.replace(plan, device="cuda")
    marker = Path(folder) / MARKER
    sees_folder = marker.is_file() and marker.read_text() == token
    root = Path(folder) if sees_folder else Path(tempfile.mkdtemp(prefix="sft-harness-cell-"))
    cell_dir = root / cell_folder(cell)
    models = plan.build_models()
    try:
        result = run_cell(plan, cell, models, cell_dir, Console(quiet=True))
        files = None if sees_folder else {str(p.relative_to(cell_dir)): p.read_bytes()
                                          for p in sorted(cell_dir.rglob("*")) if p.is_file()}
    except HarnessError as e:
        return {"error": str(e)}
    finally:
        models.close()
        if not sees_folder:
            shutil.rmtree(root, ignore_errors=True)
    return {"metrics": result.metrics, "rows": result.rows, "train_s": result.train_s, "decode_s": result.decode_s,
            "score_s": result.score_s, "decoded": result.decoded, "trained": result.trained,
            "folder": result.folder, "files": files, "weights_loaded": models.weights_loaded, "error": None}
