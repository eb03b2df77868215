# MI Roadmap in two commands on a fresh machine:
#   make run    execute the whole curriculum on the embedded model zoo (build/ gets the copies)
#   make test   the test suite: unit tests, every notebook under nbval, the hub code path
# Both create (or reuse) the virtual environment .venv, installing the CPU build of torch first
# (a plain `pip install torch` can pull a multi-GB CUDA build), then the pinned requirements
# and the package. For a GPU, install torch your own way into .venv first, or set TORCH_INDEX.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
BIN := $(VENV)/bin
READY := $(VENV)/.mi-roadmap-ready

.PHONY: run test test-portable bench bench-small saelens-env env clean

run: $(READY)
	$(BIN)/python -m mi_helpers run

test: $(READY)
	$(BIN)/python -m pytest

# The notebooks again, under two other CPU kernel paths and thread counts (tests default to one
# thread, see conftest.py): committed outputs
# must not depend on the machine that made them (CI runs this after `make test`).
test-portable: $(READY)
	ATEN_CPU_CAPABILITY=avx2 OMP_NUM_THREADS=1 $(BIN)/python -m pytest notebooks -q
	ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=2 $(BIN)/python -m pytest notebooks -q

# The performance suite (benchmarks/__main__.py): ours against each reference, taking turns.
# bench-small: CI's sizes, prints the table (a few minutes on 2 cores); bench: the full run,
# which writes benchmarks/results.md and the README's Performance table. No timing is asserted.
bench-small: $(READY)
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks --small

bench: $(READY)
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks

# SAELens pins transformer-lens<4, so its trainer (compared by `make bench`) gets its own venv.
saelens-env:
	test -x .venv-saelens/bin/python || $(PYTHON) -m venv .venv-saelens
	.venv-saelens/bin/python -m pip install -q --index-url $(TORCH_INDEX) "$(TORCH)" || \
		.venv-saelens/bin/python -m pip install -q "$(TORCH)"
	.venv-saelens/bin/python -m pip install -q sae-lens

env: $(READY)

$(READY): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || \
		$(BIN)/python -m pip install -q --timeout 15 --retries 0 --index-url $(TORCH_INDEX) "$(TORCH)" || \
		$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(READY)

clean:
	rm -rf $(VENV) .venv-saelens build
