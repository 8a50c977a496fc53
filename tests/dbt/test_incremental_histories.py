"""Property: for any history, windows run in any order (and late 1m candles from the live path)
leave every mart equal to a full refresh of the same raw candles, exactly.

Histories are generated: per market, segments of hourly candles separated by holes, some longer
than the 1000-bar indicator lookback (an exchange outage), and two markets of different lengths so
the per-market lookback differs. The raw candles arrive window by window (whole UTC days, run in a
random order, each window's candles loaded just before its run, as Dagster runs partitions), then a
live hour of 1m candles lands and its day is run again. A full refresh of a copy of the final raw
table is the reference. Each example costs several dbt runs, so `make test` runs a few examples;
CRYPTOPIPE_PROPERTY_EXAMPLES raises that.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.dbt.helpers import MARTS, DbtProjectRun, load_candles

EXAMPLES = int(os.environ.get("CRYPTOPIPE_PROPERTY_EXAMPLES", "2"))
ORIGIN = pd.Timestamp("2024-01-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)

segment = st.tuples(
    st.integers(min_value=1, max_value=900),  # bars in the segment
    st.integers(min_value=1, max_value=2500),  # hours missing after it (> 1000: longer than the lookback)
)
market_history = st.lists(segment, min_size=1, max_size=3)


def hourly_candles(
    symbol: str, segments: list[tuple[int, int]], offset_hours: int, seed: int
) -> pd.DataFrame:
    """Hourly candles of a positive random walk, laid out as segments separated by holes."""
    hours, at = [], offset_hours
    for bars, hole in segments:
        hours.extend(range(at, at + bars))
        at += bars + hole
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(hours))))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = 1 + rng.uniform(0, 0.01, len(hours))
    return pd.DataFrame(
        {
            "exchange": "synth",
            "symbol": symbol,
            "timeframe": "1h",
            "ts": ORIGIN + HOUR * np.array(hours),
            "open": open_.round(2),
            "high": (np.maximum(open_, close) * spread).round(2) + 0.01,
            "low": (np.minimum(open_, close) / spread).round(2) - 0.01,
            "close": close.round(2),
            "volume": rng.uniform(0, 50, len(hours)).round(8),
        }
    )


def live_minutes(hour_candle: pd.Series, seed: int) -> pd.DataFrame:
    """The 1m candles of one hour as the live path writes them (they win over the 1h candle)."""
    rng = np.random.default_rng(seed)
    close = hour_candle.open * np.exp(np.cumsum(rng.normal(0, 0.001, 60)))
    open_ = np.concatenate([[hour_candle.open], close[:-1]])
    return pd.DataFrame(
        {
            "exchange": hour_candle.exchange,
            "symbol": hour_candle.symbol,
            "timeframe": "1m",
            "ts": hour_candle.ts + pd.Timedelta(minutes=1) * np.arange(60),
            "open": open_.round(2),
            "high": (np.maximum(open_, close) + 0.05).round(2),
            "low": (np.minimum(open_, close) - 0.05).round(2),
            "close": close.round(2),
            "volume": rng.uniform(0, 1, 60).round(8),
        }
    )


def day_windows(
    first: pd.Timestamp, last: pd.Timestamp, cuts: list[float]
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """[first day, last day + 1) cut into whole-day windows at the given fractions."""
    start, end = first.floor("D"), last.floor("D") + DAY
    days = int((end - start) / DAY)
    inner = sorted({start + DAY * int(days * cut) for cut in cuts} - {start, end})
    bounds = [start, *inner, end]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def run_window(project: DbtProjectRun, start: pd.Timestamp, end: pd.Timestamp) -> None:
    project.dbt("run", dbt_vars={"window_start": str(start), "window_end": str(end), "exchanges": ["synth"]})


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no state between runs: the examples come from the seed alone
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each step is several dbt runs
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    btc=market_history,
    eth=market_history,
    eth_offset=st.integers(min_value=0, max_value=1500),
    cuts=st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=4),
    order=st.randoms(use_true_random=False),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_windows_in_any_order_equal_a_full_refresh(tmp_path_factory, btc, eth, eth_offset, cuts, order, seed):
    work_dir = tmp_path_factory.mktemp("dbt_history")
    project = DbtProjectRun(work_dir / "warehouse.duckdb", work_dir)
    candles = pd.concat(
        [hourly_candles("BTC/USD", btc, 0, seed), hourly_candles("ETH/USD", eth, eth_offset, seed + 1)],
        ignore_index=True,
    )
    windows = day_windows(candles.ts.min(), candles.ts.max(), cuts)
    order.shuffle(windows)
    # The first window builds the marts from nothing; every later one is an incremental run.
    for start, end in windows:
        load_candles(project.db_path, candles[(candles.ts >= start) & (candles.ts < end)])
        run_window(project, start, end)
    # The live path: 1m candles of the newest hour land after the backfill, then its day runs again.
    newest = candles.loc[candles.ts.idxmax()]
    minutes = live_minutes(newest, seed)
    load_candles(project.db_path, minutes)
    run_window(project, newest.ts.floor("D"), newest.ts.floor("D") + DAY)

    reference = DbtProjectRun(work_dir / "reference.duckdb", work_dir / "reference")
    shutil.copy(project.db_path, reference.db_path)
    reference.dbt("run", "--full-refresh")
    for mart in MARTS:
        incremental, full = project.mart(mart), reference.mart(mart)
        assert len(full) > 0, mart
        pd.testing.assert_frame_equal(incremental, full, check_exact=True, obj=mart)
