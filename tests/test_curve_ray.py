"""`sft-harness curve --executor ray`: a tiny curve on the tiny random model gives the same curve.json
with the local executor and with a real 2-worker local Ray instance (each with its own cache, so the
Ray tasks train and decode every cell themselves), and a wrong --address is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'sft-harness[ray]')")

STRATEGIES = "prompt,sft:epochs=1:rank=2:batch_size=4:max_len=96:name=sft"
TIMING = ("run_id", "created", "work")  # what differs between two runs of the same curve


def _curve(out: Path, model: Path, *extra: str) -> tuple[Path, dict[str, Any]]:
    argv = ["curve", "poem-sentiment", "--strategies", STRATEGIES, "--sizes", "4", "--seeds", "1", "--limit", "2",
            "--model", str(model), "--device", "cpu", "--out", str(out), *extra]
    assert main(argv) == 0
    (folder,) = out.glob("*-curve-*")
    return folder, json.loads((folder / "curve.json").read_text())


def _science(curve: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in curve.items() if k not in TIMING}
    body["cells"] = [{k: v for k, v in c.items() if k != "work"} for c in curve["cells"]]
    return body


def test_ray_executor_gives_the_local_curve(tmp_path: Path, tiny_model_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache-local"))
    local_dir, local = _curve(tmp_path / "local", tiny_model_dir)

    # A fresh cache: the tasks must train and decode, not read the local executor's entries.
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache-ray"))
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"SFT_HARNESS_CACHE":
                                                                            str(tmp_path / "cache-ray")}})
    try:
        assert ray.cluster_resources()["CPU"] == 2
        ray_dir, remote = _curve(tmp_path / "ray", tiny_model_dir, "--executor", "ray")
    finally:
        ray.shutdown()
    assert _science(remote) == _science(local)
    assert all(c["work"]["computed"] for c in remote["cells"]) and remote["work"]["generator_loaded"]
    assert any(c["work"]["trained"] for c in remote["cells"])
    # The tasks filled the cache they were given and wrote each cell's folder into the curve folder.
    assert list((tmp_path / "cache-ray" / "adapters").iterdir())
    for c in local["cells"]:
        for name in ("predictions.jsonl", "outputs.jsonl"):
            a, b = local_dir / c["folder"] / name, ray_dir / c["folder"] / name
            assert a.is_file() and b.is_file(), b
    assert not (ray_dir / ".ray-driver").exists()


def test_a_wrong_address_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["curve", "poem-sentiment", "--executor", "ray", "--address", f"127.0.0.1:{port}",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and f"--address 127.0.0.1:{port}: nothing answers" in err
    assert main(["curve", "poem-sentiment", "--address", "auto", "--out", str(tmp_path)]) == 2
    assert "--address names a Ray cluster: it needs --executor ray" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before any folder was made


def test_a_cell_reserves_a_gpu_per_training_process_on_cuda() -> None:
    import strategies as registry
    from harness.runner.curve_cells import Cell
    from harness.runner.curve_ray import cell_resources

    prompt, sft, two = registry.from_spec("prompt,sft,sft:processes=2:name=two")
    suite: Any = None  # cell_resources looks at the strategy and the size only
    assert cell_resources(Cell(prompt, None, 0, suite), "cpu") == {"num_cpus": 1.0}
    assert cell_resources(Cell(sft, 16, 0, suite), "cuda") == {"num_gpus": 1.0, "num_cpus": 1.0}
    assert cell_resources(Cell(two, 16, 0, suite), "cuda:1") == {"num_gpus": 2.0, "num_cpus": 1.0}
    assert cell_resources(Cell(two, 16, 0, suite), "cpu") == {"num_cpus": 2.0}
    assert cell_resources(Cell(prompt, None, 0, suite), "cuda") == {"num_gpus": 1.0, "num_cpus": 1.0}  # decodes there


def test_a_task_that_cannot_see_the_curve_folder_sends_its_files_back(tmp_path: Path, tiny_model_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster node without the driver's folder: the task (run here, in this process) keeps the cell's
    files in a folder of its own, sends them with the result, and the driver writes them."""
    from harness.runner.curve import CurveOptions, plan_curve
    from harness.runner.curve_ray import _cell_result, cell_task
    from harness.runner.options import RunOptions

    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache"))
    opts = RunOptions(suite="poem-sentiment", strategies="prompt,prompt:k=2", model=str(tiny_model_dir),
                      out=tmp_path / "runs", limit=2, device="cpu", leakage_check=False)
    plan = plan_curve(CurveOptions(run=opts, sizes=[4], seeds=1))
    cell = plan.cells()[1]  # prompt:k=2 at size 4
    folder = tmp_path / "curve"
    folder.mkdir()
    result = cell_task(plan.run, cell, str(folder), token="not the driver's")
    assert result["error"] is None and not list(folder.iterdir())  # nothing written where it could not see
    assert sorted(result["files"]) == ["outputs.jsonl", "predictions.jsonl"]
    done = _cell_result(cell, result, folder)
    assert (folder / done.folder / "predictions.jsonl").read_bytes() == result["files"]["predictions.jsonl"]
    assert done.metrics.keys() == {"accuracy", "f1"} and len(done.rows["accuracy"]) == 2
