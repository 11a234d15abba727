# A newcomer's two commands: `make run` and `make test`. Both bootstrap .venv themselves.
# `make run PORT=8081 HOST=0.0.0.0` serves elsewhere than config.toml's [server] host and port.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# The exact versions CI tested (`make lock` rewrites it from the current .venv).
CONSTRAINTS := constraints.txt
PIP_INSTALL := $(BIN)/python -m pip install --quiet -c $(CONSTRAINTS)
HOST ?=
PORT ?=
SERVE_FLAGS := $(if $(strip $(HOST)),--host $(strip $(HOST))) $(if $(strip $(PORT)),--port $(strip $(PORT)))

.PHONY: run test lint bench migrate check clean lock messages screenshots fuzz

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP_INSTALL) -e .
	@touch $@

$(TEST_STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP_INSTALL) -e '.[test]'
	@touch $@ $(STAMP)

run: $(STAMP)
	$(BIN)/inbox-bot $(strip serve --demo $(SERVE_FLAGS))

migrate: $(STAMP)
	$(BIN)/inbox-bot migrate

check: $(STAMP)
	$(BIN)/inbox-bot check

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

# CI replays a fixed set of fuzz examples; this explores: fresh random inputs, four to five times as many,
# Hypothesis' health checks on (found failures are kept in .hypothesis/ and replayed first next time)
fuzz: $(TEST_STAMP)
	env -u CI INBOX_FUZZ=explore INBOX_FUZZ_EXAMPLES=$${INBOX_FUZZ_EXAMPLES:-300} \
	  INBOX_SCHEMATHESIS_EXAMPLES=$${INBOX_SCHEMATHESIS_EXAMPLES:-100} $(BIN)/python -m pytest tests/test_fuzz.py

# extract new page and chat wording into the French catalogue (then translate what it added)
messages: $(TEST_STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k plural:2,3 --no-location --omit-header -o .messages.pot .
	$(BIN)/pybabel update -i .messages.pot -d bot/locale -D messages -l fr --no-fuzzy-matching --ignore-obsolete
	@rm -f .messages.pot

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot connectors

bench: $(TEST_STAMP)
	$(BIN)/python bench/bench_matching.py
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_rule_change.py
	$(BIN)/python bench/bench_startup.py --conversations 10000
	$(BIN)/python bench/bench_memory.py
	$(BIN)/python bench/bench_workers.py
	$(BIN)/python bench/bench_queue.py --conversations 10000
	$(BIN)/python bench/bench_live.py
	$(BIN)/python bench/bench_preview.py --messages 100000
	$(BIN)/python bench/bench_propagation.py
	$(BIN)/python bench/bench_web.py --conversations 10000

# README's pictures of the web inbox: the real server on a temporary store with demo data, shot with
# the Chromium the browser tests use (apt-get install -y chromium), into docs/screenshots/.
screenshots: $(TEST_STAMP)
	$(BIN)/python scripts/screenshots.py

# After changing dependencies in pyproject.toml: install them, run `make test`, then `make lock`.
lock: $(TEST_STAMP)
	@{ echo "# Exact versions of every dependency (test extras included), installed with"; \
	   echo "# \`pip install -c constraints.txt -e '.[test]'\` by make and CI. Regenerate: \`make lock\`."; \
	   $(BIN)/python -m pip freeze --exclude-editable; } > $(CONSTRAINTS).tmp
	@mv $(CONSTRAINTS).tmp $(CONSTRAINTS)

# Build and tool caches only: data/ holds the default store (the user's conversations), never removed here.
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
