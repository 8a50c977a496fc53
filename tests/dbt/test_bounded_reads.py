"""Refreshing one day reads a bounded number of rows, whatever the length of history.

The marts' incremental SQL (compiled by dbt with one day's window vars) runs under DuckDB's JSON
profiler with 16x, 4x and 1x the history present; the rows coming out of every table scan (the
window and lookback filters are pushed into the scans) must be the same each time, and equal the
window (ohlcv) or the window plus the 1000-bar lookback (indicators). A model that scanned all
history would read 16x more rows in the first measurement and fail; the control test runs the same
models without window vars and sees their reads grow with history.

What is counted is each scan's output after the pushed-down filters (the profile's
`intermediate_rows` of TABLE_SCAN operators). DuckDB itself skips storage only in whole row groups
of 122,880 rows by min/max, so at this size it still touches one row group; BigQuery prunes the
partitions (raw.candles by candle_date, the marts by day of ts) that the same filters select.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests.dbt.helpers import MARTS, DbtProjectRun, load_candles

WINDOW_START = pd.Timestamp("2024-06-01", tz="UTC")
WINDOW_END = pd.Timestamp("2024-06-02", tz="UTC")
BASE_BARS = 1200  # the 1x history before the window: more than the 1000-bar lookback
FACTORS = (16, 4, 1)
LOOKBACK_BARS = 1000


def synthetic_candles(timeframe: str, step: pd.Timedelta, bars: int, seed: int) -> pd.DataFrame:
    """A positive random walk of `bars` candles ending with the window's last candle."""
    rng = np.random.default_rng(seed)
    ts = WINDOW_END - step * np.arange(bars, 0, -1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, bars)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = 1 + rng.uniform(0, 0.01, bars)
    return pd.DataFrame(
        {
            "exchange": "synth",
            "symbol": "BTC/USD",
            "timeframe": timeframe,
            "ts": ts,
            "open": open_.round(2),
            "high": (np.maximum(open_, close) * spread).round(2) + 0.01,
            "low": (np.minimum(open_, close) / spread).round(2) - 0.01,
            "close": close.round(2),
            "volume": rng.uniform(0, 50, bars).round(8),
        }
    )


def scanned_rows(db_path, sql: str, profile_path) -> tuple[int, pd.DataFrame]:
    """Rows output by every table scan of `sql` (DuckDB JSON profile), and the query's result."""
    with duckdb.connect(str(db_path), read_only=True) as connection:
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute("PRAGMA enable_profiling = 'json'")
        connection.execute(f"PRAGMA profiling_output = '{profile_path}'")
        result = connection.execute(sql).df()
        connection.execute("PRAGMA disable_profiling")
    profile = json.loads(profile_path.read_text())

    def scans(node: dict) -> int:
        own = node.get("intermediate_rows", 0) if node.get("type") == "TABLE_SCAN" else 0
        return own + sum(scans(child) for child in node.get("children", []))

    total = sum(scans(node) for node in profile["operator"])
    assert total > 0, "the profile holds no table scan: the profiler's JSON layout changed"
    return total, result.sort_values(["exchange", "symbol", "ts"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def measurements(tmp_path_factory) -> dict[tuple[str, str], dict[int, tuple[int, pd.DataFrame]]]:
    work_dir = tmp_path_factory.mktemp("dbt_bounded")
    project = DbtProjectRun(work_dir / "warehouse.duckdb", work_dir)
    # One market served in two timeframes, as exchanges do: 1h candles for the hourly history and
    # 1d candles for the (24x longer) daily one, so every mart has a full lookback at every factor.
    most = max(FACTORS) * BASE_BARS
    load_candles(
        project.db_path,
        pd.concat(
            [
                synthetic_candles("1h", pd.Timedelta(hours=1), most + 24, seed=1),
                synthetic_candles("1d", pd.Timedelta(days=1), most + 1, seed=2),
            ]
        ),
    )
    project.dbt("run")
    compiled_dir = work_dir / "target/compiled/cryptopipe/models/marts"
    sql: dict[tuple[str, str], str] = {}
    # "window": one day's incremental SQL; "everything": the same model with no window vars, the
    # control showing that the measurement does see a read of all history.
    for mode, dbt_vars in [
        ("window", {"window_start": str(WINDOW_START.date()), "window_end": str(WINDOW_END.date())}),
        ("everything", None),
    ]:
        project.dbt("compile", "--select", *MARTS, "--exclude", "resource_type:unit_test", dbt_vars=dbt_vars)
        sql |= {(name, mode): (compiled_dir / f"{name}.sql").read_text() for name in MARTS}
    out: dict[tuple[str, str], dict[int, tuple[int, pd.DataFrame]]] = {key: {} for key in sql}
    for factor in FACTORS:  # shrink the history in place: 16x, then 4x, then 1x
        hourly_cut = WINDOW_START - pd.Timedelta(hours=factor * BASE_BARS)
        daily_cut = WINDOW_START - pd.Timedelta(days=factor * BASE_BARS)
        project.execute(
            f"delete from raw.candles where (timeframe = '1h' and ts < '{hourly_cut}') "
            f"or (timeframe = '1d' and ts < '{daily_cut}')"
        )
        for mart in MARTS:
            cut = hourly_cut if mart.endswith("_1h") else daily_cut
            project.execute(f"delete from marts.{mart} where ts < '{cut}'")
        for (name, mode), text in sql.items():
            profile = work_dir / f"{name}-{mode}-{factor}.json"
            out[(name, mode)][factor] = scanned_rows(project.db_path, text, profile)
    return out


@pytest.mark.parametrize(
    "mart, expected_rows",
    [
        ("ohlcv_1h", 24 + 1),  # the window's 24 hourly candles + its daily one (dropped after the scan)
        ("ohlcv_1d", 24 + 1),
        ("indicators_1h", LOOKBACK_BARS + 24),  # 1000 hours of lookback + the 24 hours written
        ("indicators_1d", LOOKBACK_BARS + 1),
    ],
)
def test_one_day_refresh_reads_the_same_rows_whatever_the_history(measurements, mart, expected_rows):
    counts = {factor: rows for factor, (rows, _) in measurements[(mart, "window")].items()}
    assert counts == dict.fromkeys(FACTORS, expected_rows)
    results = [result for _, result in measurements[(mart, "window")].values()]
    assert len(results[0]) > 0
    for result in results[1:]:
        pd.testing.assert_frame_equal(result, results[0], check_exact=True)


@pytest.mark.parametrize("mart", MARTS)
def test_the_measurement_sees_a_read_of_all_history(measurements, mart):
    """Control: the same model without window vars reads more rows the more history there is."""
    counts = [measurements[(mart, "everything")][factor][0] for factor in FACTORS]
    assert counts[0] > counts[1] > counts[2] > 0
