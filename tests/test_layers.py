"""The import graph follows the layers of DESIGN.md: each layer imports only from the ones below.

    cli                      harness.cli, harness.__main__
    gate                     harness.gate.*         the regression verdict (reads run records, may use report views)
    report                   harness.report.*       read run records; never decode, never score
    runner                   harness.runner
    strategies               strategies.*           plugins
    engine                   harness.engine.*       models, decoding, training, retrieval
    scoring                  harness.scoring.*      metrics, statistics
    core                     harness.core.*         types, suites, config, cache, run record

Every import counts, also the ones inside functions (lazy imports are still dependencies).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = [  # lowest first
    ("core", ("harness.core",)),
    ("scoring", ("harness.scoring",)),
    ("engine", ("harness.engine",)),
    ("strategies", ("strategies",)),
    ("runner", ("harness.runner",)),
    ("report", ("harness.report",)),
    ("gate", ("harness.gate",)),
    ("cli", ("harness.cli", "harness.__main__")),
]


def layer_of(module: str) -> int | None:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _type_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside `if TYPE_CHECKING:` blocks (annotations only, never run)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def imports_of(path: Path, runtime_only: bool = False) -> set[str]:
    """Absolute names of every module the file imports (relative imports resolved); with
    `runtime_only`, those under `if TYPE_CHECKING:` are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    skip = _type_only(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)] if node.level > 1 else parent
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


SOURCES = sorted([*(REPO / "harness").rglob("*.py"), *(REPO / "strategies").rglob("*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_imports_a_layer_above_its_own(path: Path) -> None:
    own = layer_of(module_name(path))
    if own is None:  # harness/__init__.py: the version string only
        assert module_name(path) == "harness"
        return
    above = sorted(
        name for name in imports_of(path)
        if (layer := layer_of(name)) is not None and layer > own
    )
    assert not above, f"{module_name(path)} ({LAYERS[own][0]}) imports from above: {above}"


def test_no_import_cycles() -> None:
    """No module reaches itself through imports that run (lazy ones inside functions included;
    `if TYPE_CHECKING:` ones are annotations and never run): a cycle means two modules are one
    unit cut in the wrong place, and a lazy import that hides one breaks when the order changes."""
    modules = {module_name(p): p for p in SOURCES}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imports_of(path, runtime_only=True):
            # `from pkg import name` names either a module or an attribute: keep the module it is.
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(imported + "."):  # a package's own parents
                targets.add(imported)
        graph[name] = targets
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_every_module_sits_in_a_layer() -> None:
    homeless = [module_name(p) for p in SOURCES if layer_of(module_name(p)) is None and module_name(p) != "harness"]
    assert not homeless, f"modules outside the layers of DESIGN.md: {homeless}"


def test_modules_stay_small() -> None:
    """~400 lines a module (DESIGN: small modules a newcomer can read)."""
    big = {module_name(p): n for p in SOURCES if (n := len(p.read_text().splitlines())) > 420}
    assert not big, f"split these modules: {big}"


SCORERS = ("harness.scoring.metrics", "harness.scoring.records", "harness.scoring.extract")


READERS = sorted([*(REPO / "harness" / "report").rglob("*.py"), *(REPO / "harness" / "gate").rglob("*.py")])


@pytest.mark.parametrize("path", READERS, ids=lambda p: str(p.relative_to(REPO)))
def test_readers_of_run_records_import_no_scorer(path: Path) -> None:
    """report, gate, history read the scores stored with each prediction (harness.core.runrecord);
    they may aggregate stored rows (the registry), never import what computes them from answers.
    (tests/test_runrecord.py checks the behaviour: reports and the gate work with scoring broken.)"""
    scoring = sorted(name for name in imports_of(path) if name.startswith(SCORERS))
    assert not scoring, f"{module_name(path)} imports what scores answers: {scoring}"


def test_functions_stay_short() -> None:
    """~60 lines a function; a longer one says why in a `# long:` comment inside it."""
    long = []
    for path in SOURCES:
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                body = "\n".join(lines[node.lineno - 1 : node.end_lineno])
                if size > 60 and "# long:" not in body:
                    long.append(f"{module_name(path)}.{node.name} ({size} lines)")
    assert not long, f"split these functions (or say why in a '# long:' comment): {long}"


def test_no_code_outside_the_backends_asks_which_backend_it_has() -> None:
    """The Backend interface is the seam (DESIGN.md): outside harness/engine/backends/ no module
    imports a backend class or tests a backend's class or name; the registry builds them."""
    backends = REPO / "harness" / "engine" / "backends"
    concrete = ("harness.engine.backends.transformers", "harness.engine.backends.openai", "harness.engine.backends.vllm")
    found = []
    for path in SOURCES:
        if path.is_relative_to(backends):
            continue
        text = path.read_text()
        if any(name.startswith(concrete) for name in imports_of(path)):
            found.append(f"{module_name(path)} imports a backend class")
        if re.search(r"isinstance\([^)]*Backend\b", text) or re.search(r"\.backend\s*[!=]=\s*['\"]", text):
            found.append(f"{module_name(path)} tests which backend it has")
    assert not found, found
