"""Command line: `sft-harness demo | run | curve | validate | suites | import | report | gate | history |
judge-sample | export`.

Exit codes: 0 success, 1 a gate found a regression, 2 bad input or usage (one line, no traceback),
3 an internal error (one line; the traceback is saved to a file named in that line).
Each command group lives in its own module with an `add_parsers(sub)`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.markup import escape

from harness.cli import curve, data, export, judge, reports, run
from harness.cli.console import _Parser, _quiet_libraries, err
from harness.cli.options import _run_options
from harness.cli.run import DEMO_STRATEGIES, DEMO_SUITE
from harness.core.errors import HarnessError, SuiteError

__all__ = ["DEMO_STRATEGIES", "DEMO_SUITE", "_quiet_libraries", "_run_options", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sft-harness", description="Fine-tune, prompt or retrieve? Decide with evidence.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__import__('harness').__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for group in (run, reports, curve, data, judge, export):
        group.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        return int(args.func(args))
    except SuiteError as e:  # one line: the first problem; `validate` lists them all
        err.print(f"[red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        return 2
    except HarnessError as e:
        err.print(f"[red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: decoded predictions are cached; run the same command again to resume",
                  soft_wrap=True)
        return 130
    except OSError as e:  # disk full, permissions, a path that vanished: the machine's state, not a bug
        where = f" {e.filename}" if e.filename else ""
        err.print(f"[red]error:[/]{escape(where)}: {escape(e.strerror or str(e))}", highlight=False, soft_wrap=True)
        return 2
    except Exception as e:  # a bug of ours: one line here, the traceback in a file to report
        log = _save_traceback()
        err.print(f"[red]internal error:[/] {escape(type(e).__name__)}: {escape(str(e)[:300])} "
                  f"(traceback in {escape(str(log))}; please report it)", highlight=False, soft_wrap=True)
        return 3


def _save_traceback() -> Path:
    import tempfile
    import traceback

    fd, name = tempfile.mkstemp(prefix="sft-harness-crash-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        traceback.print_exc(file=f)
    return Path(name)


if __name__ == "__main__":
    sys.exit(main())
