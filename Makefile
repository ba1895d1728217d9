# Two commands on a fresh machine: `make test` and `make demo`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

# uv installs the environment from uv.lock, one lock for runtime and development. Its version
# is pinned here (the bootstrap, with pip) and in pyproject's dev extra (the same, so
# `uv sync` keeps it); tests/packaging checks that the two agree.
UV_VERSION := 0.13.10
UV := $(BIN)/uv
export UV_PYTHON_DOWNLOADS := never

# A second, throwaway environment with the lowest versions pyproject.toml allows.
LOWEST := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed

.PHONY: test demo lint typecheck unit lowest lock venv tools clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(UV): | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --quiet --frozen --extra dev
	touch $(STAMP)

venv: $(STAMP)

# After changing the dependencies in pyproject.toml; `$(UV) lock --upgrade` moves every pin
# to the newest version in range.
lock: $(UV)
	$(UV) lock

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
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) tools
	$(BIN)/pytest -q -n $(PYTEST_WORKERS)

$(LOWEST_STAMP): pyproject.toml | $(STAMP)
	rm -rf $(LOWEST)
	$(UV) venv --quiet --python $(BIN)/python $(LOWEST)
	$(UV) pip install --quiet --python $(LOWEST)/bin/python --resolution lowest-direct \
		--only-binary :all: -e '.[dev]'
	touch $(LOWEST_STAMP)

# The declared floors are real: installed exactly (tests/packaging/test_installed.py checks),
# every module imports and the unit tests pass on them.
lowest: $(LOWEST_STAMP) tools
	EXPECT_LOWEST_VERSIONS=1 $(LOWEST)/bin/python -m pytest -q -n $(PYTEST_WORKERS) \
		-p no:cacheprovider tests/packaging/test_installed.py tests/unit

test: lint typecheck unit lowest

demo: $(STAMP)
	$(BIN)/consensus-engine demo

clean:
	rm -rf $(VENV) $(LOWEST) .mypy_cache .ruff_cache .pytest_cache .demo
