"""The indicator marts against TA-Lib (the C library) on the real recorded series.

TA-Lib runs over the rows the OHLCV mart stores for the series, which is the marts' gap rule: the
Bitstamp series run straight across the 2019-03-20..31 outage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

SERIES = [
    ("1h", "coinbaseexchange", "BTC/USD"),
    ("1d", "bitstamp", "BTC/USD"),
    ("1d", "bitstamp", "ETH/USD"),
    ("1d", "bitstamp", "LTC/USD"),
    ("1d", "coinbaseexchange", "BTC/USD"),
]
# Non-recursive indicators: 1e-9 relative everywhere.
WINDOWED = ("sma_20", "bb_upper", "bb_middle", "bb_lower", "vwap_24")
# Recursive ones: 1e-6 relative from 10 x period bars after the series starts.
RECURSIVE_FROM = {
    "ema_20": 200,
    "rsi_14": 140,
    "atr_14": 140,
    "macd": 260,
    "macd_signal": 260,
    "macd_hist": 260,
}


def reference(bars: pd.DataFrame) -> dict[str, np.ndarray]:
    """TA-Lib's values (and the rolling VWAP, which TA-Lib lacks) over the stored bars."""
    high, low, close, volume = (bars[c].to_numpy(dtype=float) for c in ("high", "low", "close", "volume"))
    out = {
        "sma_20": talib.SMA(close, 20),
        "ema_20": talib.EMA(close, 20),
        "rsi_14": talib.RSI(close, 14),
        "atr_14": talib.ATR(high, low, close, 14),
    }
    out["macd"], out["macd_signal"], out["macd_hist"] = talib.MACD(close, 12, 26, 9)
    out["bb_upper"], out["bb_middle"], out["bb_lower"] = talib.BBANDS(close, 20, 2, 2, 0)
    typical = (high + low + close) / 3
    price_volume = pd.Series(typical * volume).rolling(24).sum().to_numpy()
    traded = pd.Series(volume).rolling(24).sum().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["vwap_24"] = np.where(traded > 0, price_volume / traded, np.nan)
    return out


def relative_error(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(actual == expected, 0.0, np.abs(actual - expected) / np.abs(expected))


@pytest.fixture(scope="module")
def measured(full_build) -> dict[tuple, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per series: indicator -> (mart values, reference values), aligned bar by bar."""
    out = {}
    for timeframe, exchange, symbol in SERIES:
        where = f"exchange = '{exchange}' and symbol = '{symbol}'"
        bars = full_build.mart(f"ohlcv_{timeframe}", where)
        marts = full_build.mart(f"indicators_{timeframe}", where)
        assert list(marts.ts) == list(bars.ts)
        expected = reference(bars)
        out[(timeframe, exchange, symbol)] = {
            name: (marts[name].to_numpy(dtype=float), values) for name, values in expected.items()
        }
    return out


@pytest.mark.parametrize("series", SERIES, ids=["-".join(s) for s in SERIES])
def test_indicators_match_talib(measured, series):
    for name, (actual, expected) in measured[series].items():
        # Null exactly where TA-Lib is NaN (recursive ones included: null until TA-Lib's first value).
        np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=name)
        defined = ~np.isnan(expected)
        errors = relative_error(actual[defined], expected[defined])
        if name in WINDOWED:
            assert errors.max(initial=0) <= 1e-9, (name, errors.max())
        else:
            late = np.flatnonzero(defined) >= RECURSIVE_FROM[name]
            assert errors[late].max(initial=0) <= 1e-6, (name, errors[late].max())


def test_bitstamp_series_run_across_the_outage(full_build):
    """The bar after the outage follows the bar before it: the series is not reset by the gap."""
    daily = full_build.mart("indicators_1d", "exchange = 'bitstamp' and symbol = 'BTC/USD'")
    at = daily.set_index("ts")
    before, after = pd.Timestamp("2019-03-19", tz="UTC"), pd.Timestamp("2019-04-01", tz="UTC")
    position = list(at.index).index(before)
    assert at.index[position + 1] == after
    assert at.loc[after, ["sma_20", "ema_20", "rsi_14", "macd_signal", "atr_14"]].notna().all()


def test_report_max_relative_errors(measured):
    """Not an assertion beyond the ones above: prints the measured accuracy (pytest -s)."""
    worst: dict[str, float] = {}
    for per_series in measured.values():
        for name, (actual, expected) in per_series.items():
            defined = ~np.isnan(expected)
            worst[name] = max(worst.get(name, 0.0), relative_error(actual[defined], expected[defined]).max())
    print("\nmax relative error vs TA-Lib over every defined bar of", len(measured), "series:")
    for name, error in worst.items():
        print(f"  {name:<12} {error:.1e}")
    assert all(error < 1e-6 for error in worst.values())
