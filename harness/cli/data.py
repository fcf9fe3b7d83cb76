"""`sft-harness import`: a suite folder from your data (harness.core.importing), then the same
summary and leakage check as `sft-harness validate` (its code, called, not copied)."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.cli.console import err, out
from harness.cli.options import _add_leakage_flags
from harness.core.errors import HarnessError
from harness.core.types import TASKS


class _Bars:
    """Progress bars (the harness's one style), drawn only for inputs that take a while: a reader's
    first report that is already its last (a small file) draws nothing."""

    def __init__(self, console: Console):
        self.console = console
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}

    def update(self, what: str, done: int, total: int | None) -> None:
        if self.progress is None:
            if total is not None and done >= total:
                return
            from harness.engine.context import make_progress

            self.progress = make_progress(self.console)
            self.progress.start()
        if what not in self.tasks:
            self.tasks[what] = self.progress.add_task(what, total=total, info="")
        self.progress.update(self.tasks[what], completed=done, total=total)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _list(text: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip()) if text else ()


def _given(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    files = [(split, getattr(args, split)) for split in ("train", "test", "validation") if getattr(args, split)]
    if args.source and files:
        raise HarnessError(f"give either FILE_OR_DATASET or --train/--test/--validation files, not both "
                           f"({args.source} and --{files[0][0]})")
    if files and not args.train:
        raise HarnessError("--test and --validation need --train FILE: the rows to train on")
    if not args.source and not files:
        raise HarnessError("what to import? `sft-harness import FILE_OR_DATASET --out SUITE_DIR` "
                           "(or --train FILE --test FILE)")
    return tuple(files) if files else (("all", args.source),)


def _command(args: argparse.Namespace) -> str:
    """The command as parsed (every option that differs from its default), for the suite's README."""
    words = ["sft-harness", "import"] + ([args.source] if args.source else [])
    for action in args.import_parser._actions:
        if not action.option_strings or action.dest in ("help", "source"):
            continue
        value = getattr(args, action.dest, None)
        if value is None or value is False or value == action.default:
            continue
        words += [action.option_strings[0]] + ([] if value is True else [str(value)])
    return shlex.join(words)


def _options(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from harness.core.importing import Columns, ImportOptions, parse_size

    return ImportOptions(
        out=Path(args.out).expanduser(), given=_given(args), format=args.format,
        columns=Columns(_list(args.input), args.target, _list(args.meta), args.id), header=_list(args.columns),
        task=args.task, instruction=args.instruction, name=args.name, description=args.description,
        hf_split=args.split, hf_config=args.config, seed=args.seed,
        test_size=parse_size(args.test_size, "--test-size") if args.test_size is not None else None,
        validation_size=parse_size(args.validation_size, "--validation-size") if args.validation_size is not None else None,
        corpus=Path(args.corpus) if args.corpus else None, corpus_text=args.corpus_text, skip_bad=args.skip_bad,
        force=args.force, max_new_tokens=args.max_new_tokens, command=_command(args),
    )


def cmd_import(args: argparse.Namespace) -> int:
    from harness.cli.run import cmd_validate
    from harness.core.importing import BadRowsError, import_suite
    from harness.scoring.registry import check_metric

    if args.max_new_tokens is not None and not 1 <= args.max_new_tokens <= 32768:
        raise HarnessError(f"--max-new-tokens must be between 1 and 32768, got {args.max_new_tokens}")
    opts = _options(args)
    bars = _Bars(err)
    try:
        import_suite(opts, lambda line: out.print(escape(line), highlight=False, soft_wrap=True),
                     bars.update, known_metrics=check_metric)
    except BadRowsError as e:
        bars.close()
        for problem in e.problems:
            err.print(problem, markup=False, highlight=False, soft_wrap=True)
        listed = f" (the first {len(e.problems)} listed above)" if e.total > len(e.problems) else ""
        raise HarnessError(f"{e.total} bad row(s){listed}; nothing was written: fix them, or pass --skip-bad "
                           "to leave them out") from None
    finally:
        bars.close()
    check = argparse.Namespace(suite=str(opts.out), embedder=args.embedder, leakage_threshold=args.leakage_threshold,
                               show=args.show, fail_on_leakage=args.fail_on_leakage)
    return int(cmd_validate(check))


def add_parsers(sub: Any) -> None:
    from harness.core.importing import FORMATS

    p = sub.add_parser("import", help="a suite folder from your data (chat JSONL, ShareGPT, Alpaca, CSV/TSV, "
                       "Parquet, a Hugging Face dataset)")
    p.add_argument("source", nargs="?", metavar="FILE_OR_DATASET",
                   help="a data file, a save_to_disk folder, or a Hugging Face Hub dataset name")
    p.add_argument("--out", required=True, metavar="SUITE_DIR", help="the suite folder to write (must not exist "
                   "or be empty, unless --force)")
    p.add_argument("--format", choices=FORMATS, help="default: detected from the content")
    p.add_argument("--train", metavar="FILE", help="splits given as files: --train FILE --test FILE [--validation FILE]")
    p.add_argument("--test", metavar="FILE")
    p.add_argument("--validation", metavar="FILE")
    g = p.add_argument_group("columns of a table (csv, tsv, jsonl, parquet, hf)")
    g.add_argument("--input", metavar="COL[,COL]", help="input column(s); several are joined as 'name: value' lines")
    g.add_argument("--target", metavar="COL", help="the answer column")
    g.add_argument("--meta", metavar="COL[,COL]", help="columns kept as meta (for --slice-by)")
    g.add_argument("--id", metavar="COL", help="the id column (default: ids from the row numbers)")
    g.add_argument("--columns", metavar="NAME[,NAME]", help="names of the columns of a CSV/TSV without a header line")
    s = p.add_argument_group("the suite")
    s.add_argument("--task", choices=TASKS, help="default: inferred from the targets")
    s.add_argument("--instruction", help="the suite's instruction (default: the system message or instruction "
                   "most rows share, else one for the task)")
    s.add_argument("--name", help="the suite's name (default: the --out folder's name)")
    s.add_argument("--description")
    s.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, help="default: from the targets' lengths")
    s.add_argument("--corpus", metavar="FILE_OR_DIR", help="a knowledge base for retrieval: JSONL / CSV / TSV "
                   "rows (id, title, text) or a folder of .txt / .md files")
    s.add_argument("--corpus-text", dest="corpus_text", metavar="COL", help="the corpus's text column (default: text)")
    d = p.add_argument_group("splits and rows")
    d.add_argument("--seed", type=int, default=0, help="of the split (default 0)")
    d.add_argument("--test-size", dest="test_size", help="a fraction (0.2, 20%%) or a count (default 20%%, at most 500)")
    d.add_argument("--validation-size", dest="validation_size",
                   help="a fraction or a count (default 10%%, at most 200, for a single source)")
    d.add_argument("--split", help="Hugging Face dataset: import this split alone (and split it)")
    d.add_argument("--config", help="Hugging Face dataset: its configuration name")
    d.add_argument("--skip-bad", dest="skip_bad", action="store_true", help="leave bad rows out (counted) "
                   "instead of stopping")
    d.add_argument("--force", action="store_true", help="replace an existing suite folder at --out")
    v = p.add_argument_group("the check afterwards (as `sft-harness validate`)")
    v.add_argument("--embedder", help="also look for embedding near-duplicates with this embedder")
    _add_leakage_flags(v, run=False)  # type: ignore[arg-type]
    p.set_defaults(func=cmd_import, import_parser=p)
