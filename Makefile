# Two commands: `make run` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RW_DATA_DIR ?= ./var
HOST ?= 127.0.0.1
PORT ?= 8000
export RW_DATA_DIR

.PHONY: run test install test-deps openapi bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the project's metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/reward-wallet serve --host $(HOST) --port $(PORT) --demo

# Three passes: everything on SQLite and one Valkey; the wallet and games on a Valkey
# cluster; everything that touches SQL on Postgres. One after the other: a pass keeps this
# 2-core machine busy (its servers beside pytest), and two side by side took longer.
test: $(VENV)/.installed-test
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q
	RW_TEST_REDIS=cluster $(BIN)/python -m pytest -q -p no:cacheprovider tests/wallet tests/games
	RW_TEST_DB=postgres $(BIN)/python -m pytest -q -p no:cacheprovider -m sql

openapi: $(VENV)/.installed
	$(BIN)/reward-wallet openapi > openapi.yaml

bench: $(VENV)/.installed-test
	$(BIN)/python bench/wallet.py
	$(BIN)/python bench/earning.py
	$(BIN)/python bench/fulfillment.py
	$(BIN)/python bench/games.py
	$(BIN)/python bench/sweepstakes.py
	$(BIN)/python bench/openloop.py --calibrate
	$(BIN)/python bench/load.py --workers 1 2
	$(BIN)/python bench/load.py --mode search --workers 1 2
	$(BIN)/python bench/load.py --mode storm
	$(BIN)/python bench/profile.py

clean:
	rm -rf $(VENV) var .pytest_cache
