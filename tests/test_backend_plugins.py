"""A model backend is one module plus one registry entry: the README's in-process llama.cpp backend
(docs/examples/llamacpp_backend.py) installed as a real distribution with an `sft_harness.backends`
entry point, and a suite run through it; its [[models]] keys checked at their run.toml lines."""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: `make test` builds it")

from harness.cli import main  # noqa: E402
from harness.core.config import ModelSpec  # noqa: E402
from harness.core.errors import HarnessError  # noqa: E402
from harness.engine.backends import backend_class, backend_names, register_backend  # noqa: E402
from harness.engine.backends.base import Backend  # noqa: E402
from harness.engine.models import resolve  # noqa: E402
from harness.runner import RunOptions, run  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "docs" / "examples" / "llamacpp_backend.py"


def gguf() -> str:
    resolved = resolve("smollm2-135m-instruct")
    return str(Path(resolved.source) / str(resolved.gguf_file))


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The example backend as an installed distribution: a module and a .dist-info with entry_points.txt."""
    site = tmp_path / "site"
    info = site / "sfth_llamacpp-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "sfth_llamacpp.py").write_text(EXAMPLE.read_text())
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sfth-llamacpp\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[sft_harness.backends]\nllamacpp = sfth_llamacpp:LlamaCppBackend\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("SFT_HARNESS_CACHE", str(tmp_path / "cache"))
    importlib.invalidate_caches()
    yield site
    sys.modules.pop("sfth_llamacpp", None)


def test_the_readme_shows_the_whole_backend_and_it_is_short() -> None:
    readme = (REPO / "README.md").read_text()
    block = re.search(r"### Writing a backend.*?```python\n(.*?)```", readme, re.DOTALL)
    assert block is not None, "README has no 'Writing a backend' code block"
    assert block.group(1) == EXAMPLE.read_text()
    assert len(EXAMPLE.read_text().splitlines()) < 60


def test_a_backend_from_an_entry_point_runs_a_suite(installed: Path, tmp_path: Path) -> None:
    assert "llamacpp" in backend_names() and issubclass(backend_class("llamacpp"), Backend)
    opts = RunOptions(suite="poem-sentiment", strategies="prompt:model=cpp:name=zero,prompt:k=2:model=cpp:name=shots", limit=4,
                      models={"cpp": ModelSpec(name="cpp", id=gguf(), backend="llamacpp", options={"n_ctx": 1024})},
                      out=tmp_path / "runs", leakage_check=False, device="cpu")
    run_dir = run(opts)
    results = json.loads((run_dir / "results.json").read_text())
    for name in ("zero", "shots"):
        s = results["strategies"][name]
        assert s["model"]["backend"] == "llamacpp" and s["model"]["name"] == "cpp" and s["n"] == 4
        assert s["cost"]["latency_p50_s"] is None or s["cost"]["latency_p50_s"] > 0
    lines = [json.loads(x) for x in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and all(r["error"] is None for r in lines) and any(r["output"] for r in lines)
    assert any(c["a"] == "zero" and c["b"] == "shots" for c in results["comparisons"])
    again = json.loads((run(opts) / "predictions.jsonl").read_text().splitlines()[0])  # from the prediction cache
    assert again["output"] == lines[0]["output"]


def test_a_plugin_backends_keys_are_checked_at_their_line(installed: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "run.toml"
    table = f'suite = "poem-sentiment"\n[[models]]\nname = "cpp"\nbackend = "llamacpp"\nid = "{gguf()}"\n'
    for extra, line, said in (("n_ctx = 100\n", 6, "'n_ctx' must be at least 256, got 100"),
                              ("n_cxt = 512\n", 6, "unknown key 'n_cxt' in [[models]] (did you mean 'n_ctx'?)"),
                              ("base_url = 'http://x'\n", 6, "'base_url' is for backend = \"openai\" models")):
        config.write_text(table + extra)
        assert main(["run", "--config", str(config), "--strategies", "prompt:model=cpp"]) == 2
        assert f"error: {config}:{line}: {said}" in capsys.readouterr().err
    config.write_text(table.replace(gguf(), str(tmp_path / "missing.gguf")))
    assert main(["run", "--config", str(config), "--strategies", "prompt:model=cpp", "--out", str(tmp_path / "r")]) == 2
    assert f"{config}:2: {tmp_path / 'missing.gguf'} is not a GGUF file" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_register_backend_refuses_what_is_not_a_backend() -> None:
    class NoName(Backend):
        pass

    class Transformers(Backend):
        name = "transformers"

    for cls in (NoName, Transformers, int):
        with pytest.raises(HarnessError):
            register_backend(cls)  # type: ignore[arg-type]
    with pytest.raises(HarnessError, match="backend 'trasformers' is not one of .*did you mean 'transformers'"):
        backend_class("trasformers")
