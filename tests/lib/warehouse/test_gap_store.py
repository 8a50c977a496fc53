"""ops.gaps and the checkpoint's loaded ranges, on both backends (DuckDB file, BigQuery emulator)."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from cryptopipe_dagster.lib.historical.gap_ledger import CONFIRMED, OPEN, new_gaps
from cryptopipe_dagster.lib.warehouse import Checkpoint, DuckDBWarehouse, Warehouse, open_warehouse

NOW = pd.Timestamp("2026-12-01 12:00", tz="UTC")
DAY = pd.Timedelta(days=1)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture(params=["duckdb", "bigquery"])
def warehouse(request, tmp_path) -> Warehouse:
    if request.param == "duckdb":
        store: Warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    else:
        store = open_warehouse(request.getfixturevalue("bigquery_env"), ensure=False)
    store.ensure_schema()
    return store


def outage(exchange: str = "bitstamp", start: str = "2019-03-20", end: str = "2019-04-01") -> pd.DataFrame:
    spans = [(utc(start), utc(end), (utc(end) - utc(start)) // DAY)]
    return new_gaps(exchange, "BTC/USD", "1d", spans, kind="candles", source="backfill", now=NOW)


def test_recording_a_known_gap_again_does_not_duplicate_it(warehouse: Warehouse) -> None:
    assert warehouse.record_gaps(outage()) == 1
    assert warehouse.record_gaps(outage()) == 0
    gaps = warehouse.list_gaps()
    assert len(gaps) == 1
    gap = gaps.iloc[0]
    assert (gap.exchange, gap.symbol, gap.timeframe, gap.state, gap.attempts) == (
        "bitstamp",
        "BTC/USD",
        "1d",
        OPEN,
        0,
    )
    assert (gap.span_start, gap.span_end, gap.missing) == (utc("2019-03-20"), utc("2019-04-01"), 12)
    assert gap.first_seen == NOW and gap.next_attempt == NOW and pd.isna(gap.last_attempt)


def test_update_rewrites_state_and_a_later_find_keeps_it(warehouse: Warehouse) -> None:
    warehouse.record_gaps(outage())
    updated = warehouse.list_gaps().assign(
        state=CONFIRMED,
        attempts=5,
        last_attempt=NOW + DAY,
        next_attempt=None,
        evidence='[{"answer": "no data"}]',
    )
    warehouse.update_gaps(updated)
    assert warehouse.record_gaps(outage()) == 0  # found again by a later backfill: unchanged
    gap = warehouse.list_gaps().iloc[0]
    assert (gap.state, gap.attempts, gap.last_attempt) == (CONFIRMED, 5, NOW + DAY)
    assert pd.isna(gap.next_attempt) and "no data" in gap.evidence


def test_filters_state_exchange_due_and_overlap(warehouse: Warehouse) -> None:
    warehouse.record_gaps(pd.concat([outage(), outage("kraken", "2019-05-01", "2019-05-03")]))
    later = warehouse.list_gaps(exchange="kraken").assign(next_attempt=NOW + DAY)
    warehouse.update_gaps(later)
    assert list(warehouse.list_gaps(exchange="kraken").exchange) == ["kraken"]
    assert list(warehouse.list_gaps(state=OPEN, due_at=NOW).exchange) == ["bitstamp"]
    assert len(warehouse.list_gaps(due_at=NOW + DAY)) == 2
    assert list(warehouse.list_gaps(overlapping=(utc("2019-03-31"), utc("2019-04-02"))).exchange) == [
        "bitstamp"
    ]
    assert warehouse.list_gaps(overlapping=(utc("2019-04-01"), utc("2019-04-30"))).empty  # end is exclusive
    assert warehouse.list_gaps(state=CONFIRMED).empty


def test_checkpoint_keeps_a_set_of_ranges(warehouse: Warehouse) -> None:
    ranges = ((utc("2019-01-01"), utc("2019-02-01")), (utc("2019-03-01"), utc("2019-04-01")))
    checkpoint = Checkpoint(
        "bitstamp", "BTC/USD", "1d", ranges[1][0], utc("2019-04-01"), ranges[1][1], NOW, "run-1", ranges
    )
    warehouse.save_checkpoint(checkpoint)
    stored = warehouse.get_checkpoint("bitstamp", "BTC/USD", "1d")
    assert stored.loaded_ranges == ranges and stored.ranges == ranges


def test_old_duckdb_checkpoint_table_gains_the_ranges_column(tmp_path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as connection:  # the table as it was before range sets
        connection.execute("CREATE SCHEMA ops")
        connection.execute(
            "CREATE TABLE ops.ingest_checkpoints (exchange VARCHAR NOT NULL, symbol VARCHAR NOT NULL, "
            "timeframe VARCHAR NOT NULL, window_start TIMESTAMPTZ NOT NULL, window_end TIMESTAMPTZ NOT NULL, "
            "fetched_through TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, run_id VARCHAR)"
        )
        connection.execute(
            "INSERT INTO ops.ingest_checkpoints VALUES ('bitstamp', 'BTC/USD', '1d', '2019-01-01 00:00+00', "
            "'2019-02-01 00:00+00', '2019-01-15 00:00+00', '2026-01-01 00:00+00', NULL)"
        )
    store = DuckDBWarehouse(path)
    store.ensure_schema()
    legacy = store.get_checkpoint("bitstamp", "BTC/USD", "1d")
    assert legacy.loaded_ranges == () and legacy.ranges == ((utc("2019-01-01"), utc("2019-01-15")),)
