"""Command line: `sft-harness demo | run | validate | suites | report | gate | history`.

Exit codes: 0 success, 1 a gate found a regression, 2 bad input or usage (one line, no traceback),
3 an internal error (one line; the traceback is saved to a file named in that line).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape

from harness.core.config import load_config
from harness.core.errors import HarnessError, SuiteError

DEMO_SUITE = "support-faq"
# Sized for a 2-core CPU inside the 15-minute `make demo` budget: one passage in 200 tokens
# (prefill dominates CPU decoding) and one epoch of LoRA for both fine-tunes (~300 tokens/s).
DEMO_STRATEGIES = (
    "prompt,rag:k=1:budget=200:name=rag,sft:epochs=1:name=sft,sft+rag:k=1:budget=200:epochs=1:name=sft+rag"
)

err = Console(stderr=True)
out = Console()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors: one line, exit 2
        err.print(f"[red]error:[/] {escape(message)} (see `{self.prog} --help`)", highlight=False)
        raise SystemExit(2)


def _quiet_libraries() -> None:
    """Our progress bars are the only ones: library bars and warnings would bury them."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Raw tqdm bars inside libraries (transformers' one-time GGUF conversion) ignore the switches
    # below; tqdm reads this when it is first imported, which is after this point.
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


# -- commands -----------------------------------------------------------------------------------
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


def _add_leakage_flags(p: argparse.ArgumentParser, run: bool) -> None:
    p.add_argument("--fail-on-leakage", dest="fail_on_leakage", action="store_true",
                   help="exit 2 when a test example leaks into train, validation or the corpus (for CI)")
    if run:
        p.add_argument("--no-leakage-check", dest="no_leakage_check", action="store_true",
                       help="skip the leakage check (huge suites)")
    else:
        p.add_argument("--show", type=int, default=20, help="pairs to list (default 20)")
    p.add_argument("--leakage-threshold", dest="leakage_threshold", type=float, default=None if run else 0.95,
                   help="cosine from which two examples are near-duplicates (default 0.95)")


def _names_option(message: str, key: str) -> bool:
    """Whether a strategy error is about `key` ("no option 'kk'", "option k='two'", "k must ...")."""
    if key == "kind":
        return message.startswith("unknown strategy")
    return re.search(rf"(?<![\w]){re.escape(key)}(?:'|=| must)", message) is not None


def _run_options(args: argparse.Namespace) -> Any:
    from .runner import RunOptions

    config = load_config(args.config) if getattr(args, "config", None) else None
    conf = config.data if config else {}

    def pick(name: str, default: Any) -> Any:
        value = getattr(args, name, None)
        return value if value is not None else conf.get(name, default)

    suite = args.suite or conf.get("suite")
    if not suite:
        raise HarnessError("no suite given: `sft-harness run SUITE` (or `suite = ...` in --config)")
    strategy_params: list[tuple[str, str | None, dict[str, Any]]] = []
    # long: one option after another. Where each value from the file sits, so a later refusal names
    # run.toml:LINE, not a flag.
    sources = {key: config.where(key) for key in conf if getattr(args, key, None) is None} if config else {}
    spec = args.strategies
    tables = config.strategy_tables() if config and spec is None else []  # [[strategies]] kind = "prompt" ...
    if config and tables:
        import strategies as registry

        for i, table in enumerate(tables):
            kind, name = table.pop("kind"), table.pop("name", None)
            try:  # cheap (no model): a bad kind or option is reported at its line, before any work
                registry.build(kind, dict(table), name)
            except HarnessError as e:
                blamed = next((k for k in ("kind", *table) if _names_option(str(e), k)), None)
                raise HarnessError(f"{config.where(blamed, entry=i)}: {e}") from None
            strategy_params.append((kind, name, table))
            sources[f"strategy {name or kind}"] = config.where(entry=i)
            sources[f"strategy {name or kind} model"] = config.where("model", entry=i)  # or the header's line
    elif spec is None:
        spec = conf.get("strategies", "prompt")
        if config and "strategies" in conf:  # a spec string in the file: blame its line
            import strategies as registry

            try:
                registry.from_spec(str(spec))
            except HarnessError as e:
                raise HarnessError(f"{config.where('strategies')}: {e}") from None
    models = config.model_specs() if config else {}  # [[models]]: what `model=NAME` picks
    sources.update({f"model {name}": config.where_model(None, i) for i, name in enumerate(models)} if config else {})
    slice_by = args.slice_by if args.slice_by else conf.get("slice_by", [])
    if isinstance(slice_by, str):
        slice_by = [s for s in slice_by.split(",") if s]
    return RunOptions(
        sources=sources,
        suite=suite,
        strategies=spec or "",
        model=pick("model", "smollm2-135m-instruct"),
        embedder=pick("embedder", "all-minilm-l6-v2"),
        out=Path(pick("out", "reports")),
        limit=pick("limit", None),
        seed=pick("seed", 0),
        slice_by=tuple(slice_by),
        batch_size=pick("batch_size", None),
        usd_per_hour=pick("gpu_hour_usd", config.cost("device_hour_usd") if config else None),
        monthly_requests=pick("monthly_requests", config.cost("monthly_requests") if config else None),
        device=pick("device", None),
        trust_remote_code=bool(args.trust_remote_code or conf.get("trust_remote_code", False)),
        **_leakage_options(args, conf),
        strategy_params=strategy_params,
        models=models,
    )


