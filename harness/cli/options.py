"""`run` options: flags, then the --config file (each value's run.toml:LINE kept for errors), into RunOptions."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.core.config import RunConfig, load_config
from harness.core.errors import HarnessError
from harness.core.types import AnswerMode


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


def load_run_config(path: str | Path) -> RunConfig:
    """A run.toml read and checked: its keys (harness.core.config) and its [[models]] tables by
    their backends (harness.engine.backends, plugins included), every error at its line."""
    from harness.engine.backends import check_model_tables

    config = load_config(path)
    check_model_tables(config)
    return config


def _run_options(args: argparse.Namespace) -> Any:
    from harness.runner import RunOptions

    config = load_run_config(args.config) if getattr(args, "config", None) else None
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
    for i, table in enumerate(tables):  # built once, by the run's plan; here only where each key is
        assert config is not None
        kind, name = table.pop("kind"), table.pop("name", None)
        strategy_params.append((kind, name, table))
        sources[f"strategies[{i}]"] = sources[f"strategy {name or kind}"] = config.where(entry=i)
        sources.update({f"strategies[{i}].{key}": config.where(key, entry=i) for key in ("kind", *table)})
        sources[f"strategy {name or kind} model"] = config.where("model", entry=i)  # or the header's line
    if not tables and spec is None:
        spec = conf.get("strategies", "prompt")
    models = config.model_specs() if config else {}  # [[models]]: what `model=NAME` picks
    sources.update({f"model {name}": config.where_model(None, i) for i, name in enumerate(models)} if config else {})
    judges = config.judge_specs() if config else []
    if config:
        sources.update({f"judge {j.name}": config.where(None, entry=i, table="judges") for i, j in enumerate(judges)})
        sources.update({f"judge {j.name} model": config.where("model", entry=i, table="judges")
                        for i, j in enumerate(judges)})
    human = pick("human", None)
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
        **_control_options(args, conf),
        strategy_params=strategy_params,
        models=models,
        answer=AnswerMode(pick("answer", "free"), pick("choice_norm", "sum"),
                          bool(getattr(args, "calibrate", False) or conf.get("calibrate", False))),
        judges=tuple(judges),
        judge_model=pick("judge_model", None),
        human=Path(human) if human else None,
    )


def _leakage_options(args: argparse.Namespace, conf: dict[str, Any]) -> dict[str, Any]:
    """The leakage options of `run`: a flag wins over the config file's key."""
    threshold = args.leakage_threshold if args.leakage_threshold is not None else conf.get("leakage_threshold", 0.95)
    return {"leakage_check": not args.no_leakage_check and bool(conf.get("leakage_check", True)),
            "leakage_threshold": float(threshold),
            "fail_on_leakage": bool(args.fail_on_leakage or conf.get("fail_on_leakage", False))}


def _control_options(args: argparse.Namespace, conf: dict[str, Any]) -> dict[str, Any]:
    """--control SUITE[,SUITE] (or `control = "a,b"` / a list in --config) and --control-limit."""
    given = getattr(args, "control", None)
    names = given if given is not None else conf.get("control", [])
    if isinstance(names, str):
        names = names.split(",")
    limit = getattr(args, "control_limit", None)
    return {"control": tuple(n.strip() for n in names if n.strip()),
            "control_limit": int(limit if limit is not None else conf.get("control_limit", 200))}
