"""Warehouse interface and backends: callers use `Warehouse` (from `open_warehouse`); only modules
in this package know DuckDB or BigQuery."""

from cryptopipe_dagster.lib.warehouse.base import Checkpoint, MergeStats, Warehouse
from cryptopipe_dagster.lib.warehouse.duckdb import DuckDBWarehouse
from cryptopipe_dagster.lib.warehouse.factory import open_warehouse
from cryptopipe_dagster.lib.warehouse.landing import LandingArea
from cryptopipe_dagster.lib.warehouse.tables import TABLES, TableSpec, safe_identifier, table_spec

__all__ = [
    "TABLES",
    "Checkpoint",
    "DuckDBWarehouse",
    "LandingArea",
    "MergeStats",
    "TableSpec",
    "Warehouse",
    "open_warehouse",
    "safe_identifier",
    "table_spec",
]
