# cryptopipe — `make help` lists the targets. Everything runs on the local default (DuckDB,
# SQLite Dagster instance, exchange simulator); CRYPTOPIPE_ENV=prod switches resources.
SHELL := /bin/bash
VENV ?= .venv
BQ_VENV ?= .venv-bqemulator
BIN := $(VENV)/bin
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export CRYPTOPIPE_HOME ?= $(CURDIR)/.cryptopipe
export DAGSTER_HOME ?= $(CRYPTOPIPE_HOME)/dagster
PYTEST_ARGS ?=
BENCH_ARGS ?=
CHAOS_ARGS ?=
SEED ?=
MARKETS ?= 3
WAREHOUSE ?=

.DEFAULT_GOAL := help
.PHONY: help install demo test bench chaos dev live sim monitor docs lint format clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

install: $(VENV)/.installed $(BQ_VENV)/.installed promtool ## Create .venv (locked dependencies), .venv-bqemulator (the BigQuery emulator, pinned); promtool.

$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --extra dev --python python3
	@touch $@

# The BigQuery emulator needs pandas 3 and DuckDB 1.5.5; the pipeline pins pandas<3: its own venv.
$(BQ_VENV)/.installed: .ci/bqemulator-requirements.txt | $(VENV)/.installed
	$(UV) venv --quiet --allow-existing $(BQ_VENV) --python python3
	$(UV) pip install --quiet --python $(BQ_VENV)/bin/python -r .ci/bqemulator-requirements.txt
	@touch $@

# promtool checks and unit-tests monitoring/alerts.yml; `make monitor` runs Prometheus. Both come
# with Debian's prometheus package, installed here where apt-get can (root); else say how.
promtool:
	@command -v promtool >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; }; }; } || \
	  echo "promtool not found: install Prometheus (Debian/Ubuntu: apt-get install prometheus) for the alert-rule tests and make monitor"

demo: install ## Backfill + dbt marts + bounded live run (WebSocket -> Pub/Sub -> sensor under the daemon) into DuckDB; WAREHOUSE=bigquery: a BigQuery emulator.
	$(if $(WAREHOUSE),CRYPTOPIPE_WAREHOUSE=$(WAREHOUSE) )$(BIN)/cryptopipe demo

test: install ## Run the whole test suite.
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install ## Benchmarks vs baselines (per-row txn, dlt): benchmarks/results.json, results.md, charts/.
	$(BIN)/cryptopipe bench $(BENCH_ARGS)

chaos: install ## Fault scenarios on the live path vs ground truth -> chaos/report.json (SEED=n reproduces a run).
	$(BIN)/cryptopipe chaos $(if $(SEED),--seed $(SEED)) $(CHAOS_ARGS)

dev: install ## Dagster UI (dagster dev) on the local instance, with the exchange simulator.
	PUBSUB_EMULATOR_HOST=$${PUBSUB_EMULATOR_HOST:-127.0.0.1:8085} $(BIN)/cryptopipe dev

live: install ## Live path until Ctrl-C: simulator + Pub/Sub emulator (:8085) + collector (MARKETS=100 for a load).
	$(BIN)/cryptopipe live --markets $(MARKETS)

sim: install ## Run the exchange simulator alone on 127.0.0.1:8765.
	$(BIN)/cryptopipe sim

monitor: install ## Prometheus on 127.0.0.1:9090 scraping the local collector (:9108) with the alert rules (Ctrl-C stops).
	mkdir -p $(CRYPTOPIPE_HOME)/prometheus
	prometheus --config.file=monitoring/prometheus.yml --storage.tsdb.path=$(CRYPTOPIPE_HOME)/prometheus \
	  --web.listen-address=127.0.0.1:9090

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
