# Two commands: `make run` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RW_DATA_DIR ?= ./var
HOST ?= 127.0.0.1
PORT ?= 8000
export RW_DATA_DIR

.PHONY: run test install test-deps browser openapi bench clean

# uv (from PyPI, into the venv) installs the project: it fetches and unpacks in parallel, about
# 18 s where pip took about 100 s of a clean CI run. pip stays the fallback. --compile-bytecode
# as pip does: where PYTHONDONTWRITEBYTECODE is set, nothing would write the .pyc files later
# and every process would compile every module it imports (the SQLite pass took 950 s, not 760).
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv || $(BIN)/python -m pip install --quiet --upgrade pip
INSTALL = if [ -x $(BIN)/uv ]; then $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python $(1); \
	else $(BIN)/python -m pip install --quiet $(1); fi

# Reinstall only when the project's metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(call INSTALL,-e .)
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(call INSTALL,-e '.[test]')
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/reward-wallet serve --host $(HOST) --port $(PORT) --demo

# Three passes: everything on SQLite and one Valkey; the wallet and games on a Valkey
# cluster; everything that touches SQL on Postgres. One after the other, each on two xdist
# workers (a file's tests stay together on one): one pytest kept this 2-core machine about
# half idle (it waits on its servers, subprocesses and browser), two keep it about 90% busy.
# Two whole passes side by side took longer: their servers and browsers fought for the cores.
XDIST = -n 2 --dist loadfile
test: $(VENV)/.installed-test browser
	$(BIN)/lint-imports
	@# Bytecode for the project's own modules too: with PYTHONDONTWRITEBYTECODE set (as on CI),
	@# every process the tests start (serve, its workers, the CLI) would compile them again.
	$(BIN)/python -m compileall -q -j 0 api kernel wallet programs games catalog fulfillment console tests > /dev/null
	$(BIN)/python -m pytest -q $(XDIST) --durations=15
	RW_TEST_REDIS=cluster $(BIN)/python -m pytest -q -p no:cacheprovider $(XDIST) tests/wallet tests/games
	RW_TEST_DB=postgres $(BIN)/python -m pytest -q -p no:cacheprovider $(XDIST) -m "sql and not redis_bound"

# Debian packages `make test` uses, installed with apt when missing (the machines run as root),
# never a download of our own: chromium for the browser tests (tests/console), and
# libjemalloc2, the malloc the embedded Valkey preloads when the system has it (api/embedded.py,
# RW_VALKEY_ALLOCATOR). In the background: the SQLite pass starts meanwhile and its first
# browser test waits for the install to finish; a Valkey started before it runs on libc's malloc.
browser: | $(BIN)/python
	@missing=""; [ -x /usr/bin/chromium ] || missing="chromium"; \
	$(BIN)/python -c "import ctypes.util, sys; sys.exit(not ctypes.util.find_library('jemalloc'))" \
		|| missing="$$missing libjemalloc2"; \
	if [ -n "$$missing" ] && [ ! -e $(VENV)/.chromium-installing ]; then \
		set -- $$missing; echo "Installing Debian's $$* in the background (log: $(VENV)/chromium-install.log)"; \
		touch $(VENV)/.chromium-installing; \
		( (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) \
			> $(VENV)/chromium-install.log 2>&1; rm -f $(VENV)/.chromium-installing ) & \
	fi

openapi: $(VENV)/.installed
	$(BIN)/reward-wallet openapi > openapi.yaml

bench: $(VENV)/.installed-test
	$(BIN)/python bench/wallet.py
	$(BIN)/python bench/earning.py
	$(BIN)/python bench/fulfillment.py
	$(BIN)/python bench/games.py
	$(BIN)/python bench/redemptions.py
	$(BIN)/python bench/sweepstakes.py
	$(BIN)/python bench/overview.py
	$(BIN)/python bench/openloop.py --calibrate
	$(BIN)/python bench/load.py --workers 1 2
	$(BIN)/python bench/load.py --mode search --workers 1 2
	$(BIN)/python bench/load.py --mode storm
	$(BIN)/python bench/profile.py

clean:
	rm -rf $(VENV) var .pytest_cache
