"""Every bench script runs to its last line on a tiny workload, so a bench cannot break silently
(bench/sft.py once crashed before its `speedup:` line and no test noticed). The figures themselves
are measured by running the scripts on an idle machine (README, "Benchmarks"), never here.

Each script runs as `__main__` in this process (runpy), as `python bench/X.py ARGS` would run it:
a fresh interpreter would spend some 7 s of each case importing torch, transformers and peft again."""

from __future__ import annotations

import importlib.util
import re
import runpy
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
TINY = "{tiny}"  # replaced by the tiny random model's folder

# script, its arguments, the pattern its last line must match
CASES = [
    ("generate.py", ["--model", "smollm2-135m-instruct", "--n", "3", "--max-new-tokens", "4"], r"roofline: \d+\.\d\d"),
    ("sft.py", ["--model", TINY, "--examples", "8"], r"peak: \d+\.\d\d"),
    ("answers.py", ["--model", TINY, "--n", "3"], r"choice/free: \d+\.\d\dx"),
    ("constrain.py", ["--model", TINY, "--reps", "1"], r"overhead json: \d+\.\d\dx"),
    ("stats.py", ["--n", "30", "--resamples", "50"], r"speedup: \d+\.\d\dx"),
    ("leakage.py", ["--skip-suites", "--n", "500", "--embed-n", "20"], r"FAISS IndexFlatIP"),
    ("cache.py", ["--model", TINY, "--strategies", "prompt", "--limit", "2"], r"cached/cold: \d+\.\d%"),
    ("curve.py", ["--model", TINY, "--suite", "poem-sentiment", "--strategies", "prompt,sft:epochs=1:max_len=128",
                  "--sizes", "8", "--seeds", "1", "--limit", "4"], r"saved by the caches: .* \(rerun/cold \d+\.\d%\)"),
]


@pytest.mark.parametrize(("script", "args", "last"), CASES, ids=[c[0] for c in CASES])
def test_bench_script_runs_to_its_last_line(script: str, args: list[str], last: str, tiny_model_dir: Path,
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    if script == "sft.py" and importlib.util.find_spec("trl") is None:
        pytest.skip("trl is not installed (pip install -e '.[dev]' brings it)")
    argv = [str(tiny_model_dir) if a == TINY else a for a in args]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # for the runs cache.py and curve.py start themselves
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", [str(REPO / "bench" / script), *argv])
    threads = torch.get_num_threads()
    try:
        runpy.run_path(str(REPO / "bench" / script), run_name="__main__")
    except SystemExit as stop:  # a script's sys.exit("why")
        pytest.fail(f"bench/{script} exited: {stop.code}")
    finally:
        torch.set_num_threads(threads)  # a bench may set its own thread count; later tests keep this one
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines and re.search(last, lines[-1]), "\n".join(lines[-20:])

