"""ccxt against the exchange simulator over loopback: pagination, retries, resume, gap repair."""

from __future__ import annotations

import pandas as pd
import pytest

from cryptopipe_dagster.lib.errors import ExchangeUnavailable, RateLimited
from cryptopipe_dagster.lib.exchanges.clients import RetryPolicy, create_exchange
from cryptopipe_dagster.lib.historical.candle_backfill import BackfillTarget, backfill_candles, exchange_now
from cryptopipe_dagster.lib.warehouse import Warehouse
from cryptopipe_dagster.simulator.recordings import load_recording

DAY = pd.Timedelta(days=1)
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def stored(warehouse: Warehouse, exchange: str, symbol: str, timeframe: str) -> pd.DataFrame:
    window = warehouse.candles_in_window([exchange], utc("2000-01-01"), utc("2100-01-01"))
    mine = window[(window.symbol == symbol) & (window.timeframe == timeframe)]
    return mine[["ts", "open", "high", "low", "close", "volume"]].reset_index(drop=True)


def recorded(data_dir, name: str, symbol: str, start, end) -> pd.DataFrame:
    frame = load_recording(data_dir / name)
    frame = frame[(frame.symbol == symbol) & (frame.ts >= start) & (frame.ts < end)]
    return frame[["ts", "open", "high", "low", "close", "volume"]].reset_index(drop=True)


def fast_client(simulator, exchange_id: str):
    # Rate limiter off: the simulator has none unless asked to inject 429s.
    return create_exchange(
        exchange_id, exchange_api_url=simulator.base_url, timeout_ms=3000, rate_limit=False
    )


@pytest.mark.parametrize("overlap", [True, False])
def test_paginated_backfill_equals_recording(simulator, warehouse, data_dir, overlap):
    client = fast_client(simulator, "coinbaseexchange")
    target = BackfillTarget("coinbaseexchange", "BTC/USD", "1h", utc("2019-01-01"), utc("2019-01-31"))
    stats = backfill_candles(client, warehouse, target, now=exchange_now(client), overlap=overlap)
    assert stats.processing_s > 0
    expected = recorded(data_dir, "coinbase_btcusd_1h.csv", "BTC/USD", target.start, target.end)
    got = stored(warehouse, "coinbaseexchange", "BTC/USD", "1h")
    assert stats.requests >= 3  # 720 candles, 300 per page
    assert stats.inserted == len(expected) == 720
    pd.testing.assert_frame_equal(got.assign(ts=got.ts.dt.tz_convert("UTC")), expected, check_dtype=False)


def test_rerun_is_idempotent_and_skips_complete_window(simulator, warehouse):
    client = fast_client(simulator, "bitstamp")
    target = BackfillTarget("bitstamp", "ETH/USD", "1d", utc("2018-01-01"), utc("2018-06-01"))
    first = backfill_candles(client, warehouse, target, now=exchange_now(client))
    again = backfill_candles(client, warehouse, target, now=exchange_now(client))
    forced = backfill_candles(client, warehouse, target, now=exchange_now(client), refetch=True)
    assert first.inserted == 151
    assert again.skipped_complete and again.requests == 0
    assert forced.inserted == 0 and forced.updated == 0 and forced.already_present == 151
    assert len(stored(warehouse, "bitstamp", "ETH/USD", "1d")) == 151


def test_outage_gap_stays_a_gap(simulator, warehouse):
    client = fast_client(simulator, "bitstamp")
    target = BackfillTarget("bitstamp", "BTC/USD", "1d", utc("2019-03-01"), utc("2019-04-30"))
    stats = backfill_candles(client, warehouse, target, now=exchange_now(client))
    days = set(stored(warehouse, "bitstamp", "BTC/USD", "1d").ts.dt.strftime("%Y-%m-%d"))
    assert "2019-03-19" in days and "2019-04-01" in days
    assert not days & {f"2019-03-{d}" for d in range(20, 32)}
    assert stats.gap_candles_repaired == 0


