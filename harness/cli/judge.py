"""`sft-harness judge-sample RUN --n 50`: a stratified, seeded sample of a run's outputs for people to
grade, as a JSONL or CSV form; the filled form is what `run --human FILE` (or the suite's
human.jsonl) reads to validate the judges (harness.core.human).

The form is blind: it shows the question, the reference and the output, not the strategy nor the
judge's grade (an output is matched back by its exact text), so a grader is anchored by neither.
Reference and rubric forms sample outputs evenly across strategies; a pairwise form (`--mode
pairwise`) samples examples and shows two strategies' outputs as A and B in a random order.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
from itertools import combinations
from pathlib import Path
from typing import Any

from harness.cli.console import out
from harness.core import jsonl
from harness.core.cache import write_text_atomic
from harness.core.errors import HarnessError
from harness.core.judges import JUDGE_MODES
from harness.core.runrecord import PredictionRecord, load_run

GRADE_HELP = {"reference": "correct, partial or wrong (against the reference)",
              "rubric": "a whole number from 1 (worst) to 5 (best) on the suite's rubric",
              "pairwise": "A, B or tie (which answer is better)"}


def _spread(n: int, groups: int) -> list[int]:
    """n split as evenly as possible over `groups` (the first ones get the remainder)."""
    return [n // groups + (1 if i < n % groups else 0) for i in range(groups)]


def sample_rows(records: dict[str, list[PredictionRecord]], n: int, seed: int, mode: str) -> list[dict[str, Any]]:
    """The form's rows: `n` outputs (pairwise: `n` pairs) drawn evenly across strategies (pairs)."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    if mode == "pairwise":
        pairs = list(combinations(records, 2))
        if not pairs:
            raise HarnessError("a pairwise form needs a run with two strategies or more")
        for (a, b), k in zip(pairs, _spread(n, len(pairs)), strict=True):
            by_id = {r.example_id: r for r in records[b] if r.error is None}
            shared = [r for r in records[a] if r.error is None and r.example_id in by_id]
            for ra in rng.sample(shared, min(k, len(shared))):
                rb = by_id[ra.example_id]
                first, second = (ra, rb) if rng.random() < 0.5 else (rb, ra)
                rows.append({"example_id": ra.example_id, "strategies": [first.strategy, second.strategy],
                             "input": ra.input, "reference": " | ".join(ra.example().references()),
                             "output_a": first.output, "output_b": second.output, "grade": ""})
    else:
        names = list(records)
        for name, k in zip(names, _spread(n, len(names)), strict=True):
            valid = [r for r in records[name] if r.error is None]
            for r in rng.sample(valid, min(k, len(valid))):
                rows.append({"example_id": r.example_id, "input": r.input,
                             "reference": " | ".join(r.example().references()), "output": r.output, "grade": ""})
    rng.shuffle(rows)  # strategies interleaved: a grader cannot tell them apart by position
    return [{"sample": i + 1, **row} for i, row in enumerate(rows)]


def _as_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    fields = list(rows[0]) if rows else ["sample", "example_id", "output", "grade"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: " vs ".join(v) if isinstance(v, list) else v for k, v in row.items()})
    return buf.getvalue()


def cmd_judge_sample(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise HarnessError(f"--n must be at least 1, got {args.n}")
    run = load_run(Path(args.run_dir))
    names = args.strategies.split(",") if args.strategies else run.strategies
    unknown = [s for s in names if s not in run.strategies]
    if unknown:
        raise HarnessError(f"--strategies: no strategy '{unknown[0]}' in {run.dir}; it has {', '.join(run.strategies)}")
    records = {name: run.predictions_for(name) for name in names}
    rows = sample_rows(records, args.n, args.seed, args.mode)
    path = Path(args.out) if args.out else run.dir / "judge-sample.jsonl"
    text = _as_csv(rows) if path.suffix.lower() == ".csv" else "".join(jsonl.dumps(r) + "\n" for r in rows)
    try:
        write_text_atomic(path, text)
    except OSError as e:
        raise HarnessError(f"--out {path}: cannot write ({e.strerror})") from None
    out.print(f"wrote {len(rows)} {'pairs' if args.mode == 'pairwise' else 'outputs'} to grade to {path}: fill each "
              f"'grade' with {GRADE_HELP[args.mode]}, then run again with --human {path}", highlight=False)
    return 0


def add_parsers(sub: Any) -> None:
    j = sub.add_parser("judge-sample", help="a sample of a run's outputs for people to grade (validates judges)")
    j.add_argument("run_dir", help="a run folder (reports/<run-id>)")
    j.add_argument("--n", type=int, default=50, help="outputs (pairwise: pairs) to sample (default 50)")
    j.add_argument("--seed", type=int, default=0)
    j.add_argument("--mode", choices=JUDGE_MODES, default="reference",
                   help="what people grade: reference (default) and rubric show one output, pairwise two")
    j.add_argument("--strategies", help="the strategies to sample from (default: all of the run's)")
    j.add_argument("--out", help="the form to write: .jsonl or .csv (default RUN/judge-sample.jsonl)")
    j.set_defaults(func=cmd_judge_sample)
