"""The configured warehouse (CRYPTOPIPE_WAREHOUSE): the one place that picks a backend."""

from __future__ import annotations

from cryptopipe_dagster.lib.settings import Settings
from cryptopipe_dagster.lib.warehouse.base import Warehouse
from cryptopipe_dagster.lib.warehouse.duckdb_connection import LOCK_WAIT_S


def open_warehouse(settings: Settings, *, lock_wait_s: float = LOCK_WAIT_S, ensure: bool = True) -> Warehouse:
    """DuckDB at settings.duckdb_path, or BigQuery in settings.gcp_project; schema ensured unless
    `ensure` is False. `lock_wait_s` bounds every wait for a DuckDB file another process holds."""
    if settings.warehouse == "bigquery":
        from cryptopipe_dagster.lib.warehouse.bigquery import BigQueryWarehouse  # google clients load lazily

        warehouse: Warehouse = BigQueryWarehouse.from_settings(settings)
    else:
        from cryptopipe_dagster.lib.warehouse.duckdb import DuckDBWarehouse

        warehouse = DuckDBWarehouse(settings.duckdb_path, lock_wait_s=lock_wait_s)
    if ensure:
        warehouse.ensure_schema()
    return warehouse
