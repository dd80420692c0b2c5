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
	$(BIN)/lint-imports

# `make test`: the fast set (every test not marked slow, well under 2 minutes on 2 cores).
# `make test ALL=1` (what .ci/run calls): every test, the slow ones too (torchrun launches, the lab, Ctrl-C).
# PYTEST_ARGS adds pytest options, e.g. make test PYTEST_ARGS="-x tests/test_train.py".
ALL ?=
PYTEST_ARGS ?=
test: install lint
	$(BIN)/python -m pytest --durations=15 $(if $(ALL),,-m "not slow") $(PYTEST_ARGS)

DEMO ?= runs/demo
demo: install
	@echo "== 1. the built-in corpus: stories from minitx's own English grammar"
	$(BIN)/minitx data grammar --bytes 2000000 --seed 0 --out $(DEMO)/stories.txt --force
	@echo "== 2. a byte-level BPE tokenizer trained on it"
	$(BIN)/minitx tokenize train $(DEMO)/stories.txt --vocab-size 1024 --out $(DEMO)/tokenizer.json --force
	$(BIN)/minitx tokenize encode --tokenizer $(DEMO)/tokenizer.json "A lovely little old red ball is in the box."
	@echo "== 3. a 4-layer transformer trained on the same stories (about 3 minutes on 2 CPU cores)"
	$(BIN)/minitx train --out $(DEMO)/run --force
	@echo "== 4. stories it writes, and how grammatical they are"
	$(BIN)/minitx generate $(DEMO)/run --num-samples 3 --seed 0
	$(BIN)/minitx eval $(DEMO)/run --grammar 200
	@echo "== 5. inside the model: what each attention head reads, what the positions encode"
	$(BIN)/minitx inspect-attention $(DEMO)/run --html $(DEMO)/attention.html
	$(BIN)/minitx inspect-positions $(DEMO)/run --png $(DEMO)/positions.png

# Offline, name the inputs: make bench BENCH_ARGS="--data FILE --nanogpt DIR" (see bench/run_all.py).
BENCH_ARGS ?=
bench: install
	$(BIN)/pip install -q -e ".[bench]"
	cd bench && ../$(BIN)/python run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
