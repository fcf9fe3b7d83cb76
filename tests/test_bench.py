"""Every bench script runs to its last line on a tiny workload, so a bench cannot break silently
(bench/sft.py once crashed before its `speedup:` line and no test noticed). The figures themselves
are measured by running the scripts on an idle machine (README, "Benchmarks"), never here."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
                                            tmp_path: Path) -> None:
    if script == "sft.py" and importlib.util.find_spec("trl") is None:
        pytest.skip("trl is not installed (pip install -e '.[dev]' brings it)")
    argv = [str(tiny_model_dir) if a == TINY else a for a in args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SFT_HARNESS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, str(REPO / "bench" / script), *argv], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.strip().splitlines()
    assert lines and re.search(last, lines[-1]), res.stdout[-2000:]
