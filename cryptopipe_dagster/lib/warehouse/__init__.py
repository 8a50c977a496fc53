"""Warehouse interface and backends: callers use `Warehouse`; the resource picks the backend."""

from cryptopipe_dagster.lib.warehouse.base import Checkpoint, MergeStats, Warehouse
from cryptopipe_dagster.lib.warehouse.duckdb import DuckDBWarehouse
from cryptopipe_dagster.lib.warehouse.tables import TABLES, TableSpec, safe_identifier, table_spec

__all__ = [
    "TABLES",
    "Checkpoint",
    "DuckDBWarehouse",
    "MergeStats",
    "TableSpec",
    "Warehouse",
    "safe_identifier",
    "table_spec",
]