def test_retries_through_429_and_5xx(faulty_simulator, warehouse, data_dir):
    client = fast_client(faulty_simulator, "coinbaseexchange")
    now = exchange_now(client)
    faulty_simulator.set_faults("rate_limit@1,server_error@2,rate_limit@4,truncated@5")
    target = BackfillTarget("coinbaseexchange", "BTC/USD", "1h", utc("2018-03-01"), utc("2018-03-21"))
    stats = backfill_candles(client, warehouse, target, now=now, retry=FAST_RETRY)
    expected = recorded(data_dir, "coinbase_btcusd_1h.csv", "BTC/USD", target.start, target.end)
    assert stats.inserted == len(expected) == 480
    assert faulty_simulator.stats()["faults"] == {"rate_limit": 2, "server_error": 1, "truncated": 1}


def test_gives_up_with_typed_error_when_throttled_forever(faulty_simulator, warehouse):
    client = fast_client(faulty_simulator, "bitstamp")
    now = exchange_now(client)
    faulty_simulator.set_faults("rate_limit:1.0")
    target = BackfillTarget("bitstamp", "BTC/USD", "1d", utc("2018-01-01"), utc("2018-02-01"))
    with pytest.raises(RateLimited):
        backfill_candles(client, warehouse, target, now=now, retry=FAST_RETRY)


def test_server_errors_forever_raise_exchange_unavailable(faulty_simulator, warehouse):
    client = fast_client(faulty_simulator, "bitstamp")
    now = exchange_now(client)
    faulty_simulator.set_faults("server_error:1.0")
    target = BackfillTarget("bitstamp", "BTC/USD", "1d", utc("2018-01-01"), utc("2018-02-01"))
    with pytest.raises(ExchangeUnavailable):
        backfill_candles(client, warehouse, target, now=now, retry=FAST_RETRY)


def test_interrupted_backfill_resumes_from_checkpoint(faulty_simulator, any_warehouse, data_dir):
    warehouse = any_warehouse
    client = fast_client(faulty_simulator, "coinbaseexchange")
    now = exchange_now(client)
    target = BackfillTarget("coinbaseexchange", "BTC/USD", "1h", utc("2018-05-01"), utc("2018-07-01"))
    # The 4th data request and every one after it fails: the first three pages (900 candles) land.
    faulty_simulator.set_faults(",".join(f"server_error@{n}" for n in range(4, 200)))
    with pytest.raises(ExchangeUnavailable):
        backfill_candles(client, warehouse, target, now=now, flush_rows=300, retry=FAST_RETRY)
    checkpoint = warehouse.get_checkpoint("coinbaseexchange", "BTC/USD", "1h")
    assert checkpoint is not None and target.start < checkpoint.fetched_through < target.end
    loaded_before = len(stored(warehouse, "coinbaseexchange", "BTC/USD", "1h"))
    assert loaded_before == (checkpoint.fetched_through - target.start) / pd.Timedelta(hours=1)
    faulty_simulator.set_faults("")
    resumed = backfill_candles(client, warehouse, target, now=now, retry=FAST_RETRY)
    assert resumed.resumed_from == checkpoint.fetched_through
    assert resumed.inserted == 1464 - loaded_before
    expected = recorded(data_dir, "coinbase_btcusd_1h.csv", "BTC/USD", target.start, target.end)
    assert len(stored(warehouse, "coinbaseexchange", "BTC/USD", "1h")) == len(expected) == 1464


def test_incomplete_candle_is_not_stored(data_dir, warehouse):
    from cryptopipe_dagster.simulator.server import SimulatorServer

    with SimulatorServer(data_dir, now=utc("2019-10-17T09:30:00").to_pydatetime()) as server:
        client = fast_client(server, "coinbaseexchange")
        now = exchange_now(client)
        assert now == utc("2019-10-17T09:30:00")
        target = BackfillTarget("coinbaseexchange", "BTC/USD", "1h", utc("2019-10-17"), utc("2019-10-18"))
        stats = backfill_candles(client, warehouse, target, now=now, retry=FAST_RETRY)
    got = stored(warehouse, "coinbaseexchange", "BTC/USD", "1h")
    assert stats.incomplete_dropped == 1
    assert got.ts.max() == utc("2019-10-17T08:00:00")
    assert warehouse.get_checkpoint("coinbaseexchange", "BTC/USD", "1h").fetched_through == utc(
        "2019-10-17T09:00"
    )
