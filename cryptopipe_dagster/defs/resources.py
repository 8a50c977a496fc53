"""Resources chosen by environment (CRYPTOPIPE_ENV=local|prod): the only thing that differs."""

from __future__ import annotations

from pathlib import Path

import ccxt
import dagster as dg

from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.exchanges.clients import RetryPolicy, create_exchange
from cryptopipe_dagster.lib.markets_config import MarketsConfig, load_markets_config
from cryptopipe_dagster.lib.settings import Settings, load_settings
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse, Warehouse
from cryptopipe_dagster.lib.warehouse.duckdb_connection import LOCK_WAIT_S


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse behind one interface: DuckDB locally, BigQuery in prod."""

    backend: str = "duckdb"
    duckdb_path: str = ""

    def get_warehouse(self, lock_wait_s: float = LOCK_WAIT_S) -> Warehouse:
        """The configured warehouse, schema ensured; `lock_wait_s` bounds every wait for a DuckDB file
        another process holds (WarehouseBusy after it)."""
        if self.backend == "duckdb":
            path = self.duckdb_path or str(load_settings().duckdb_path)
            warehouse = DuckDBWarehouse(path, lock_wait_s=lock_wait_s)
            warehouse.ensure_schema()
            return warehouse
        raise ConfigError(f"warehouse backend {self.backend!r} is not available in this build (use duckdb)")


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
    if settings.env == "local":
        return {
            "warehouse": WarehouseResource(backend="duckdb", duckdb_path=str(settings.duckdb_path)),
            "exchanges": ExchangeResource(
                exchange_api_url=settings.exchange_api_url or "", markets_file=str(settings.markets_file)
            ),
        }
    return {
        "warehouse": WarehouseResource(backend="bigquery"),
        "exchanges": ExchangeResource(markets_file=str(settings.markets_file)),
    }


@dg.definitions
def resources() -> dg.Definitions:
    # A module with a @dg.definitions function contributes only what that function returns.
    from cryptopipe_dagster.defs.streaming.resources import pubsub_resource
    from cryptopipe_dagster.defs.transform.assets import dbt_resource

    return dg.Definitions(
        resources={**resources_for(load_settings()), "dbt": dbt_resource(), "pubsub": pubsub_resource()}
    )
