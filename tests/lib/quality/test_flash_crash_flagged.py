"""The flash_crash scenario end to end on both warehouses: the simulator crashes bitstamp BTC/USD
by 30% and back within 10 minutes; the historical backfill (ccxt over loopback) loads every 1m
candle of the day, none dead-lettered or smoothed; the anomaly scan flags it and ops.anomalies
holds it (MERGEd idempotently)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptopipe_dagster.lib.exchanges.clients import create_exchange
from cryptopipe_dagster.lib.historical.candle_backfill import BackfillTarget, backfill_candles, exchange_now
from cryptopipe_dagster.lib.quality.anomalies import scan_warehouse
from cryptopipe_dagster.lib.quality.anomaly_config import load_anomaly_config
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse, Warehouse, open_warehouse
from cryptopipe_dagster.simulator import series
from cryptopipe_dagster.simulator.derive import aggregate
from cryptopipe_dagster.simulator.flash_crash import FlashCrash, parse_flash_crash
from cryptopipe_dagster.simulator.server import SimulatorServer

DAY = pd.Timestamp("2019-03-18", tz="UTC")
CRASH = FlashCrash("bitstamp", "BTC/USD", DAY + pd.Timedelta(hours=12, minutes=3), depth=0.3, minutes=10)
NOW_MS = 2_000_000_000_000


@pytest.fixture(scope="module")
def crashing_simulator(data_dir):
    with SimulatorServer(data_dir, seed=7, flash_crash=CRASH) as server:
        yield server


@pytest.fixture(params=["duckdb", "bigquery"])
def warehouse(request, tmp_path) -> Warehouse:
    if request.param == "duckdb":
        store: Warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    else:
        store = open_warehouse(request.getfixturevalue("bigquery_env"))
    store.ensure_schema()
    return store


def test_spec_text_parses_and_bad_specs_are_named():
    assert parse_flash_crash("bitstamp:BTC/USD@2019-03-18T12:03Z,depth=0.3,minutes=10") == CRASH
    with pytest.raises(ValueError, match="bad flash crash"):
        parse_flash_crash("bitstamp@2019-03-18")
    with pytest.raises(ValueError, match="depth"):
        FlashCrash("bitstamp", "BTC/USD", DAY, depth=1.5)


def test_crash_is_consistent_across_minutes_trades_and_coarser_candles(crashing_simulator):
    market = crashing_simulator.state.venues["bitstamp"].market("BTC/USD")
    day_s = int(DAY.timestamp())
    minutes = series.candles(market, 60, day_s, day_s + 86_399, NOW_MS)
    crash_s = int(CRASH.start.timestamp())
    inside = (minutes.ts >= crash_s) & (minutes.ts < crash_s + 600)
    before = minutes.close[np.flatnonzero(minutes.ts == crash_s - 60)[0]]
    assert minutes.low[inside].min() <= 0.71 * before  # -30% (of the minute's own prices)
    daily = series.candles(market, 86_400, day_s, day_s, NOW_MS)
    hourly = series.candles(market, 3_600, day_s, day_s + 86_399, NOW_MS)
    for coarse, step in ((daily, 86_400), (hourly, 3_600)):
        rolled = aggregate(minutes, step)
        assert all((a == b).all() for a, b in zip(rolled.columns(), coarse.columns(), strict=True))
    trades = series.trades_between(market, crash_s * 1000, (crash_s + 600) * 1000, NOW_MS)
    assert trades.price.min() == minutes.low[inside].min()


def test_flash_crash_is_loaded_in_full_and_flagged(crashing_simulator, warehouse):
    client = create_exchange(
        "bitstamp", exchange_api_url=crashing_simulator.base_url, timeout_ms=5000, rate_limit=False
    )
    target = BackfillTarget("bitstamp", "BTC/USD", "1m", DAY, DAY + pd.Timedelta(days=1))
    stats = backfill_candles(client, warehouse, target, now=exchange_now(client))
    assert stats.inserted == 1440 and stats.dead_letters == 0
    stored = warehouse.candles_of_timeframe("1m", DAY, DAY + pd.Timedelta(days=1))
    assert len(stored) == 1440
    market = crashing_simulator.state.venues["bitstamp"].market("BTC/USD")
    served = series.candles(market, 60, int(DAY.timestamp()), int(DAY.timestamp()) + 86_399, NOW_MS)
    np.testing.assert_array_equal(stored["low"].to_numpy(), market.prices(served.low))  # not smoothed
    crash_low = stored["low"].min()
    assert stored.loc[stored["low"] == crash_low, "ts"].iloc[0] == CRASH.start + pd.Timedelta(minutes=3)

    found = scan_warehouse(warehouse, load_anomaly_config(), DAY + pd.Timedelta(days=1))
    jumps = found[found["kind"] == "price_jump"]
    assert CRASH.start in set(jumps["ts"])
    first = warehouse.record_anomalies(found)
    again = warehouse.record_anomalies(found)
    assert first.inserted == len(found) and again.inserted == 0 and again.updated == 0
    stored_jumps = warehouse.anomalies(kind="price_jump", exchange="bitstamp")
    assert CRASH.start in set(stored_jumps["ts"])
    assert len(warehouse.anomalies()) == len(found)
