"""After `cryptopipe demo`: the warehouse holds exactly the recorded candles, and only them."""

from __future__ import annotations

import shutil
from decimal import Decimal

import dagster as dg
import pandas as pd
import pytest

from cryptopipe_dagster.lib.markets_config import load_markets_config
from cryptopipe_dagster.lib.settings import DEFAULT_MARKETS_FILE
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse
from cryptopipe_dagster.simulator.recordings import load_recordings
from tests.dbt.helpers import MARTS, DbtProjectRun
from tests.e2e.conftest import run_demo

# The session's demo run (fixture demo_home) lands on the first test: up to ~7 min on 2 busy cores.
pytestmark = pytest.mark.timeout(1800)

VALUES = ["open", "high", "low", "close", "volume"]


def candles(home, timeframe: str) -> pd.DataFrame:
    return DuckDBWarehouse(home / "warehouse.duckdb").query_df(
        "select exchange, symbol, timeframe, ts, open, high, low, close, volume from raw.candles "
        "where timeframe = $timeframe order by exchange, symbol, ts",
        {"timeframe": timeframe},
    )


def test_warehouse_holds_exactly_the_recorded_candles(demo_home, data_dir):
    recorded = load_recordings(data_dir)
    for timeframe in ("1h", "1d"):
        expected = recorded[recorded.timeframe == timeframe].sort_values(["exchange", "symbol", "ts"])
        got = candles(demo_home, timeframe)
        assert len(got) == len(expected) > 0
        got["ts"] = got["ts"].dt.tz_convert("UTC")
        pd.testing.assert_frame_equal(
            got.reset_index(drop=True),
            expected[got.columns].reset_index(drop=True),
            check_dtype=False,
            check_exact=True,
        )
        # float64 round-trips the recorded decimal text exactly (the precision policy)
        assert [repr(v) for v in got["close"].head(50)] == [
            repr(float(Decimal(t))) for t in expected["close_str"].head(50)
        ]


def test_bitstamp_outage_is_a_gap_not_invented_rows(demo_home):
    got = candles(demo_home, "1d")
    bitstamp = got[got.exchange == "bitstamp"]
    outage = bitstamp[(bitstamp.ts >= "2019-03-20") & (bitstamp.ts < "2019-04-01")]
    assert outage.empty
    assert set(bitstamp.symbol) == {"BTC/USD", "ETH/USD", "LTC/USD"}


def test_1m_candles_roll_up_to_the_recorded_bars(demo_home, data_dir):
    recorded = load_recordings(data_dir).set_index(["exchange", "symbol", "ts"])
    minutes = candles(demo_home, "1m")
    assert len(minutes) > 0
    for (exchange, symbol), frame in minutes.groupby(["exchange", "symbol"]):
        if exchange not in recorded.index.get_level_values("exchange"):
            continue  # Kraken's live 1m candles (the demo's live path) have no recording of their own
        timeframe = recorded.loc[exchange].timeframe.iloc[0]
        bars = (
            frame.set_index("ts")
            .resample(pd.Timedelta(timeframe.replace("m", "min")))
            .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
            .dropna()
        )
        for ts, bar in bars.iterrows():
            want = recorded.loc[(exchange, symbol, ts)]
            for column in VALUES:
                assert abs(bar[column] - want[column]) <= 1e-9 * max(1.0, abs(want[column])), (ts, column)


def test_summary_and_idempotent_second_run(demo_home):
    before = DuckDBWarehouse(demo_home / "warehouse.duckdb").query_df(
        "select * from raw.candles order by exchange, symbol, timeframe, ts", {}
    )
    result = run_demo(demo_home)
    assert result.returncode == 0, result.stderr[-4000:]
    after = DuckDBWarehouse(demo_home / "warehouse.duckdb").query_df(
        "select * from raw.candles order by exchange, symbol, timeframe, ts", {}
    )
    pd.testing.assert_frame_equal(before, after)
    assert "rows loaded=0" in result.stdout
    assert "dead letters" in result.stdout and "make dev" in result.stdout
    # The live path ran again: the same trades (deterministic replay), nothing doubled, reconciled.
    assert "reconciliation (trade-built vs exchange 1m candles): passed" in result.stdout
    trades = DuckDBWarehouse(demo_home / "warehouse.duckdb").query_df(
        "select exchange, count(*) as n, count(distinct trade_id) as d from raw.trades group by all", {}
    )
    assert len(trades) == 3 and (trades["n"] == 400).all() and (trades["n"] == trades["d"]).all()


