# Two commands for a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_STORES ?= 5000
PYTEST_ARGS ?=

.PHONY: run test check serve seed migrate install system-deps-run system-deps-test postgres bench bench-nearby clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

system-deps-run:
	scripts/install-system-deps.sh run

system-deps-test:
	scripts/install-system-deps.sh test

postgres:
	scripts/ensure-postgres.sh

migrate: $(STAMP) system-deps-run
	$(BIN)/tianfu db upgrade

seed: migrate
	$(BIN)/tianfu seed demo --stores $(DEMO_STORES)

# Creates .venv, installs, writes a development .env (only if missing), migrates the SQLite
# database under var/, seeds the Chengdu demo and serves on http://127.0.0.1:8000.
run: $(STAMP) system-deps-run
	$(BIN)/tianfu dev-env
	$(BIN)/tianfu db upgrade
	$(BIN)/tianfu seed demo --stores $(DEMO_STORES)
	$(BIN)/tianfu serve --host $(HOST) --port $(PORT)

# The whole suite on both backends (SQLite + SpatiaLite and PostgreSQL + PostGIS), in two
# processes; benches run their quick form.
test: $(STAMP) system-deps-test postgres
	$(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# No cache: ruff decides first- vs third-party imports by what exists on disk, and a cached
# verdict from before a module existed can hide an import-order error that CI then finds.
check: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .
	$(BIN)/mypy

bench: $(STAMP) system-deps-test postgres
	for bench in bench/bench_*.py; do $(BIN)/python $$bench --quick || exit 1; done
	$(BIN)/python bench/nearby.py --quick

# Nearest-store index against cKDTree and PostGIS on 100k and 1M stores (a few minutes).
bench-nearby: $(STAMP) postgres
	$(BIN)/python bench/nearby.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
