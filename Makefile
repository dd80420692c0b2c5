# minitx — `make demo` to see it work, `make test` to check it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# Where the CPU-only build of torch lives for machines without an NVIDIA GPU.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install test lint demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip >/dev/null 2>&1 || true
	@# torch first: on a machine without CUDA take the small CPU build, not the multi-GB CUDA one.
	@if $(BIN)/python -c "import torch" >/dev/null 2>&1; then \
	  echo "torch already installed"; \
	elif command -v nvidia-smi >/dev/null 2>&1 || [ "$$(uname -s)" = Darwin ]; then \
	  $(BIN)/pip install -q "torch>=2.2"; \
	else \
	  $(BIN)/pip install -q "torch==$(TORCH_VERSION)+cpu" 2>/dev/null \
	  || $(BIN)/pip install -q "torch==$(TORCH_VERSION)" --index-url $(TORCH_CPU_INDEX) \
	  || $(BIN)/pip install -q "torch==$(TORCH_VERSION)"; \
	fi
	$(BIN)/pip install -q -e ".[dev,plot]"
	@touch $@

lint: install
	$(BIN)/ruff check src tests bench

test: install lint
	$(BIN)/python -m pytest

demo: install
	$(BIN)/minitx demo

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
