# Two commands on a fresh machine: `make test` and `make demo`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: test demo lint typecheck unit venv tools clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# promtool and the Prometheus server for the alert and dashboard tests (Debian package;
# its daemon is not started).
PROMTOOL := $(shell command -v promtool 2>/dev/null)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

tools:
ifeq ($(PROMTOOL),)
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null
endif

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) tools
	$(BIN)/pytest -q -n $(PYTEST_WORKERS)

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/consensus-engine demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .demo
