"""Commands that run models or read suites: demo, run, validate, suites."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape

from harness.cli.console import err, out
from harness.cli.options import _add_leakage_flags, _run_options
from harness.core.errors import HarnessError
from harness.core.types import ANSWER_MODES, CHOICE_NORMS

DEMO_SUITE = "support-faq"
# Sized for a 2-core CPU inside the 15-minute `make demo` budget: one passage in 200 tokens
# (prefill dominates CPU decoding) and one epoch of LoRA for both fine-tunes (~300 tokens/s).
DEMO_STRATEGIES = (
    "prompt,rag:k=1:budget=200:name=rag,sft:epochs=1:name=sft,sft+rag:k=1:budget=200:epochs=1:name=sft+rag"
)


def cmd_suites(args: argparse.Namespace) -> int:
    from harness.core.suites import builtin_suite_names, builtin_suites_dir, validate
    from harness.scoring.registry import check_metric

    # Plain aligned lines, not a rich table: names must never be truncated (scripts grep them).
    out.print(f"built-in suites in {builtin_suites_dir()}", highlight=False)
    head = f"{'name':<16} {'task':<14} {'train':>5} {'test':>5} {'valid':>5} {'corpus':>6}  metrics"
    out.print(f"[bold]{head}[/]", highlight=False)
    for name in builtin_suite_names():
        suite, problems = validate(name, known_metrics=check_metric)
        if suite is None:
            out.print(f"{name:<16} [red]invalid[/]: {escape(problems[0])}", highlight=False, soft_wrap=True)
            continue
        n = suite.sizes()
        out.print(f"{name:<16} {suite.task:<14} {n['train']:>5} {n['test']:>5} {n['validation']:>5} {n['corpus']:>6}  "
                  f"{', '.join(suite.metrics)}", highlight=False, soft_wrap=True)
        if suite.description:
            out.print(f"  [dim]{escape(suite.description)}[/]", highlight=False)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.core.suites import validate
    from harness.scoring.registry import check_metric

    suite, problems = validate(args.suite, known_metrics=check_metric)
    if problems:
        for p in problems:
            out.print(p, highlight=False, soft_wrap=True, markup=False)
        err.print(f"[red]{len(problems)} problem(s)[/] in suite {escape(args.suite)}", highlight=False)
        return 2
    assert suite is not None
    s = suite.sizes()
    out.print(f"[green]ok[/] {escape(suite.name)}: {suite.task}, train {s['train']}, test {s['test']}, "
              f"validation {s['validation']}, corpus {s['corpus']}, sha256 {suite.sha256[:12]}", soft_wrap=True)
    return _validate_leakage(suite, args)


def _validate_leakage(suite: Any, args: argparse.Namespace) -> int:
    """`validate`'s leakage summary: offline text checks (near-duplicates only with --embedder); a
    finding, not a broken suite: exit 0 unless --fail-on-leakage."""
    from harness.engine.leakage import check_validate_leakage

    report = check_validate_leakage(suite, args.embedder, args.leakage_threshold)
    out.print(f"[{'yellow' if report.pairs else 'green'}]leakage[/]: {escape(report.summary())} "
              f"({report.seconds:.2f} s)", soft_wrap=True, highlight=False)
    for line in report.lines(args.show):
        out.print(line, markup=False, highlight=False)
    return 2 if args.fail_on_leakage and report.pairs else 0


def cmd_run(args: argparse.Namespace) -> int:
    from harness.report import publish
    from harness.runner import run
    from harness.runner.launched import launched, run_launched

    opts = _run_options(args)
    if launched():  # torchrun / accelerate launch: rank 0 runs, the other ranks train (harness.runner.launched)
        return run_launched(opts, lambda: publish(run(opts, err), err))
    publish(run(opts, err), err)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from harness.runner import RunOptions, link_latest, run

    if args.limit is not None and args.limit < 1:
        raise HarnessError(f"--limit must be a positive number of test examples, got {args.limit}")
    opts = RunOptions(suite=args.suite, strategies=args.strategies, out=Path(args.out), run_label="demo",
                      seed=0, slice_by=("category",) if args.suite == DEMO_SUITE else (), limit=args.limit)
    from harness.report import publish

    run_dir = run(opts, err)
    publish(run_dir, err)
    # Each demo gets its own folder (two at once never share one); `reports/demo` names the latest.
    link = link_latest(run_dir.parent, "demo", run_dir)
    err.print(f"[green]latest demo:[/] {escape(str(link))}/report.html -> {escape(run_dir.name)}", highlight=False)
    return 0


def add_parsers(sub: Any) -> None:
    d = sub.add_parser("demo", help="the built-in comparison on the default models, offline")
    d.add_argument("--suite", default=DEMO_SUITE)
    d.add_argument("--strategies", default=DEMO_STRATEGIES)
    d.add_argument("--out", default="reports")
    d.add_argument("--limit", type=int, help="score only the first N test examples (a quick look; the demo's "
                   "conclusion needs them all)")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("run", help="run strategies on a suite and write a run folder")
    r.add_argument("suite", nargs="?", help="suite folder or built-in name")
    r.add_argument("--strategies", help="e.g. prompt,prompt:k=4:select=knn,rag:k=5,sft:epochs=3")
    r.add_argument("--model", help="HF id, local folder, .gguf file or alias (default smollm2-135m-instruct)")
    r.add_argument("--embedder", help="sentence-transformers model (default all-minilm-l6-v2)")
    r.add_argument("--out", help="folder for run folders (default reports)")
    r.add_argument("--limit", type=int, help="score only the first N test examples")
    r.add_argument("--seed", type=int)
    r.add_argument("--config", help="run.toml with any of these options and [[strategies]] tables")
    r.add_argument("--slice-by", dest="slice_by", type=lambda s: [x for x in s.split(",") if x], help="meta fields, e.g. source")
    r.add_argument("--batch-size", dest="batch_size", type=int, help="decoding batch (default: 64 on a CPU, 16 on a GPU)")
    r.add_argument("--gpu-hour-usd", dest="gpu_hour_usd", type=float,
                   help="price per device hour for cost figures ([cost] device_hour_usd in --config)")
    r.add_argument("--monthly-requests", dest="monthly_requests", type=float,
                   help="expected requests a month: monthly cost and break-even in months ([cost] monthly_requests)")
    r.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    r.add_argument("--trust-remote-code", action="store_true",
                   help="allow model code from the hub and evaluate: metric modules (off by default)")
    _add_leakage_flags(r, run=True)
    r.add_argument("--answer", choices=ANSWER_MODES, help="how answers come out of the model for strategies that set "
                   "none: free text (default), choice (classification: labels scored by likelihood), constrained "
                   "(decoding limited to the labels or the suite's JSON fields)")
    r.add_argument("--choice-norm", dest="choice_norm", choices=CHOICE_NORMS,
                   help="answer=choice: sum (default) or mean of a label's token log-probabilities")
    r.add_argument("--calibrate", action="store_true", default=None,
                   help="answer=choice: contextual calibration (divide by the label probabilities of content-free inputs)")
    r.add_argument("--judge-model", dest="judge_model",
                   help="grade the suite's judged metrics ([[judges]]) with this model: a [[models]] name of "
                        "--config, or a model alias, hub id or folder")
    r.add_argument("--human", help="people's grades of outputs (JSONL or CSV, see `judge-sample`) to validate the "
                                   "judges against; default: the suite's human.jsonl")
    r.add_argument("--control", help="forgetting check: also score every adapter on these suites (SUITE[,SUITE]), "
                   "paired against the base model")
    r.add_argument("--control-limit", dest="control_limit", type=int,
                   help="control examples per suite when --limit is not given (default 200)")
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="check a suite; every problem with file:line; leakage of its test split")
    v.add_argument("suite")
    v.add_argument("--embedder", help="also look for embedding near-duplicates with this embedder (e.g. all-minilm-l6-v2)")
    _add_leakage_flags(v, run=False)
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("suites", help="list the built-in suites")
    s.set_defaults(func=cmd_suites)
