"""Exit 1 when the installed llama-cpp-python was compiled with llama.cpp's AMX kernels, 0 otherwise.

`-march=native` compiles them in on Intel Sapphire Rapids and later, and there they crash the process
in its first matrix product (ggml-org/llama.cpp#20824; the test server answered nothing and an
in-process model took pytest down). `make` builds llama.cpp without them, and runs this afterwards
because pip's wheel cache is keyed by the source package alone: a wheel an older build cached keeps
the kernels until it is removed from the cache and built again."""

from __future__ import annotations

import ctypes
import importlib.util
import sys
from pathlib import Path


def has_amx() -> bool:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        return False
    libs = sorted((Path(spec.origin).parent / "lib").glob("*ggml-cpu*"))
    for lib in libs:
        try:
            return bool(ctypes.CDLL(str(lib)).ggml_cpu_has_amx_int8())
        except (OSError, AttributeError):
            continue
    return False


if __name__ == "__main__":
    if has_amx():
        print("llama-cpp-python holds llama.cpp's AMX kernels (they crash on this CPU): rebuilding without them",
              file=sys.stderr)
        sys.exit(1)
