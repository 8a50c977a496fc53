"""Warehouse fixtures of the historical tests: a DuckDB file, or each backend in turn."""

from __future__ import annotations

import pytest

from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse, Warehouse, open_warehouse


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    store = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    store.ensure_schema()
    return store


@pytest.fixture(params=["duckdb", "bigquery"])
def any_warehouse(request, tmp_path) -> Warehouse:
    """Each backend: a DuckDB file, and the BigQuery emulator under a dataset prefix of its own."""
    if request.param == "duckdb":
        return request.getfixturevalue("warehouse")
    return open_warehouse(request.getfixturevalue("bigquery_env"))
