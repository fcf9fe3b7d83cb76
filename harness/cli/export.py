"""`sft-harness export RUN STRATEGY --out DIR [--merge] [--openai-jsonl]`: the winner, for serving
(harness.runner.export)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape

from harness.cli.console import err, out


def cmd_export(args: argparse.Namespace) -> int:
    from harness.runner.export import export

    done = export(Path(args.run_dir), args.strategy, Path(args.out), merge=args.merge, openai_jsonl=args.openai_jsonl,
                  check=args.check, examples=args.examples, suite_dir=args.suite, console=err)
    for line in done.checks:
        err.print(f"[green]ok:[/] {escape(line)}", highlight=False, soft_wrap=True)
    for line in done.warnings:
        err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
    out.print(f"exported {escape(args.strategy)} to {escape(str(done.out))}: {', '.join(sorted(done.files))}",
              highlight=False, soft_wrap=True)
    return 0


def add_parsers(sub: Any) -> None:
    e = sub.add_parser("export", help="a run's strategy for serving: prompt template, decoding, adapter, merged "
                                      "model, retrieval index, OpenAI fine-tuning JSONL")
    e.add_argument("run_dir", help="a run folder (reports/<run-id>)")
    e.add_argument("strategy", help="the strategy to export, as the run names it (e.g. sft, rag, 'prompt:k=4')")
    e.add_argument("--out", required=True, help="the folder to write (a new one, or an earlier export to replace)")
    e.add_argument("--merge", action="store_true",
                   help="sft, sft+rag, adapter: also the adapter merged into the base model (safetensors), decoded "
                        "again on --check test examples")
    e.add_argument("--openai-jsonl", action="store_true",
                   help="the train (and validation) split in OpenAI chat fine-tuning JSONL, with this prompt")
    e.add_argument("--check", type=int, default=3, help="test examples the merged model decodes again (default 3; 0: none)")
    e.add_argument("--examples", type=int, default=5, help="test examples written to examples.jsonl (default 5)")
    e.add_argument("--suite", help="the suite folder, if it moved since the run (refused if its files changed)")
    e.set_defaults(func=cmd_export)
