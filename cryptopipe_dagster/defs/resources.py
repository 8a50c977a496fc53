"""Resources chosen by environment (CRYPTOPIPE_ENV=local|prod): the only thing that differs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ccxt
import dagster as dg
from dagster_gcp import BigQueryResource
from google.cloud import bigquery

from cryptopipe_dagster.lib.exchanges.clients import RetryPolicy, create_exchange
from cryptopipe_dagster.lib.markets_config import MarketsConfig, load_markets_config
from cryptopipe_dagster.lib.settings import Settings, load_settings
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse, Warehouse
from cryptopipe_dagster.lib.warehouse.bigquery import BigQueryWarehouse
from cryptopipe_dagster.lib.warehouse.bigquery_client import emulator_client
from cryptopipe_dagster.lib.warehouse.duckdb_connection import LOCK_WAIT_S

# Asset kinds name the configured warehouse, so the UI shows where the tables live.
WAREHOUSE_KIND = load_settings().warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse (CRYPTOPIPE_WAREHOUSE=duckdb, the local default)."""

    backend: str = "duckdb"
    duckdb_path: str = ""

    def get_warehouse(self, lock_wait_s: float = LOCK_WAIT_S) -> Warehouse:
        """The warehouse, schema ensured; `lock_wait_s` bounds every wait for a DuckDB file
        another process holds (WarehouseBusy after it)."""
        path = self.duckdb_path or str(load_settings().duckdb_path)
        warehouse = DuckDBWarehouse(path, lock_wait_s=lock_wait_s)
        warehouse.ensure_schema()
        return warehouse


class BigQueryWarehouseResource(BigQueryResource):
    """The BigQuery warehouse (CRYPTOPIPE_WAREHOUSE=bigquery): dagster-gcp's BigQueryResource
    (project, location, credentials) plus the dataset prefix, and an endpoint for an emulator,
    which dagster-gcp's client cannot point at."""

    dataset_prefix: str = ""
    endpoint: str = ""

    @contextmanager
    def get_client(self) -> Iterator[bigquery.Client]:
        if not self.endpoint:
            with super().get_client() as client:
                yield client
            return
        yield emulator_client(self.endpoint, self.project, self.location)

    def get_warehouse(self, lock_wait_s: float = LOCK_WAIT_S) -> Warehouse:
        """The warehouse, schema ensured (lock_wait_s: DuckDB's; BigQuery has no file lock)."""
        with self.get_client() as client:
            warehouse = BigQueryWarehouse(
                client, project=self.project, prefix=self.dataset_prefix, location=self.location or "US"
            )
        warehouse.ensure_schema()
        return warehouse


def warehouse_resource(settings: Settings) -> dg.ConfigurableResource:
    """The resource of the configured warehouse (CRYPTOPIPE_WAREHOUSE)."""
    if settings.warehouse == "bigquery":
        return BigQueryWarehouseResource(
            project=settings.gcp_project,
            location=settings.bq_location,
            dataset_prefix=settings.bq_dataset_prefix,
            endpoint=settings.bigquery_endpoint or "",
        )
    return WarehouseResource(backend="duckdb", duckdb_path=str(settings.duckdb_path))


class ExchangeResource(dg.ConfigurableResource):
    """ccxt clients for the configured exchanges.

    CRYPTOPIPE_EXCHANGE_API_URL (locally: the exchange simulator) overrides their API URLs."""

    exchange_api_url: str = ""
    markets_file: str = ""
    timeout_ms: int = 10_000
    rate_limit: bool = True
    max_attempts: int = 8
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.base_delay_s, self.max_delay_s)

    @property
    def markets(self) -> MarketsConfig:
        return load_markets_config(
            Path(self.markets_file) if self.markets_file else load_settings().markets_file
        )

    def client(self, exchange_id: str) -> ccxt.Exchange:
        self.markets.markets_of(exchange_id)
        return create_exchange(
            exchange_id,
            exchange_api_url=self.exchange_api_url or None,
            timeout_ms=self.timeout_ms,
            rate_limit=self.rate_limit,
        )


def resources_for(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resource set of an environment."""
    return {
        "warehouse": warehouse_resource(settings),
        # In prod load_settings refuses an exchange URL override, so this is the real exchanges.
        "exchanges": ExchangeResource(
            exchange_api_url=settings.exchange_api_url or "", markets_file=str(settings.markets_file)
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    # A module with a @dg.definitions function contributes only what that function returns.
    from cryptopipe_dagster.defs.streaming.resources import pubsub_resource
    from cryptopipe_dagster.defs.transform.assets import dbt_resource

    return dg.Definitions(
        resources={**resources_for(load_settings()), "dbt": dbt_resource(), "pubsub": pubsub_resource()}
    )
