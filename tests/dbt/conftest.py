"""Session-scoped warehouses built with real `dbt` runs: each costs seconds, so the tests share them.

- `full_build`: every recorded candle plus derived 1m candles, one `dbt build` (models, data tests,
  unit tests) without vars: the full refresh every other result is compared with.
- `incremental_build`: the same candles arriving window by window, each window one `dbt run`/`dbt
  build` with window vars, as Dagster runs partitions.
"""

from __future__ import annotations

import pandas as pd
import pytest

from cryptopipe_dagster.simulator.market_data import MarketStore
from cryptopipe_dagster.simulator.recordings import load_recordings
from tests.dbt.helpers import (
    MARTS,
    DbtProjectRun,
    derived_minutes,
    load_candles,
    recorded_candles,
)

# Recorded bars that also get their exact derived 1m candles in the warehouse.
COINBASE_MINUTES_DAY = "2018-06-15"  # 24 recorded hours -> 1440 minutes
ETH_MINUTES_DAY = "2018-01-10"  # one recorded Bitstamp day -> 1440 minutes
GAPPY = "gappy"  # a separate exchange: the Coinbase minutes of that day minus one, plus a native 1h
MISSING_MINUTE = pd.Timestamp(f"{COINBASE_MINUTES_DAY} 10:30", tz="UTC")

# Windows of the incremental build (end exclusive), around Bitstamp's 2019-03-20..31 outage.
INCREMENTAL_START = pd.Timestamp("2019-03-18", tz="UTC")
WINDOWS = [
    ("2019-03-18 00:00:00", "2019-03-19 00:00:00", None),
    ("2019-03-19 00:00:00", "2019-03-24 00:00:00", ["bitstamp"]),
    ("2019-03-19 00:00:00", "2019-03-24 00:00:00", ["coinbaseexchange"]),
    ("2019-03-24 00:00:00", "2019-04-01 06:00:00", None),  # ends mid-day: the 1d bar is partial
    ("2019-04-01 06:00:00", "2019-04-03 00:00:00", None),  # ... and rebuilt whole here
]
INCREMENTAL_END = pd.Timestamp(WINDOWS[-1][1], tz="UTC")


@pytest.fixture(scope="session")
def recordings(data_dir) -> pd.DataFrame:
    return load_recordings(data_dir)


@pytest.fixture(scope="session")
def candles(data_dir, recordings) -> dict[str, pd.DataFrame]:
    """Every candle the dbt warehouses hold, by role."""
    store = MarketStore(data_dir)
    coinbase_minutes = derived_minutes(store, "coinbaseexchange", "BTC/USD", COINBASE_MINUTES_DAY)
    eth_minutes = derived_minutes(store, "bitstamp", "ETH/USD", ETH_MINUTES_DAY)
    recorded = recorded_candles(recordings)
    native_hour = recorded[
        (recorded.exchange == "coinbaseexchange") & (recorded.ts == MISSING_MINUTE.floor("h"))
    ]
    gappy = pd.concat(
        [coinbase_minutes[coinbase_minutes.ts != MISSING_MINUTE], native_hour], ignore_index=True
    ).assign(exchange=GAPPY)
    parts = {
        "recorded": recorded,
        "coinbase_minutes": coinbase_minutes,
        "eth_minutes": eth_minutes,
        "gappy": gappy,
    }
    parts["all"] = pd.concat(list(parts.values()), ignore_index=True)
    return parts


@pytest.fixture(scope="session")
def full_build(tmp_path_factory, candles) -> DbtProjectRun:
    """All candles, then one `dbt build` without vars: every model, data test and unit test passes."""
    work_dir = tmp_path_factory.mktemp("dbt_full")
    project = DbtProjectRun(work_dir / "warehouse.duckdb", work_dir)
    load_candles(project.db_path, candles["all"])
    project.dbt("build")
    return project


@pytest.fixture(scope="session")
def incremental_build(tmp_path_factory, candles) -> tuple[DbtProjectRun, dict[str, pd.DataFrame]]:
    """History up to INCREMENTAL_START built in full, then WINDOWS one run each, loading each window's
    candles first; finally the last window again. Returns the warehouse and the marts as they were
    before that re-run."""
    work_dir = tmp_path_factory.mktemp("dbt_incremental")
    project = DbtProjectRun(work_dir / "warehouse.duckdb", work_dir)
    every = candles["all"]
    loaded_until = INCREMENTAL_START
    load_candles(project.db_path, every[every.ts < loaded_until])
    project.dbt("run")
    for number, (start, end, exchanges) in enumerate(WINDOWS):
        end_ts = pd.Timestamp(end, tz="UTC")
        if end_ts > loaded_until:
            load_candles(project.db_path, every[(every.ts >= loaded_until) & (every.ts < end_ts)])
            loaded_until = end_ts
        dbt_vars = {"window_start": start, "window_end": end}
        if exchanges is not None:
            dbt_vars["exchanges"] = exchanges
        # The first window runs the data tests (scoped to the window) and unit tests too.
        project.dbt("build" if number == 0 else "run", dbt_vars=dbt_vars)
    before_rerun = {name: project.mart(name) for name in MARTS}
    start, end, _ = WINDOWS[-1]
    project.dbt("run", dbt_vars={"window_start": start, "window_end": end})
    return project, before_rerun