def test_demo_covers_every_configured_demo_market(demo_home):
    loaded = DuckDBWarehouse(demo_home / "warehouse.duckdb").query_df(
        "select distinct exchange, symbol, timeframe from raw.candles", {}
    )
    loaded = set(loaded.itertuples(index=False, name=None))
    for spec in load_markets_config(DEFAULT_MARKETS_FILE).demo:
        for symbol in spec.symbols:
            for timeframe in spec.timeframes:
                assert (spec.exchange, symbol, timeframe) in loaded


def test_demo_builds_the_marts_for_every_demo_market(demo_home):
    warehouse = DuckDBWarehouse(demo_home / "warehouse.duckdb")
    for mart in ("ohlcv_1h", "ohlcv_1d", "indicators_1h", "indicators_1d"):
        markets = warehouse.query_df(f"select distinct exchange, symbol from marts.{mart}", {})
        assert len(markets) == 5, mart  # the four backfilled markets and Kraken's live candles
    latest = warehouse.query_df(
        "select count(*) as n from marts.indicators_1d where ts = '2020-01-17' and rsi_14 between 0 and 100 "
        "and macd_signal is not null and atr_14 > 0 and vwap_24 > 0",
        {},
    )
    assert latest["n"].iloc[0] == 3  # the three Bitstamp markets on their last recorded day


def test_demo_live_run_was_loaded_by_the_sensor_under_the_daemon(demo_home):
    """The same mechanism as a deployment: runless raw/trades materializations from the sensor's
    ticks (the daemon evaluated it), no loader run, and the ledger holds every loaded batch."""
    with dg.DagsterInstance.from_config(str(demo_home / "dagster")) as instance:
        records = instance.fetch_materializations(dg.AssetKey(["raw", "trades"]), limit=1000).records
        assert records and all(record.run_id == "" for record in records)
        inserted = sum(record.asset_materialization.metadata["inserted"].value for record in records)
        assert inserted == 1200  # 400 trades on each of the three markets, inserted once
        loader_runs = instance.get_runs(dg.RunsFilter(job_name="microbatch_job"))
        assert loader_runs == []
    ledger = DuckDBWarehouse(demo_home / "warehouse.duckdb").query_df(
        "select count(*) as pending from ops.landed_batches", {}
    )
    assert ledger["pending"].iloc[0] == 0
    daemon_log = (demo_home / "logs" / "demo-daemon.log").read_text()
    assert "caught an error" not in daemon_log, daemon_log[:3000]  # no sensor tick failed


def test_demo_marts_equal_a_full_refresh_of_the_same_warehouse(demo_home, tmp_path):
    """Incremental partition runs, the live candles and their automated rebuild leave every mart
    exactly as a full refresh of the same raw tables builds it."""
    demo = DbtProjectRun(demo_home / "warehouse.duckdb", tmp_path / "demo")
    reference = DbtProjectRun(tmp_path / "reference.duckdb", tmp_path / "reference")
    shutil.copy(demo.db_path, reference.db_path)
    reference.dbt("run", "--full-refresh")
    for mart in MARTS:
        pd.testing.assert_frame_equal(demo.mart(mart), reference.mart(mart), check_exact=True, obj=mart)


def test_live_candles_brought_their_marts_up_to_date_by_automation(demo_home):
    """Kraken's live 1m candles (runless raw/candles events of market_data_sensor) got their day's
    marts rebuilt by marts_automation_sensor under the daemon, not by the demo."""
    partition = "2019-10-17|kraken"
    with dg.DagsterInstance.from_config(str(demo_home / "dagster")) as instance:
        reported = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["raw", "candles"]), asset_partitions=[partition]),
            limit=100,
        ).records
        live_reports = [record for record in reported if record.run_id == ""]
        assert live_reports
        rebuilt = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(["marts", "indicators_1h"]),
                asset_partitions=[partition],
                after_timestamp=min(record.timestamp for record in live_reports),
            ),
            limit=100,
        ).records
        assert rebuilt
        runs = [instance.get_run_by_id(record.run_id) for record in rebuilt]
        automated = [run for run in runs if run.tags.get("dagster/sensor_name") == "marts_automation_sensor"]
        assert automated and all(run.is_success for run in automated), [(r.run_id, r.status) for r in runs]
