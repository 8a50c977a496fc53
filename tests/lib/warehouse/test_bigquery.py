"""BigQuery specifics on the emulator: tables as production has them, the write order that makes a
crash harmless, no leftover staging tables, typed parameters, and the append-only landing area."""

from __future__ import annotations

import pandas as pd
import pytest

from cryptopipe_dagster.lib.warehouse.bigquery import BigQueryWarehouse, query_parameter
from cryptopipe_dagster.lib.warehouse.tables import CANDLES, LANDING_TABLES, TABLES, TRADES
from tests.lib.warehouse.test_warehouse_contract import NOW, candle_batch, checkpoint, count


@pytest.fixture
def warehouse(bigquery_env) -> BigQueryWarehouse:
    store = BigQueryWarehouse.from_settings(bigquery_env)
    store.ensure_schema()
    return store


def test_tables_are_partitioned_clustered_and_described_from_the_specs(warehouse) -> None:
    candles = warehouse.client.get_table(warehouse.table_id(CANDLES))
    assert candles.time_partitioning.field == "candle_date" and candles.time_partitioning.type_ == "DAY"
    assert candles.clustering_fields == ["exchange", "symbol", "timeframe"]
    assert {f.name: f.mode for f in candles.schema}["ts"] == "REQUIRED"
    assert {f.name: f.description for f in candles.schema}["ts"] == "candle open time, UTC"
    trades = warehouse.client.get_table(warehouse.table_id(TRADES))
    assert (trades.time_partitioning.field, trades.clustering_fields) == (
        "trade_date",
        ["exchange", "symbol"],
    )
    listed = {
        t.table_id for d in ("raw", "ops") for t in warehouse.client.list_tables(f"{warehouse.prefix}{d}")
    }
    assert listed == {spec.name for spec in (*TABLES.values(), *LANDING_TABLES.values())}


class CrashBeforeCheckpoint(BigQueryWarehouse):
    """A process that dies after the candles' MERGE, before the checkpoint's."""

    def save_checkpoint(self, checkpoint) -> None:
        raise KeyboardInterrupt("killed between the candle MERGE and the checkpoint")


def test_a_crash_between_data_and_checkpoint_loses_and_duplicates_nothing(warehouse, bigquery_env) -> None:
    crashing = CrashBeforeCheckpoint.from_settings(bigquery_env)
    batch = candle_batch(bad_rows=1)
    with pytest.raises(KeyboardInterrupt):
        crashing.merge_candles_with_checkpoint(batch.valid, batch.dead_letters, checkpoint(NOW))
    # Data before checkpoint: the rows are durable, the checkpoint still says "not fetched".
    assert count(warehouse, "raw.candles") == 20 and count(warehouse, "ops.dead_letters") == 1
    assert warehouse.get_checkpoint("kraken", "BTC/USD", "1m") is None
    again = warehouse.merge_candles_with_checkpoint(batch.valid, batch.dead_letters, checkpoint(NOW))
    assert (again.inserted, again.unchanged, again.dead_letters_written) == (0, 20, 0)
    assert warehouse.get_checkpoint("kraken", "BTC/USD", "1m") == checkpoint(NOW)
    assert warehouse.count_duplicate_keys("raw.candles", pd.Timestamp("2024-01-01").date(), NOW.date()) == 0


def test_staging_tables_are_removed_and_expire_anyway(warehouse) -> None:
    warehouse.merge_candles(candle_batch().valid)
    ops = {t.table_id for t in warehouse.client.list_tables(f"{warehouse.prefix}ops")}
    assert not [name for name in ops if name.startswith("_staging_")]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("x", "STRING"),
        (3, "INT64"),
        (1.5, "FLOAT64"),
        (True, "BOOL"),
        (pd.Timestamp("2024-01-01", tz="UTC"), "TIMESTAMP"),
        (pd.Timestamp("2024-01-01").date(), "DATE"),
        (None, "STRING"),
    ],
)
def test_values_travel_as_typed_parameters(value, kind) -> None:
    assert query_parameter("p", value).type_ == kind
    assert query_parameter("ids", ["a", "b"]).array_type == "STRING"


def test_the_newest_trade_comes_from_the_newest_partition(warehouse) -> None:
    assert warehouse.newest_trade_ts() is None
    warehouse.merge_candles(candle_batch().valid)
    assert warehouse.newest_partition_date(CANDLES) == pd.Timestamp("2024-01-02").date()
