"""The Warehouse contract, run on both backends: DuckDB (a file) and BigQuery (the emulator).

Whatever works on DuckDB must work on BigQuery: the same frames in, the same MergeStats, rows and
dtypes out. Backend specifics (DuckDB's transactions and file lock, BigQuery's write order) are in
test_duckdb.py and test_bigquery.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptopipe_dagster.lib.edge.normalize import normalize_ohlcv, normalize_trades
from cryptopipe_dagster.lib.edge.schemas import CandleSchema, DeadLetterSchema
from cryptopipe_dagster.lib.errors import UnsafeIdentifier
from cryptopipe_dagster.lib.historical.gaps import find_gaps
from cryptopipe_dagster.lib.warehouse import (
    Checkpoint,
    DuckDBWarehouse,
    MergeStats,
    Warehouse,
    open_warehouse,
)

T0 = 1_704_153_000_000  # 2024-01-01T23:50:00Z: batches straddle a UTC date boundary
MINUTE = 60_000
NOW = pd.Timestamp("2024-01-03", tz="UTC")
DAY = (pd.Timestamp("2024-01-01").date(), pd.Timestamp("2024-01-02").date())


@pytest.fixture(params=["duckdb", "bigquery"])
def warehouse(request, tmp_path) -> Warehouse:
    if request.param == "duckdb":
        store: Warehouse = DuckDBWarehouse(tmp_path / "nested" / "dir" / "warehouse.duckdb")
    else:
        store = open_warehouse(request.getfixturevalue("bigquery_env"), ensure=False)
    store.ensure_schema()
    store.ensure_schema()  # idempotent
    return store


def candle_batch(n: int = 20, bad_rows: int = 0, skip: tuple[int, ...] = ()):
    rows = [
        [T0 + i * MINUTE, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 1.0] for i in range(n) if i not in skip
    ]
    rows += [[T0, "garbage", 1, 1, 1, 1]] * bad_rows
    return normalize_ohlcv(rows, exchange="kraken", symbol="BTC/USD", timeframe="1m", now=NOW)


def checkpoint(through: pd.Timestamp | None, run_id: str | None = "run-1") -> Checkpoint:
    return Checkpoint(
        "kraken",
        "BTC/USD",
        "1m",
        pd.Timestamp(T0, unit="ms", tz="UTC"),
        pd.Timestamp("2024-01-02 01:00", tz="UTC"),
        through,  # type: ignore[arg-type]
        pd.Timestamp("2024-01-03", tz="UTC"),
        run_id,
    )


def count(warehouse: Warehouse, table: str) -> int:
    return int(warehouse.query_df(f"SELECT COUNT(*) AS n FROM {warehouse.table_ref(table)}")["n"].iloc[0])


def test_merge_twice_is_idempotent(warehouse: Warehouse) -> None:
    batch = candle_batch()
    assert warehouse.merge_candles(batch.valid) == MergeStats(inserted=20)
    assert warehouse.merge_candles(batch.valid) == MergeStats(unchanged=20)
    assert count(warehouse, "raw.candles") == 20
    assert warehouse.count_duplicate_keys("raw.candles", *DAY) == 0


def test_candle_date_is_the_utc_date_of_ts(warehouse: Warehouse) -> None:
    warehouse.merge_candles(candle_batch().valid)
    dates = warehouse.query_df(
        f"SELECT candle_date, COUNT(*) AS n FROM {warehouse.table_ref('raw.candles')} "
        "GROUP BY candle_date ORDER BY candle_date"
    )
    assert [str(d.date()) for d in pd.to_datetime(dates["candle_date"])] == ["2024-01-01", "2024-01-02"]
    assert dates["n"].tolist() == [10, 10]


def test_changed_values_update_and_equal_values_do_not(warehouse: Warehouse) -> None:
    first = candle_batch().valid
    warehouse.merge_candles(first)
    revised = first.copy()
    revised.loc[3, "close"] = 100.0
    revised["ingested_at"] = pd.Timestamp("2024-01-04", tz="UTC")
    assert warehouse.merge_candles(revised) == MergeStats(updated=1, unchanged=19)
    stored = warehouse.query_df(
        f"SELECT ts, close, ingested_at FROM {warehouse.table_ref('raw.candles')} ORDER BY ts"
    )
    assert stored["close"].iloc[3] == 100.0
    assert (stored["ingested_at"].iloc[3], stored["ingested_at"].iloc[4]) == (
        pd.Timestamp("2024-01-04", tz="UTC"),
        first["ingested_at"].iloc[4].floor("us"),
    )


def test_duplicate_keys_in_one_frame_keep_the_last(warehouse: Warehouse) -> None:
    valid = candle_batch(3).valid
    twice = pd.concat([valid, valid.assign(volume=7.0)], ignore_index=True)
    assert warehouse.merge_candles(twice) == MergeStats(inserted=3)
    assert warehouse.query_df(f"SELECT DISTINCT volume FROM {warehouse.table_ref('raw.candles')}")[
        "volume"
    ].tolist() == [7.0]


def test_stored_candles_read_back_in_schema_shape(warehouse: Warehouse) -> None:
    batch = candle_batch()
    warehouse.merge_candles(batch.valid)
    window = warehouse.candles_in_window(["kraken"], pd.Timestamp("2024-01-01", tz="UTC"), NOW)
    stored = CandleSchema.validate(window)
    pd.testing.assert_frame_equal(stored.drop(columns="ingested_at"), batch.valid.drop(columns="ingested_at"))
    assert warehouse.candles_in_window(["binance"], pd.Timestamp("2024-01-01", tz="UTC"), NOW).empty
    assert len(warehouse.candles_in_window(None, pd.Timestamp("2024-01-02", tz="UTC"), NOW)) == 10


def test_timestamps_window_and_gaps_found_exactly(warehouse: Warehouse) -> None:
    warehouse.merge_candles(candle_batch(30, skip=(4, 5, 6, 20)).valid)
    start, end = pd.Timestamp(T0, unit="ms", tz="UTC"), pd.Timestamp(T0 + 30 * MINUTE, unit="ms", tz="UTC")
    present = warehouse.candle_timestamps("kraken", "BTC/USD", "1m", start, end)
    assert (
        len(present) == 26 and present.is_monotonic_increasing and str(present.dtype) == "datetime64[ns, UTC]"
    )
    at = lambda i: pd.Timestamp(T0 + i * MINUTE, unit="ms", tz="UTC")  # noqa: E731
    assert find_gaps(present, start, end, "1m") == [(at(4), at(6), 3), (at(20), at(20), 1)]
    assert warehouse.candle_timestamps("kraken", "BTC/USD", "1m", at(2), at(4)).tolist() == [at(2), at(3)]
    assert warehouse.first_candle_ts("kraken", "BTC/USD", "1m", since=start - pd.Timedelta(days=1)) == start
    assert warehouse.first_candle_ts("kraken", "BTC/USD", "1m", since=at(5)) == at(7)
    assert warehouse.first_candle_ts("kraken", "ETH/USD", "1m", since=start) is None


def test_values_never_become_sql(warehouse: Warehouse) -> None:
    warehouse.merge_candles(candle_batch().valid)
    hostile = "BTC/USD' OR '1'='1"
    found = warehouse.candle_timestamps("kraken", hostile, "1m", pd.Timestamp("2024-01-01", tz="UTC"), NOW)
    assert found.empty and count(warehouse, "raw.candles") == 20


def test_unknown_or_unsafe_tables_are_rejected(warehouse: Warehouse) -> None:
    for table in ("raw.candles; DROP TABLE raw.candles", "raw.nope", "main.sqlite_master"):
        with pytest.raises(UnsafeIdentifier):
            warehouse.count_duplicate_keys(table, *DAY)


def test_dead_letters_are_idempotent_and_replayable(warehouse: Warehouse) -> None:
    dead = candle_batch(bad_rows=2).dead_letters
    assert len(dead) == 2 and dead["dead_letter_id"].nunique() == 1  # same payload, same id
    assert warehouse.write_dead_letters(dead) == 1
    replayed_at = pd.Timestamp("2024-01-05", tz="UTC")
    assert warehouse.mark_replayed(dead["dead_letter_id"].tolist(), at=replayed_at) == 1
    assert warehouse.mark_replayed(dead["dead_letter_id"].tolist()) == 0
    again = candle_batch(bad_rows=1).dead_letters.assign(first_seen_at=pd.Timestamp("2024-02-01", tz="UTC"))
    assert warehouse.write_dead_letters(again) == 0  # existing id untouched
    stored = warehouse.dead_letters(dataset="candles", reason_code="non_numeric_value")
    DeadLetterSchema.validate(stored)
    assert len(stored) == 1 and stored["replayed_at"].iloc[0] == replayed_at
    assert stored["first_seen_at"].iloc[0] == dead["first_seen_at"].iloc[0].floor("us")
    assert warehouse.dead_letters(replayed=False).empty and len(warehouse.dead_letters(replayed=True)) == 1
    assert warehouse.dead_letters(exchange="binance").empty


def test_checkpoint_round_trip_and_replace(warehouse: Warehouse) -> None:
    assert warehouse.get_checkpoint("kraken", "BTC/USD", "1m") is None
    saved = checkpoint(pd.Timestamp("2024-01-02", tz="UTC"), run_id=None)
    warehouse.save_checkpoint(saved)
    assert warehouse.get_checkpoint("kraken", "BTC/USD", "1m") == saved
    later = checkpoint(pd.Timestamp("2024-01-02 00:10", tz="UTC"), run_id="run-2")
    warehouse.save_checkpoint(later)
    assert warehouse.get_checkpoint("kraken", "BTC/USD", "1m") == later
    assert count(warehouse, "ops.ingest_checkpoints") == 1


def test_candles_dead_letters_and_checkpoint_commit_together(warehouse: Warehouse) -> None:
    batch = candle_batch(bad_rows=1)
    cp = checkpoint(pd.Timestamp(T0 + 20 * MINUTE, unit="ms", tz="UTC"))
    stats = warehouse.merge_candles_with_checkpoint(batch.valid, batch.dead_letters, cp)
    assert stats == MergeStats(inserted=20, dead_letters_written=1)
    assert warehouse.get_checkpoint("kraken", "BTC/USD", "1m") == cp
    assert warehouse.merge_candles_with_checkpoint(batch.valid, batch.dead_letters, cp) == MergeStats(
        unchanged=20
    )
    assert warehouse.merge_candles_with_checkpoint(None, None, None) == MergeStats()


def test_trades_merge_idempotently(warehouse: Warehouse) -> None:
    trades = [
        {
            "id": str(i),
            "timestamp": T0 + i,
            "symbol": "BTC/USD",
            "price": 1.0 + i,
            "amount": 0.5,
            "side": "buy",
        }
        for i in range(10)
    ]
    valid = normalize_trades(trades, exchange="kraken", now=NOW).valid
    assert warehouse.merge_trades(valid) == MergeStats(inserted=10)
    assert warehouse.merge_trades(
        valid.assign(price=np.where(valid.index == 0, 9.0, valid["price"]))
    ) == MergeStats(updated=1, unchanged=9)
    assert warehouse.count_duplicate_keys("raw.trades", *DAY) == 0


def test_stored_candle_volumes_and_summaries(warehouse: Warehouse) -> None:
    batch = candle_batch().valid
    warehouse.merge_candles(batch)
    stored = warehouse.stored_candle_volumes(batch.head(3))
    assert len(stored) == 3 and stored["stored_volume"].tolist() == [1.0, 1.0, 1.0]
    assert warehouse.stored_candle_volumes(batch.head(0)).empty
    summary = warehouse.market_summary("raw.candles", pd.Timestamp("2024-01-01", tz="UTC"), NOW)
    assert summary[["exchange", "symbol", "timeframe", "candles"]].values.tolist() == [
        ["kraken", "BTC/USD", "1m", 20]
    ]
    assert summary["first_ts"].iloc[0] == pd.Timestamp(T0, unit="ms", tz="UTC")
