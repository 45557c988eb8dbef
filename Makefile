# Two commands on a fresh clone:  `make demo`  and  `make test`.
# Both create (once) and reuse a virtual environment in .venv.
#
# torch: the CPU build is installed first, so that the `torch>=2.4`
# requirement of the package is already met and pip never fetches a
# multi-GB CUDA build. On a machine whose pip does not find the local
# `+cpu` wheel, the PyTorch CPU index is tried instead.
# The ray extra (sweeps on a Ray cluster) is installed too, so `make test` runs its tests;
# it needs no torch of its own and pulls nothing large besides ray (~250 MB).
# GPU users: `make TORCH="torch==2.13.0" TORCH_INDEX=https://download.pytorch.org/whl/cu128 venv`
PYTHON ?= python3.11
VENV ?= .venv
TORCH ?= torch==2.13.0+cpu
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.gradvet-installed

.PHONY: venv demo test bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || \
	  $(BIN)/python -m pip install --quiet "$(TORCH)" || \
	  $(BIN)/python -m pip install --quiet "$(TORCH)" --index-url $(TORCH_INDEX)
	$(BIN)/python -m pip install --quiet -e ".[test,ray]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gradvet demo

# lint (ruff), the import-layer contract (lint-imports, [tool.importlinter] in pyproject.toml),
# the type check of the public API (mypy, [tool.mypy]), then every test (the slow ones too)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(STAMP)
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) gradvet-report .pytest_cache .mypy_cache
