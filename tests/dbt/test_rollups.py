"""OHLCV rollups: finest source per bar, exact values, completeness, and no dropped or invented bars."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.dbt.conftest import COINBASE_MINUTES_DAY, ETH_MINUTES_DAY, GAPPY, MISSING_MINUTE
from tests.dbt.helpers import aggregate_bars

OHLCV = ["open", "high", "low", "close", "volume"]


def recorded_bars(recordings: pd.DataFrame, exchange: str, symbol: str | None = None) -> pd.DataFrame:
    rows = recordings[(recordings.exchange == exchange) & ((symbol is None) | (recordings.symbol == symbol))]
    return rows[["exchange", "symbol", "ts", *OHLCV]].sort_values(["exchange", "symbol", "ts"])


def assert_same_bars(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Exactly equal keys and OHLCV values (floats compared bit for bit)."""
    columns = ["exchange", "symbol", "ts", *OHLCV]
    pd.testing.assert_frame_equal(
        actual[columns].reset_index(drop=True),
        expected[columns].reset_index(drop=True),
        check_exact=True,
        check_dtype=False,
    )


def test_hourly_mart_equals_the_recording_including_hours_rebuilt_from_minutes(full_build, recordings):
    hourly = full_build.mart("ohlcv_1h", "exchange = 'coinbaseexchange'")
    assert len(hourly) == 20_111
    assert_same_bars(hourly, recorded_bars(recordings, "coinbaseexchange"))
    from_minutes = hourly.ts.dt.strftime("%Y-%m-%d") == COINBASE_MINUTES_DAY
    assert from_minutes.sum() == 24
    assert (hourly.loc[from_minutes, "source_timeframe"] == "1m").all()
    assert (hourly.loc[from_minutes, "source_candles"] == 60).all()
    assert (hourly.loc[~from_minutes, "source_timeframe"] == "1h").all()
    assert hourly.is_complete.all()


def test_daily_mart_equals_the_recording_and_keeps_the_outage_gap(full_build, recordings):
    daily = full_build.mart("ohlcv_1d", "exchange = 'bitstamp'")
    assert_same_bars(daily, recorded_bars(recordings, "bitstamp"))
    assert daily.is_complete.all()
    outage = daily[(daily.ts >= "2019-03-20") & (daily.ts < "2019-04-01")]
    assert outage.empty  # a real outage stays a gap: no bar is invented
    rebuilt = daily[daily.ts.dt.strftime("%Y-%m-%d") == ETH_MINUTES_DAY].set_index("symbol")
    assert rebuilt.loc["ETH/USD", "source_timeframe"] == "1m"
    assert rebuilt.loc["ETH/USD", "source_candles"] == 1440
    assert (rebuilt.drop(index="ETH/USD").source_timeframe == "1d").all()


def test_daily_bars_roll_up_exactly_from_hours_and_minutes(full_build, candles):
    """Every Coinbase day equals the pandas rollup of its recorded hours (one day is built from 1m);
    Bitstamp ETH's minute-built hours add up to its recorded day."""
    daily = full_build.mart("ohlcv_1d", "exchange = 'coinbaseexchange'")
    hours = candles["recorded"][candles["recorded"].exchange == "coinbaseexchange"]
    expected = aggregate_bars(hours, "D")
    assert_same_bars(daily, expected)
    assert (daily.is_complete == (expected.source_candles == 24)).all()
    first_day = daily.iloc[0]
    assert first_day.ts == pd.Timestamp("2017-07-01", tz="UTC") and not first_day.is_complete  # from 11:00
    minute_day = daily[daily.ts.dt.strftime("%Y-%m-%d") == COINBASE_MINUTES_DAY].iloc[0]
    assert (minute_day.source_timeframe, minute_day.source_candles) == ("1m", 1440)
    assert minute_day.is_complete

    on_eth_day = f"cast(ts as date) = '{ETH_MINUTES_DAY}'"
    eth_hours = full_build.mart("ohlcv_1h", f"exchange = 'bitstamp' and {on_eth_day}")
    assert len(eth_hours) == 24 and (eth_hours.source_timeframe == "1m").all() and eth_hours.is_complete.all()
    eth_day = full_build.mart("ohlcv_1d", f"symbol = 'ETH/USD' and {on_eth_day}")
    assert_same_bars(eth_day, aggregate_bars(eth_hours, "D"))


@pytest.mark.parametrize("mart, bar", [("ohlcv_1h", "h"), ("ohlcv_1d", "D")])
def test_missing_minute_makes_bars_incomplete(full_build, candles, mart, bar):
    """The finest timeframe present wins even when incomplete: the 10:00 hour has 59 minutes and a
    complete native 1h candle, and is built from the 59 minutes, flagged incomplete."""
    bars = full_build.mart(mart, f"exchange = '{GAPPY}'")
    minutes = candles["gappy"][candles["gappy"].timeframe == "1m"]
    expected = aggregate_bars(minutes, bar)
    assert_same_bars(bars, expected)
    assert (bars.source_timeframe == "1m").all()
    incomplete = bars[~bars.is_complete]
    assert list(incomplete.ts) == [MISSING_MINUTE.floor(bar)]
    assert incomplete.source_candles.iloc[0] == (59 if bar == "h" else 1439)
    assert bars.is_complete.sum() == len(bars) - 1
