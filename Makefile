# ordergate: `make run` to start a gateway, `make test` to run every check. Nothing else to install.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: run test lint typecheck pytest install clean bench bench-quick wrk sim

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

## run: install, prepare this folder as the home (catalogue, profiles) and serve on $(HOST):$(PORT)
run: $(VENV)/.installed
	$(BIN)/ordergate init --home .
	@test -f Jsons/user_profile.json || $(BIN)/ordergate generate --home .
	$(BIN)/ordergate serve --home . --host $(HOST) --port $(PORT)

## test: lint, type-check and run the whole suite
test: lint typecheck pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests Scripts benchmarks
	$(BIN)/ruff format --check src tests Scripts benchmarks

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

## pytest: the suite on PYTEST_WORKERS processes (pytest-xdist; default: one per core; 0 runs it in this one)
PYTEST_WORKERS ?= auto
pytest: $(VENV)/.installed-test
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

wrk:
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

## bench: every scenario of the benchmark harness; the table goes to benchmarks/results.md
bench: $(VENV)/.installed-test wrk
	$(BIN)/python -m benchmarks

## bench-quick: the same scenarios, short and smaller (about a minute)
bench-quick: $(VENV)/.installed-test wrk
	$(BIN)/python -m benchmarks --quick

## sim: the deterministic simulation of the sequencers for SEEDS seeds per variant (CI runs 150);
##      replay one with VARIANT=local|shared SEED=N
SEEDS ?= 1000
sim: $(VENV)/.installed-test
	$(BIN)/python -m tests.sim $(if $(SEED),--seed $(SEED),--seeds $(SEEDS)) $(if $(VARIANT),--variant $(VARIANT))

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