def _leakage_options(args: argparse.Namespace, conf: dict[str, Any]) -> dict[str, Any]:
    """The leakage options of `run`: a flag wins over the config file's key."""
    threshold = args.leakage_threshold if args.leakage_threshold is not None else conf.get("leakage_threshold", 0.95)
    return {"leakage_check": not args.no_leakage_check and bool(conf.get("leakage_check", True)),
            "leakage_threshold": float(threshold),
            "fail_on_leakage": bool(args.fail_on_leakage or conf.get("fail_on_leakage", False))}


def cmd_run(args: argparse.Namespace) -> int:
    from harness.report import publish

    from .runner import run

    opts = _run_options(args)
    publish(run(opts, err), err)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .runner import RunOptions, link_latest, run

    opts = RunOptions(suite=args.suite, strategies=args.strategies, out=Path(args.out), run_label="demo",
                      seed=0, slice_by=("category",) if args.suite == DEMO_SUITE else ())
    from harness.report import publish

    run_dir = run(opts, err)
    publish(run_dir, err)
    # Each demo gets its own folder (two at once never share one); `reports/demo` names the latest.
    link = link_latest(run_dir.parent, "demo", run_dir)
    err.print(f"[green]latest demo:[/] {escape(str(link))}/report.html -> {escape(run_dir.name)}", highlight=False)
    return 0


@contextlib.contextmanager
def _reading(run_dirs: list[Path]) -> Iterator[None]:
    """A results.json that passed the shape checks but holds a value of the wrong type deeper
    down (hand-edited, another tool's) is the file's fault: one line naming it, not a traceback."""
    try:
        yield
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        where = " or ".join(str(d / "results.json") for d in run_dirs)
        raise HarnessError(f"{where}: a value has the wrong type or shape ({type(e).__name__}: {str(e)[:200]}); "
                           "re-run to regenerate it") from None


