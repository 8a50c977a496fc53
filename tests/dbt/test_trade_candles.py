"""Trade-built 1m candles (int_trade_candles_1m) and their reconciliation with the exchange's 1m
candles: trades and candles fetched from the simulator over loopback with unmodified ccxt."""

from __future__ import annotations

import ccxt
import pandas as pd
import pytest

from cryptopipe_dagster.defs.quality.trade_checks import trade_candles_match_rest_candles
from cryptopipe_dagster.defs.resources import WarehouseResource
from cryptopipe_dagster.lib.edge.normalize import normalize_ohlcv
from cryptopipe_dagster.lib.edge.normalize_trades import normalize_trades
from cryptopipe_dagster.lib.exchanges.url_override import point_exchange_at
from cryptopipe_dagster.lib.quality.reconcile import reconcile_trade_candles
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse
from cryptopipe_dagster.simulator.server import SimulatorServer
from tests.dbt.helpers import DbtProjectRun
from tests.simulator.conftest import DATA_DIR, SEED

START = pd.Timestamp("2019-10-17T05:00:00Z")
END = START + pd.Timedelta(minutes=30)
CORRUPTED_MINUTE = START + pd.Timedelta(minutes=12)
EMPTIED_MINUTE = START + pd.Timedelta(minutes=20)


def _fetch(exchange: ccxt.Exchange) -> tuple[list[dict], list[list]]:
    """Every trade and 1m candle in [START, END) over Kraken's REST API, paging forward."""
    start_ms, end_ms = START.value // 10**6, END.value // 10**6
    trades: list[dict] = []
    since = start_ms
    while since < end_ms:
        page = [t for t in exchange.fetch_trades("BTC/USD", since) if t["timestamp"] >= since]
        new = [t for t in page if not trades or int(t["id"]) > int(trades[-1]["id"])]
        if not new:
            break
        trades += new
        since = new[-1]["timestamp"]
    candles = exchange.fetch_ohlcv("BTC/USD", "1m", since=start_ms - 60_000)
    return [t for t in trades if t["timestamp"] < end_ms], [c for c in candles if start_ms <= c[0] < end_ms]


@pytest.fixture(scope="module")
def reconciled(tmp_path_factory) -> DbtProjectRun:
    work_dir = tmp_path_factory.mktemp("trade_candles")
    project = DbtProjectRun(work_dir / "warehouse.duckdb", work_dir)
    with SimulatorServer(DATA_DIR, seed=SEED, now=END + pd.Timedelta(hours=1)) as sim:
        exchange = ccxt.kraken({"enableRateLimit": False})
        point_exchange_at(exchange, sim.base_url)
        trades, candles = _fetch(exchange)
    warehouse = DuckDBWarehouse(project.db_path)
    warehouse.ensure_schema()
    warehouse.merge_trades(normalize_trades(trades, exchange="kraken").valid)
    warehouse.merge_candles(
        normalize_ohlcv(candles, exchange="kraken", symbol="BTC/USD", timeframe="1m").valid
    )
    project.dbt("build", "--select", "+int_trade_candles_1m")
    return project


def test_trade_candles_equal_the_exchange_candles(reconciled) -> None:
    built = reconciled.query("select * from intermediate.int_trade_candles_1m order by ts")
    rest = reconciled.query("select * from raw.candles where timeframe = '1m' order by ts")
    assert len(built) == len(rest) == 30
    for column in ("open", "high", "low", "close", "volume"):
        assert built[column].tolist() == rest[column].tolist(), column  # bit for bit
    compared = reconcile_trade_candles(DuckDBWarehouse(reconciled.db_path), START)
    assert len(compared) == 28 and compared["mismatch"].isna().all()  # first and last minute excluded


def test_mismatches_fail_the_check_with_the_minutes_listed(reconciled) -> None:
    reconciled.execute(
        "update raw.trades set price = price * 1.01 where trade_id = (select max(trade_id) from raw.trades "
        f"where ts >= '{CORRUPTED_MINUTE}' and ts < '{CORRUPTED_MINUTE + pd.Timedelta(minutes=1)}')"
    )
    reconciled.execute(
        f"delete from raw.trades where ts >= '{EMPTIED_MINUTE}' "
        f"and ts < '{EMPTIED_MINUTE + pd.Timedelta(minutes=1)}'"
    )
    result = trade_candles_match_rest_candles(
        warehouse=WarehouseResource(duckdb_path=str(reconciled.db_path))
    )
    assert not result.passed
    assert result.metadata["minutes_mismatched"].value == 2
    listed = result.metadata["mismatched_minutes"].value
    assert "price_mismatch" in listed and "missing_from_trades" in listed
    assert str(CORRUPTED_MINUTE)[:16] in listed and str(EMPTIED_MINUTE)[:16] in listed
