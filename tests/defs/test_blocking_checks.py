"""Blocking checks: unique keys, schema and completeness stop downstream dbt in the same run when
they fail (severity ERROR); dead-letter and drift checks only warn."""

from __future__ import annotations

import dagster as dg
import pytest

from cryptopipe_dagster.defs.historical.partitions import partition_range_tags
from cryptopipe_dagster.defs.quality import candle_checks, drift_checks
from cryptopipe_dagster.defs.quality.trade_checks import TRADES_SCHEMA
from cryptopipe_dagster.defs.resources import ExchangeResource, WarehouseResource
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse

RAW_CANDLES = dg.AssetKey(["raw", "candles"])
RAW_TRADES = dg.AssetKey(["raw", "trades"])
OHLCV_1D = dg.AssetKey(["marts", "ohlcv_1d"])


@pytest.fixture(scope="module")
def asset_graph():
    from cryptopipe_dagster.definitions import defs

    return defs().get_repository_def().asset_graph


def test_which_checks_block(asset_graph):
    blocking = {
        key.name: asset_graph.get_check_spec(key).blocking
        for key in asset_graph.asset_check_keys
        if key.asset_key in (RAW_CANDLES, RAW_TRADES)
    }
    assert blocking[candle_checks.UNIQUE_KEYS] and blocking[candle_checks.SCHEMA]
    assert blocking[candle_checks.COMPLETENESS] and blocking[TRADES_SCHEMA]
    assert not blocking[candle_checks.DEAD_LETTERS]
    assert not blocking[drift_checks.CANDLES_PAYLOAD_STABLE]
    assert not blocking[drift_checks.TRADES_PAYLOAD_STABLE]


def test_failed_schema_check_keeps_dbt_from_building(simulator, tmp_path, monkeypatch):
    from cryptopipe_dagster.defs.historical.assets import raw_candles
    from cryptopipe_dagster.defs.transform.assets import cryptopipe_dbt_models, dbt_resource

    duckdb_path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("CRYPTOPIPE_DUCKDB_PATH", str(duckdb_path))
    store = DuckDBWarehouse(duckdb_path)
    store.ensure_schema()
    with store._transaction() as connection:  # noqa: SLF001 - the drift a migration gone wrong leaves
        connection.execute("ALTER TABLE raw.candles ADD COLUMN vwap DOUBLE")
    result = dg.materialize(
        [raw_candles, cryptopipe_dbt_models],
        resources={
            "warehouse": WarehouseResource(duckdb_path=str(duckdb_path)),
            "exchanges": ExchangeResource(exchange_api_url=simulator.base_url, rate_limit=False),
            "dbt": dbt_resource(),
        },
        tags=partition_range_tags("2018-01-01", "2018-01-31", "bitstamp"),
        run_config={"ops": {"raw__candles": {"config": {"timeframes": ["1d"]}}}},
        raise_on_error=False,
    )
    schema = next(e for e in result.get_asset_check_evaluations() if e.check_name == candle_checks.SCHEMA)
    assert not schema.passed and schema.severity == dg.AssetCheckSeverity.ERROR
    assert "vwap" in schema.metadata["columns"].value
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert RAW_CANDLES in materialized  # the load itself happened and is visible
    assert OHLCV_1D not in materialized  # but nothing was built on a table off its contract
    assert not result.success
