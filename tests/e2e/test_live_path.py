"""Live path end to end over loopback: simulator WebSocket -> collector -> Pub/Sub emulator ->
market_data_sensor -> runs -> DuckDB, exactly once under every stream fault kind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from cryptopipe_dagster.defs.resources import WarehouseResource
from cryptopipe_dagster.defs.streaming.drain import drain_once
from cryptopipe_dagster.defs.streaming.resources import PubSubResource
from cryptopipe_dagster.lib.collector import Collector, CollectorSettings, parse_market
from cryptopipe_dagster.lib.collector.background import CollectorThread
from cryptopipe_dagster.lib.simulator.server import SimulatorServer
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse
from tests.lib.simulator.conftest import DATA_DIR, SEED

START = "2019-10-17T05:00:00Z"
TRADES_PER_MARKET = 300
MARKETS = ("coinbaseexchange:BTC/USD", "bitstamp:BTC/USD", "kraken:BTC/USD")
# Every stream gets each fault kind at least once (exact message numbers), plus random ones.
FAULTS = (
    "ws_duplicate@20,ws_out_of_order@30,ws_malformed@40,ws_disconnect@60,ws_burst@80,ws_stall@120,"
    "ws_disconnect:0.005,ws_duplicate:0.02,ws_out_of_order:0.02,ws_malformed:0.01"
)


@pytest.fixture
def faulty_sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(DATA_DIR, seed=SEED, now=START, faults=FAULTS, stall_seconds=2.5) as server:
        server.set_stream(60, START, stop_after=TRADES_PER_MARKET)
        yield server


def _settings(project: str, sim: SimulatorServer) -> CollectorSettings:
    return CollectorSettings(
        markets=tuple(parse_market(m, candles=m.startswith("kraken")) for m in MARKETS),
        project_id=project,
        simulator_url=sim.base_url,
        stall_timeout_s=1.0,
        sweep_interval_s=2.0,
        reconnect_initial_s=0.1,
        reconnect_max_s=1.0,
    )


def _stored(duckdb_path: Path) -> pd.DataFrame:
    return DuckDBWarehouse(duckdb_path).query_df(
        "select exchange, symbol, trade_id, epoch_ms(ts) as ts_ms, price, amount, source from raw.trades", {}
    )


def _ledger(sim: SimulatorServer, exchange: str) -> pd.DataFrame:
    ids, ts = sim.state.streams.ledger(exchange, "BTC/USD").arrays()
    return pd.DataFrame({"trade_id": ids.astype(str), "ts_ms": ts})


def _all_stopped(sim: SimulatorServer) -> bool:
    return all(feed["state"] == "stopped" for feed in sim.stream_status()["feeds"])


def test_warehouse_holds_exactly_the_emitted_trades_under_faults(
    faulty_sim, market_data_project, pubsub_emulator, tmp_path
):
    duckdb_path = tmp_path / "warehouse.duckdb"
    resources = {
        "pubsub": PubSubResource(
            project_id=market_data_project, emulator_host=pubsub_emulator.host, pull_timeout_s=1.0
        ),
        "warehouse": WarehouseResource(duckdb_path=str(duckdb_path)),
    }
    collector = Collector(_settings(market_data_project, faulty_sim), metrics_port=0)
    cursor, executed = None, []
    with dg.DagsterInstance.ephemeral() as instance:
        with CollectorThread(collector) as running:
            deadline = time.monotonic() + 150
            while not (_all_stopped(faulty_sim) and _complete(duckdb_path, faulty_sim)):
                assert time.monotonic() < deadline, "live path did not deliver every emitted trade in time"
                tick = drain_once(instance, resources, cursor)
                assert not tick.failed
                cursor, executed = tick.cursor, executed + tick.executed
                time.sleep(0.5)
            report = running.stop()
        for _ in range(3):  # what the collector flushed at shutdown
            tick = drain_once(instance, resources, cursor)
            cursor, executed = tick.cursor, executed + tick.executed
        # A sensor that lost its cursor asks for the same groups again: run keys make that a no-op.
        replay = drain_once(instance, resources, None)
        assert replay.executed == [] and set(replay.skipped) <= set(executed)

    stored = _stored(duckdb_path)
    assert not stored.duplicated(["exchange", "symbol", "trade_id"]).any()
    for exchange in ("coinbaseexchange", "bitstamp", "kraken"):
        ledger = _ledger(faulty_sim, exchange)
        got = stored[stored.exchange == exchange].sort_values("trade_id")
        assert len(ledger) == TRADES_PER_MARKET
        assert sorted(got.trade_id) == sorted(ledger.trade_id), exchange  # count and ids
        merged = ledger.merge(got, on="trade_id", suffixes=("_emitted", "_stored"))
        # Content: event times. Bitstamp's REST trades carry whole seconds only (its stream carries
        # microseconds), so a trade recovered over REST has its time to the second there.
        precision = (merged.source == "rest") * (1000 if exchange == "bitstamp" else 1) + (
            merged.source != "rest"
        )
        expected = merged.ts_ms_emitted // precision * precision
        assert (expected == merged.ts_ms_stored).all(), exchange
        assert (merged.price > 0).all() and (merged.amount > 0).all()
    # The faults really happened and were handled: reconnects, REST fills, duplicates dropped.
    assert report.reconnects >= 3 and report.gap_fills >= 3 and report.duplicates_dropped > 0
    assert report.unpublished_batches == 0
    dead = DuckDBWarehouse(duckdb_path).query_df("select count(*) as n from ops.dead_letters", {})
    if report.dead_letters:  # edge rejections landed in ops.dead_letters
        assert int(dead.n[0]) >= 1
    candles = DuckDBWarehouse(duckdb_path).query_df(
        "select count(*) as n, count(distinct ts) as d from raw.candles "
        "where exchange = 'kraken' and timeframe = '1m'",
        {},
    )
    assert int(candles.n[0]) > 0 and int(candles.n[0]) == int(candles.d[0])  # live closed candles, once each
    _assert_live_candles_match_trades(duckdb_path)


def _assert_live_candles_match_trades(duckdb_path: Path) -> None:
    """Kraken's live 1m candles equal the candles of its stored trades, for every minute the trades
    fully cover: no candle was left as the stream closed it early (out-of-order, disconnects)."""
    warehouse = DuckDBWarehouse(duckdb_path)
    trades = warehouse.query_df(
        "select ts, price, amount, trade_id from raw.trades where exchange = 'kraken' order by ts, trade_id",
        {},
    )
    trades["minute"] = trades["ts"].dt.floor("min")
    built = trades.groupby("minute").agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("amount", "sum"),
    )
    built = built.iloc[1:-1]  # the first and last minute hold only part of their trades
    live = warehouse.query_df(
        "select ts, open, high, low, close, volume from raw.candles "
        "where exchange = 'kraken' and timeframe = '1m' order by ts",
        {},
    ).set_index("ts")
    live.index = live.index.tz_convert("UTC")
    compared = built.join(live, rsuffix="_live", how="inner")
    assert len(compared) >= len(built) - 1 > 0  # the last full minute may still be open at the stop
    for column in ("open", "high", "low", "close"):
        assert (compared[column] == compared[f"{column}_live"]).all(), column
    assert ((compared["volume"] - compared["volume_live"]).abs() <= 1e-9 * compared["volume_live"]).all()


def _complete(duckdb_path: Path, sim: SimulatorServer) -> bool:
    if not duckdb_path.exists():
        return False
    try:
        stored = _stored(duckdb_path)
    except Exception:  # noqa: BLE001 - raw.trades not created yet
        return False
    counts = stored.groupby("exchange").size().to_dict()
    return all(counts.get(e, 0) >= len(_ledger(sim, e)) for e in ("coinbaseexchange", "bitstamp", "kraken"))
