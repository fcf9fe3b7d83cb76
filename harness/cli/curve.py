"""`sft-harness curve SUITE`: a learning curve over train sizes and seeds, with crossovers."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape

from harness.cli.console import err, out
from harness.cli.options import _run_options
from harness.core.config import load_config


def _curve_options(args: argparse.Namespace) -> Any:
    from harness.runner.curve import CURVE_STRATEGIES, DEFAULT_SEEDS, DEFAULT_SIZES, CurveOptions
    from harness.runner.curve_data import parse_sizes

    conf = load_config(args.config).data if args.config else {}
    if args.strategies is None and "strategies" not in conf:
        args.strategies = CURVE_STRATEGIES  # the curve's question: few-shot prompting against fine-tuning
    run = _run_options(args)
    sizes = args.sizes if args.sizes is not None else conf.get("sizes", DEFAULT_SIZES)
    seeds = args.seeds if args.seeds is not None else conf.get("seeds", DEFAULT_SEEDS)
    return CurveOptions(run=run, sizes=parse_sizes(sizes, run.flag("sizes")), seeds=int(seeds),
                        executor=args.executor, address=args.address)


def cmd_curve(args: argparse.Namespace) -> int:
    from harness.report.sections.curve import load_curve, render_curve, sentences
    from harness.runner.curve import run_curve

    folder = run_curve(_curve_options(args), err)
    paths = render_curve(folder)
    curve = load_curve(folder)
    for line in sentences(curve) or ["no pair of curves to compare"]:
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    w = curve["work"]
    err.print(f"[green]wrote[/] {escape(str(folder))}/curve.json, cells.jsonl, "
              f"{', '.join(escape(p.name) for p in paths)} ({w['cells']} cells, {w['computed_cells']} computed now)",
              highlight=False, soft_wrap=True)
    return 0


def add_parsers(sub: Any) -> None:
    c = sub.add_parser("curve", help="a learning curve: strategies at several train sizes and seeds, with crossovers")
    c.add_argument("suite", nargs="?", help="suite folder or built-in name")
    c.add_argument("--strategies", help="default prompt,prompt:k=8:select=knn,sft")
    c.add_argument("--sizes", help="train sizes, e.g. 16,32,64,128,all (sizes in --config)")
    c.add_argument("--seeds", type=int, help="training seeds per size (default 3; seeds in --config)")
    c.add_argument("--config", help="run.toml with run options, sizes, seeds and [[strategies]] tables")
    c.add_argument("--out", help="folder for the curve folder (default reports)")
    c.add_argument("--limit", type=int, help="score only the first N test examples")
    c.add_argument("--model", help="HF id, local folder or alias (default smollm2-135m-instruct)")
    c.add_argument("--embedder", help="sentence-transformers model (default all-minilm-l6-v2)")
    c.add_argument("--batch-size", dest="batch_size", type=int, help="decoding batch (default: 64 on a CPU, 16 on a GPU)")
    c.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    c.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub")
    c.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: the cells in turn in this process (default); ray: one Ray task per cell "
                        "(pip install 'sft-harness[ray]')")
    c.add_argument("--address", help="with --executor ray: a running Ray cluster (HOST:PORT, ray://HOST:PORT or "
                   "auto); default: a local Ray instance on this machine's cores and GPUs")
    # What `run` options the curve does not take: the leakage check and cost figures are the run's.
    c.set_defaults(func=cmd_curve, seed=None, slice_by=None, gpu_hour_usd=None, monthly_requests=None,
                   leakage_threshold=None, no_leakage_check=True, fail_on_leakage=False)
