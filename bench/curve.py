"""Benchmark: a learning curve, cold (empty cache) and again (every cell cached), with the grid's
time split into training, decoding and scoring, and the time the reuse saves.

Both curves are real `sft-harness curve` processes sharing one fresh SFT_HARNESS_CACHE (or --cache).
Reuse saves twice: the base model is loaded once for the grid, not once per cell that decodes
(measured: one load of the weights here, times the cells that decoded, less the one load made),
and a rerun takes every cell from the caches (measured: the second curve's wall time).

    .venv/bin/python bench/curve.py                       # banking-intents, 5 sizes x 3 seeds (hours on a CPU)
    .venv/bin/python bench/curve.py --suite poem-sentiment --sizes 8 --seeds 1 --limit 8    # a smoke check
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

from harness.runner.curve import CURVE_STRATEGIES, DEFAULT_SEEDS, DEFAULT_SIZES  # noqa: E402


def timed_curve(args: list[str], cache: Path, out: Path) -> tuple[float, dict]:
    env = {**os.environ, "SFT_HARNESS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    before = set(out.iterdir()) if out.exists() else set()
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "harness", "curve", *args, "--out", str(out)],
                         env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"curve failed ({res.returncode}):\n{res.stderr[-3000:]}")
    (folder,) = [p for p in set(out.iterdir()) - before if p.is_dir()]
    return seconds, json.loads((folder / "curve.json").read_text())


def model_load_seconds(model: str, device: str | None) -> float:
    """One load of the generator's weights, as a per-cell run would pay it (the tokenizer included)."""
    from harness.engine.models import load_generator

    start = time.perf_counter()
    loaded = load_generator(model, device=device, lazy=False)
    seconds = time.perf_counter() - start
    loaded.free()
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="banking-intents")
    p.add_argument("--strategies", default=CURVE_STRATEGIES)
    p.add_argument("--sizes", default=DEFAULT_SIZES)
    p.add_argument("--seeds", type=int, default=DEFAULT_SEEDS)
    p.add_argument("--limit", type=int, help="score only the first N test examples")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--out", help="keep the curve folders here (default: a temporary folder)")
    p.add_argument("--cache", help="cache folder to use (default: a fresh one, so the first curve is cold)")
    args = p.parse_args()
    curve_args = [args.suite, "--strategies", args.strategies, "--sizes", args.sizes, "--seeds", str(args.seeds),
                  "--model", args.model, *(["--limit", str(args.limit)] if args.limit else []),
                  *(["--device", args.device] if args.device else [])]
    with tempfile.TemporaryDirectory(prefix="bench-curve-") as tmp:
        cache = Path(args.cache) if args.cache else Path(tmp) / "cache"
        out = Path(args.out) if args.out else Path(tmp) / "runs"
        cold_s, cold = timed_curve(curve_args, cache, out)
        warm_s, warm = timed_curve(curve_args, cache, out)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load_s = model_load_seconds(args.model, args.device)
    w = cold["work"]
    decoding_cells = sum(1 for c in cold["cells"] if c["work"]["decoded"] > 0)
    print(f"curve: {args.suite} [{args.strategies}] sizes {args.sizes} x {args.seeds} seed(s)"
          + (f" --limit {args.limit}" if args.limit else ""))
    print(f"cold curve (empty cache):   {cold_s:9.1f} s wall, {w['cells']} cells, {w['computed_cells']} computed")
    print(f"  training (prepare):       {w['train_s']:9.1f} s")
    print(f"  decoding:                 {w['decode_s']:9.1f} s")
    print(f"  scoring (cells+bootstrap):{w['score_s']:9.1f} s  (bootstrap {w['bootstrap_s']:.2f} s)")
    print(f"  other (start, checks):    {cold_s - w['train_s'] - w['decode_s'] - w['score_s']:9.1f} s")
    print(f"rerun (every cell cached):  {warm_s:9.1f} s wall, {warm['work']['computed_cells']} computed, "
          f"weights loaded: {warm['work']['generator_loaded']}")
    print(f"one model load:             {load_s:9.2f} s")
    print(f"saved by loading once:      {max(decoding_cells - 1, 0) * load_s:9.1f} s "
          f"({decoding_cells} cells decoded; training loads its own fp32 copy per adapter either way)")
    print(f"saved by the caches:        {cold_s - warm_s:9.1f} s (rerun/cold {100 * warm_s / cold_s:.1f}%)")


if __name__ == "__main__":
    main()
