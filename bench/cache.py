"""Benchmark: a comparison run cold (empty cache) against the same comparison rerun (all cached).

Both runs are real `sft-harness run` processes with their own empty `SFT_HARNESS_CACHE`, so the
cold one converts the model, trains the adapters, builds the index and decodes everything; the
rerun should only read. Prints both wall times, whether the rerun loaded any weights (from
results.json's `work` section) and, last, `cached/cold: N.N%`.

    .venv/bin/python bench/cache.py                       # the demo comparison (minutes on a CPU)
    .venv/bin/python bench/cache.py --limit 16 --strategies prompt,rag,sft:epochs=1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.cli import DEMO_STRATEGIES, DEMO_SUITE  # noqa: E402


def timed_run(args: list[str], cache: Path, out: Path) -> tuple[float, dict]:
    env = {**os.environ, "SFT_HARNESS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    before = set(out.iterdir()) if out.exists() else set()
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "harness", "run", *args, "--out", str(out)],
                         env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"run failed ({res.returncode}):\n{res.stderr[-3000:]}")
    (run_dir,) = [p for p in set(out.iterdir()) - before if p.is_dir()]
    return seconds, json.loads((run_dir / "results.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default=DEMO_SUITE)
    p.add_argument("--strategies", default=DEMO_STRATEGIES)
    p.add_argument("--limit", type=int, help="score only the first N test examples")
    p.add_argument("--model", help="the generator (default: the run's default model)")
    args = p.parse_args()
    run_args = [args.suite, "--strategies", args.strategies, *(["--limit", str(args.limit)] if args.limit else []),
                *(["--model", args.model] if args.model else [])]
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "runs"
        cold_s, cold = timed_run(run_args, cache, out)
        warm_s, warm = timed_run(run_args, cache, out)
    same = all(warm["strategies"][n]["metrics"] == s["metrics"] for n, s in cold["strategies"].items())
    print(f"comparison: {args.suite} [{args.strategies}]" + (f" --limit {args.limit}" if args.limit else ""))
    print(f"cold run (empty cache):   {cold_s:8.1f} s   work: {cold.get('work')}")
    print(f"rerun (everything cached): {warm_s:7.1f} s   work: {warm.get('work')}")
    print(f"identical metrics: {same}")
    print(f"cached/cold: {100 * warm_s / cold_s:.1f}%")


if __name__ == "__main__":
    main()
