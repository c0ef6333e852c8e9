# labelmend — the two commands: `make run` (the app with demo data) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8501

.PHONY: run test lint install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,compare]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Start the app on the embedded SQLite store with demo data (http://127.0.0.1:$(PORT)).
run: install
	$(BIN)/labelmend demo --port $(PORT)

## Lint and run the whole test suite, PostgreSQL tests included: on LABELMEND_TEST_PG_URL if set,
## else on a throwaway cluster that scripts/with-postgres starts and removes (needs the server
## binaries: apt-get install postgresql; without them those tests skip, with a note).
test: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	HF_HUB_OFFLINE=1 scripts/with-postgres $(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .labelmend test-output
