# cryptopipe — `make help` lists the targets. Everything runs on the local default (DuckDB,
# SQLite Dagster instance, exchange simulator); CRYPTOPIPE_ENV=prod switches resources.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export CRYPTOPIPE_HOME ?= $(CURDIR)/.cryptopipe
export DAGSTER_HOME ?= $(CRYPTOPIPE_HOME)/dagster
PYTEST_ARGS ?=
BENCH_ARGS ?=
MARKETS ?= 3

.DEFAULT_GOAL := help
.PHONY: help install demo test bench dev live sim docs lint format clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## Create .venv and install the locked dependencies (uv; installed if missing).

$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --extra dev --python python3
	@touch $@

demo: install ## Backfill + dbt marts + a bounded live run (WebSocket -> Pub/Sub -> sensor under the Dagster daemon -> DuckDB); summary.
	$(BIN)/cryptopipe demo

test: install ## Run the whole test suite.
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install ## Benchmarks vs baselines (per-row txn, dlt): benchmarks/results.json, results.md, charts/.
	$(BIN)/cryptopipe bench $(BENCH_ARGS)

dev: install ## Dagster UI (dagster dev) on the local instance, with the exchange simulator.
	PUBSUB_EMULATOR_HOST=$${PUBSUB_EMULATOR_HOST:-127.0.0.1:8085} $(BIN)/cryptopipe dev

live: install ## Live path until Ctrl-C: simulator + Pub/Sub emulator (:8085) + collector (MARKETS=100 for a load).
	$(BIN)/cryptopipe live --markets $(MARKETS)

sim: install ## Run the exchange simulator alone on 127.0.0.1:8765.
	$(BIN)/cryptopipe sim

docs: install ## dbt docs (model docs + lineage) on http://127.0.0.1:8580.
	cd dbt_project && CRYPTOPIPE_DUCKDB_PATH=$(CRYPTOPIPE_HOME)/warehouse.duckdb ../$(BIN)/dbt docs generate --profiles-dir . --target local
	cd dbt_project && CRYPTOPIPE_DUCKDB_PATH=$(CRYPTOPIPE_HOME)/warehouse.duckdb ../$(BIN)/dbt docs serve --profiles-dir . --port 8580 --host 127.0.0.1

lint: install ## ruff lint and format check.
	$(BIN)/ruff check cryptopipe_dagster tests
	$(BIN)/ruff format --check cryptopipe_dagster tests

format: install ## Apply ruff's formatting and safe fixes.
	$(BIN)/ruff check --fix cryptopipe_dagster tests
	$(BIN)/ruff format cryptopipe_dagster tests

clean: ## Remove the local warehouse and Dagster instance (.cryptopipe/); keeps .venv.
	rm -rf $(CRYPTOPIPE_HOME)
