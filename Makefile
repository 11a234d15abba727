# A newcomer's two commands: `make run` and `make test`. Both bootstrap .venv themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint bench migrate check clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(STAMP)

run: $(STAMP)
	$(BIN)/inbox-bot serve --demo

migrate: $(STAMP)
	$(BIN)/inbox-bot migrate

check: $(STAMP)
	$(BIN)/inbox-bot check

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot connectors

bench: $(TEST_STAMP)
	$(BIN)/python bench/bench_matching.py
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_memory.py
	$(BIN)/python bench/bench_workers.py

clean:
	rm -rf $(VENV) data .pytest_cache