def _check_writable(path: Path, option: str) -> None:
    """Refuse an output path that cannot be written, before any work is done."""
    if path.is_dir():
        raise HarnessError(f"{option} {path}: is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise HarnessError(f"{option} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise HarnessError(f"{option} {path}: not writable")


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import history
    from harness.report import markdown as report

    run_dir = Path(args.run_dir)
    with _reading([run_dir]):
        suite_name = report.load_run(run_dir).results["suite"]["name"]
        paths = report.render_all(run_dir, history=history.load_history(run_dir.parent, suite_name))
    for p in paths:
        out.print(f"wrote {escape(str(p))}", highlight=False)
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    from harness.report import gate

    base_dir, base_strategy = gate.parse_run_ref(args.baseline)
    cand_dir, cand_strategy = gate.parse_run_ref(args.candidate)
    max_drop, max_drop_by_metric = gate.parse_max_drops(args.max_drop or [])
    outputs = [(Path(p), opt, write) for p, opt, write in ((args.junit, "--junit", gate.write_junit),
                                                            (args.json, "--json", gate.write_json)) if p]
    for path, option, _ in outputs:  # a gate that cannot write its verdict must not print one first
        _check_writable(path, option)
    with _reading([Path(base_dir), Path(cand_dir)]):
        result = gate.gate(
            (base_dir, base_strategy),
            (cand_dir, cand_strategy),
            metrics=args.metric or None,
            max_drop=max_drop,
            max_drop_by_metric=max_drop_by_metric,
            alpha=args.alpha,
            correction=args.correction,
            allow_suite_change=args.allow_suite_change,
            trust_remote_code=args.trust_remote_code,
        )
    for path, option, write in outputs:
        try:
            write(result, path)
        except OSError as e:  # exit 2, never 1: CI must not read a failed write as a regression
            raise HarnessError(f"{option} {path}: cannot write ({e.strerror})") from None
    gate.render_gate(result, out)
    return 1 if result.regressions else 0


def cmd_history(args: argparse.Namespace) -> int:
    from harness.report import history

    reports = Path(args.reports)
    if not reports.is_dir():
        raise HarnessError(f"--reports {reports}: not a folder of runs (default: reports)")
    history.print_history(reports, args.suite, out)
    return 0


# -- parser -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sft-harness", description="Fine-tune, prompt or retrieve? Decide with evidence.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__import__('harness').__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("demo", help="the built-in comparison on the default models, offline")
    d.add_argument("--suite", default=DEMO_SUITE)
    d.add_argument("--strategies", default=DEMO_STRATEGIES)
    d.add_argument("--out", default="reports")
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
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="check a suite; every problem with file:line; leakage of its test split")
    v.add_argument("suite")
    v.add_argument("--embedder", help="also look for embedding near-duplicates with this embedder (e.g. all-minilm-l6-v2)")
    _add_leakage_flags(v, run=False)
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("suites", help="list the built-in suites")
    s.set_defaults(func=cmd_suites)

    rep = sub.add_parser("report", help="re-render reports of a run folder (no model)")
    rep.add_argument("run_dir")
    rep.set_defaults(func=cmd_report)

    _add_gate(sub)

    h = sub.add_parser("history", help="metric trends across runs (reports/index.jsonl)")
    h.add_argument("suite", nargs="?")
    h.add_argument("--reports", default="reports")
    h.set_defaults(func=cmd_history)
    return p


def _add_gate(sub: Any) -> None:
    g = sub.add_parser("gate", help="baseline vs candidate run: exit 1 on a regression")
    g.add_argument("baseline", help="RUN_DIR or RUN_DIR:STRATEGY")
    g.add_argument("candidate", help="RUN_DIR or RUN_DIR:STRATEGY")
    g.add_argument("--metric", action="append", help="metric to gate on (repeatable; default: the suite's)")
    g.add_argument("--max-drop", dest="max_drop", action="append", metavar="[METRIC=]X",
                   help="tolerated absolute drop, in the metric's own scale (default 0); "
                        "repeat as METRIC=X per metric, e.g. --max-drop 0.01 --max-drop bleu=1.5")
    g.add_argument("--alpha", type=float, default=0.05)
    g.add_argument("--correction", choices=("none", "holm"), default="none",
                   help="holm: adjust p-values across all checks, for gates with many strategies and metrics")
    g.add_argument("--junit", help="write JUnit XML here")
    g.add_argument("--json", help="write the verdicts as JSON here")
    g.add_argument("--allow-suite-change", action="store_true")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow evaluate: metrics to run their module's code (off by default)")
    g.set_defaults(func=cmd_gate)


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
        err.print("[yellow]interrupted[/]: decoded predictions are cached; run the same command again to resume")
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
