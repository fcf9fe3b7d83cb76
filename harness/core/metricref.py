"""How a suite names a metric that is not a registered one: `evaluate:NAME_OR_PATH[#KEY]`, a Hugging
Face `evaluate` module (harness.scoring.hf_evaluate). The one parser of that syntax: the suite
checks (harness.core.suites) and the metric registry (harness.scoring.registry) both use it.
"""

from __future__ import annotations

EVALUATE_PREFIX = "evaluate:"


def is_evaluate(name: str) -> bool:
    return name.startswith(EVALUATE_PREFIX)


def split_evaluate_metric(name: str) -> tuple[str, str | None]:
    """`evaluate:NAME_OR_PATH#KEY` -> (NAME_OR_PATH, KEY or None)."""
    target, hash_, key = name.removeprefix(EVALUATE_PREFIX).partition("#")
    return target, (key if hash_ else None)


def is_local_metric(target: str) -> bool:
    """A metric script folder of the suite rather than a module on the Hugging Face Hub."""
    return target.startswith(("./", "../", "/"))


def form_problem(name: str, shown: str | None = None) -> str | None:
    """What is wrong with the form of an `evaluate:` name (no module, an empty #KEY), or None."""
    target, key = split_evaluate_metric(name)
    shown = shown or name
    if not target.strip():
        return (f"metric '{shown}': write {EVALUATE_PREFIX} followed by a module name or a folder of the suite, "
                f"like {EVALUATE_PREFIX}meteor or {EVALUATE_PREFIX}./metrics/my_metric")
    if key is not None and not key.strip():
        return f"metric '{shown}': '#' must be followed by the key of the value to report, like {EVALUATE_PREFIX}rouge#rougeL"
    return None
