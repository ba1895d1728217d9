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
# Installed packages are compiled to bytecode once: where PYTHONDONTWRITEBYTECODE is set
# (this machine, the image) every process would otherwise compile each module it imports
# (about 6 s for a worker instead of 2.5 s).
export UV_COMPILE_BYTECODE := 1

# A second, throwaway environment with the lowest versions pyproject.toml allows.
LOWEST := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed

.PHONY: test demo lint typecheck unit lowest lock venv tools web webtest clean

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

# Debian's Chromium for the web app's browser tests: Playwright drives it by its path
# (test tools cannot download browsers here).
CHROMIUM := $(shell command -v chromium 2>/dev/null)
APT_PACKAGES := $(if $(PROMTOOL),,prometheus) $(if $(CHROMIUM),,chromium)

tools:
ifneq ($(strip $(APT_PACKAGES)),)
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
		$(APT_PACKAGES) >/dev/null
endif

# The web app (web/): npm ci from package-lock.json, then a type-checked build into the
# package (consensus_engine/api/static), which the API serves at /.
WEB_DEPS := web/node_modules/.installed
WEB_BUILD := consensus_engine/api/static/index.html
WEB_SOURCES := $(shell find web -path web/node_modules -prune -o -type f -print)

$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $(WEB_DEPS)

$(WEB_BUILD): $(WEB_DEPS) $(WEB_SOURCES)
	cd web && npm run --silent build

web: $(WEB_BUILD)

webtest: $(WEB_DEPS)
	cd web && npm test --silent

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) tools web
	$(BIN)/python -m compileall -q consensus_engine brokers
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

test: lint typecheck webtest unit lowest

demo: $(STAMP) $(if $(SERVE),web)
	$(BIN)/consensus-engine demo $(if $(SERVE),--serve)

clean:
	rm -rf $(VENV) $(LOWEST) .mypy_cache .ruff_cache .pytest_cache .demo .artifacts \
		web/node_modules consensus_engine/api/static
