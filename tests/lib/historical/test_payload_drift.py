"""Schema drift on the REST path: the simulator's payload_drift fault against a real backfill (ccxt
over loopback), on DuckDB and BigQuery. The drift is recorded in ops.payload_fingerprints with its
diff, the rows ccxt can no longer read are schema_drift dead letters, every other row is loaded."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cryptopipe_dagster.lib.exchanges.clients import create_exchange
from cryptopipe_dagster.lib.historical.candle_backfill import BackfillTarget, backfill_candles, exchange_now
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse, Warehouse, open_warehouse


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture(params=["duckdb", "bigquery"])
def any_warehouse(request, tmp_path) -> Warehouse:
    if request.param == "duckdb":
        store: Warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
        store.ensure_schema()
        return store
    return open_warehouse(request.getfixturevalue("bigquery_env"))


def client_of(simulator):
    return create_exchange("bitstamp", exchange_api_url=simulator.base_url, timeout_ms=3000, rate_limit=False)


def stored_ts(warehouse: Warehouse) -> set[pd.Timestamp]:
    window = warehouse.candles_in_window(["bitstamp"], utc("2018-01-01"), utc("2018-07-01"))
    return set(window.loc[(window.symbol == "ETH/USD") & (window.timeframe == "1d"), "ts"])


def test_renamed_ohlcv_field_is_recorded_dead_lettered_and_the_rest_loaded(faulty_simulator, any_warehouse):
    client = client_of(faulty_simulator)
    baseline = BackfillTarget("bitstamp", "ETH/USD", "1d", utc("2018-01-01"), utc("2018-03-01"))
    backfill_candles(client, any_warehouse, baseline, now=exchange_now(client))
    # The venue renames `close` in half of the rows of the next answer (request 1 after the plan).
    faulty_simulator.set_faults("payload_drift@1", drift_change="rename", drift_share=0.5)
    drifted = BackfillTarget("bitstamp", "ETH/USD", "1d", utc("2018-03-01"), utc("2018-06-01"))
    stats = backfill_candles(client, any_warehouse, drifted, now=exchange_now(client))

    dead = any_warehouse.dead_letters(dataset="candles", limit=None)
    # The answer runs from the window to the recording's end: half of all its rows are drifted.
    assert len(dead) == stats.dead_letters > 0
    assert set(dead["reason_code"]) == {"schema_drift"}
    assert dead["error_detail"].str.contains("retyped close (number -> null)", regex=False).all()
    dead_ts = {pd.Timestamp(json.loads(p)[0], unit="ms", tz="UTC") for p in dead["raw_payload"]}
    window = set(pd.date_range("2018-03-01", "2018-05-31", freq="D", tz="UTC"))
    loaded = stored_ts(any_warehouse)
    assert 0 < len(window & dead_ts) < len(window)
    assert window - dead_ts <= loaded  # every row that parsed is loaded
    assert set(pd.date_range("2018-01-01", "2018-02-28", freq="D", tz="UTC")) <= loaded

    prints = any_warehouse.payload_fingerprints(exchange="bitstamp", endpoint="fetch_ohlcv")
    assert len(prints) == 2
    first, changed = prints[prints["diff"].isna()].iloc[0], prints[prints["diff"].notna()].iloc[0]
    assert changed["previous_fingerprint"] == first["fingerprint"]
    assert json.loads(changed["diff"]) == [
        {"change": "retyped", "field": "close", "was": "number", "now": "null"}
    ]


def test_added_field_in_trades_is_new_fingerprint_not_dead_letter():
    """An added field breaks nothing: recorded as a new shape, and no record is rejected."""
    from cryptopipe_dagster.lib.edge.fingerprint import PayloadTracker, drift_classifier
    from cryptopipe_dagster.lib.edge.normalize_trades import normalize_trades

    now = utc("2024-01-02")
    trade = {
        "id": "1",
        "timestamp": 1_704_067_200_000,
        "symbol": "BTC/USD",
        "price": 42000.5,
        "amount": 0.1,
        "side": "buy",
        "info": {"tid": "1", "price": "42000.5", "amount": "0.1", "type": "0", "date": "1704067200"},
    }
    tracker = PayloadTracker(sample_every_s=0)
    batch = normalize_trades(
        [trade],
        exchange="bitstamp",
        now=now,
        drift=drift_classifier(tracker, "bitstamp", "fetch_trades", [trade], now),
    )
    added = {**trade, "id": "2", "info": {**trade["info"], "tid": "2", "fee_tier": 3}}
    batch2 = normalize_trades(
        [added],
        exchange="bitstamp",
        now=now,
        drift=drift_classifier(tracker, "bitstamp", "fetch_trades", [added], now),
    )
    assert len(batch.valid) == len(batch2.valid) == 1 and batch2.dead_letters.empty
    observed = tracker.take_pending()
    assert [o.diff.rows() for o in observed] == [
        [],
        [{"change": "added", "field": "info.fee_tier", "was": None, "now": "number"}],
    ]
