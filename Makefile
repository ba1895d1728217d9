# Two commands on a fresh machine: `make test` and `make demo`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: test demo lint typecheck unit venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS)

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/consensus-engine demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .demo
