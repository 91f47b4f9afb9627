# cdcflow: the two commands of the quick start, and the steps behind them.
#   make demo   the whole pipeline on the bundled shop domain
#   make test   every test tier against the real local stack
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test install unit integration chaos check-schemas lint stack-up stack-down clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/cdcflow demo

# Contracts first: the schema check runs before anything starts, then every
# test tier in one pytest session (the local stack is brought up once).
test: install check-schemas
	$(BIN)/pytest tests/unit tests/integration tests/chaos $(PYTEST_ARGS)

unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: install
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

chaos: install
	$(BIN)/pytest tests/chaos $(PYTEST_ARGS)

# Offline: the committed .avsc files match the event models and are
# compatible with the previous commit's (SCHEMAS_AGAINST=<git ref> to change).
SCHEMAS_AGAINST ?= HEAD~1
check-schemas: install
	PATH=$(CURDIR)/$(BIN):$$PATH scripts/check-schemas $(SCHEMAS_AGAINST)

lint: install
	$(BIN)/ruff check pipeline tests benchmarks
	$(BIN)/ruff format --check pipeline tests benchmarks
	$(BIN)/mypy

stack-up: install
	$(BIN)/cdcflow stack up

stack-down: install
	$(BIN)/cdcflow stack down

clean: stack-down
	rm -rf .cdcflow
bench: install ; $(BIN)/python -m benchmarks $(BENCH_ARGS)  # figures in docs/BENCHMARKS.md; JSON in benchmarks/results/
