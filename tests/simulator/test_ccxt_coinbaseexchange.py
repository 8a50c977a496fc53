"""Unmodified ccxt.coinbaseexchange against the simulator over loopback."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from tests.simulator.ccxt_helpers import as_decimal_rows, fetch_all, recorded, recorded_rows, rollup

SYMBOL = "BTC/USD"
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def csv_rows() -> list[tuple]:
    return recorded_rows(recorded("coinbaseexchange", SYMBOL))


@pytest.fixture
def exchange(connect, fresh_sim) -> ccxt.Exchange:
    return connect("coinbaseexchange")


def test_load_markets_lists_exactly_the_recorded_pair(exchange) -> None:
    markets = exchange.load_markets()
    assert list(markets) == [SYMBOL]
    market = markets[SYMBOL]
    assert (market["id"], market["active"], market["precision"]["price"]) == ("BTC-USD", True, 0.01)
    assert set(exchange.currencies) == {"BTC", "USD"}


def test_time_follows_the_clock(exchange, fresh_sim) -> None:
    fresh_sim.set_now("2019-10-17T09:30:00Z")
    assert exchange.fetch_time() == exchange.parse8601("2019-10-17T09:30:00Z")


def test_every_recorded_hour_comes_back_exactly(exchange, csv_rows) -> None:
    first, last = csv_rows[0][0], csv_rows[-1][0]
    served = as_decimal_rows(fetch_all(exchange, SYMBOL, "1h", first, last + HOUR_MS, 300))
    assert served == csv_rows  # 68 pages of 300, values equal to the CSV text


def test_one_page_is_at_most_300_newest_first_on_the_wire(exchange, csv_rows) -> None:
    since = csv_rows[1000][0]
    page = exchange.fetch_ohlcv(SYMBOL, "1h", since, 1000)
    assert len(page) == 300 and as_decimal_rows(page) == csv_rows[1000:1300]
    raw = exchange.publicGetProductsIdCandles({"id": "BTC-USD", "granularity": 3600, "start": since // 1000})
    assert len(raw) == 300 and raw[0][0] > raw[-1][0]  # Coinbase sends newest first; ccxt sorts


def test_minutes_of_a_recorded_hour_aggregate_back_exactly(exchange, csv_rows) -> None:
    hour = csv_rows[-100]
    minutes = as_decimal_rows(exchange.fetch_ohlcv(SYMBOL, "1m", hour[0], 60))
    assert [m[0] for m in minutes] == [hour[0] + i * 60_000 for i in range(60)]
    assert rollup(minutes) == hour[1:]


@pytest.mark.parametrize("timeframe", ["5m", "15m", "6h", "1d"])
def test_other_granularities_are_rollups(exchange, timeframe) -> None:
    since = exchange.parse8601("2019-06-01T00:00:00Z")
    bars = as_decimal_rows(exchange.fetch_ohlcv(SYMBOL, timeframe, since, 8))
    step = exchange.parse_timeframe(timeframe) * 1000
    fine = "1m" if step < HOUR_MS else "1h"
    base = as_decimal_rows(fetch_all(exchange, SYMBOL, fine, since, since + 8 * step, 300))
    per = step // (exchange.parse_timeframe(fine) * 1000)
    assert [b[1:] for b in bars] == [rollup(base[i * per : (i + 1) * per]) for i in range(8)]


def test_unsupported_granularity_and_too_many_candles_are_real_errors(exchange) -> None:
    with pytest.raises(ccxt.ExchangeError, match="Unsupported granularity"):
        exchange.fetch_ohlcv(SYMBOL, "2h", exchange.parse8601("2019-06-01T00:00:00Z"), 10)
    with pytest.raises(ccxt.ExchangeError, match="exceeds 300"):
        exchange.publicGetProductsIdCandles(
            {
                "id": "BTC-USD",
                "granularity": 60,
                "start": "2019-06-01T00:00:00Z",
                "end": "2019-06-02T00:00:00Z",
            }
        )
    with pytest.raises(ccxt.ExchangeError):
        exchange.publicGetProductsIdCandles({"id": "ETH-USD", "granularity": 60})


def test_bar_containing_now_is_served_partial(exchange, fresh_sim, csv_rows) -> None:
    fresh_sim.set_now("2019-10-17T09:30:20Z")  # 30 complete minutes, then 20 s of the 31st
    bars = as_decimal_rows(exchange.fetch_ohlcv(SYMBOL, "1h", csv_rows[-3][0], 10))
    assert bars[:2] == csv_rows[-3:-1]
    partial, full = bars[2], csv_rows[-1]
    assert partial[0] == full[0] and partial[1] == full[1]
    assert partial[5] < full[5] and full[3] <= partial[3] <= partial[2] <= full[2]
    minutes = as_decimal_rows(exchange.fetch_ohlcv(SYMBOL, "1m", full[0], 300))
    assert len(minutes) == 31 and rollup(minutes) == partial[1:]
    trades = exchange.fetch_trades(SYMBOL, limit=100)
    current = [t for t in trades if t["timestamp"] >= minutes[-1][0]]
    assert current and minutes[-1][4] == Decimal(repr(current[-1]["price"]))


def test_trades_are_newest_first_paginated_by_trade_id(exchange, fresh_sim) -> None:
    fresh_sim.set_now("2019-10-17T09:30:00Z")
    now = exchange.parse8601("2019-10-17T09:30:00Z")
    newest = exchange.fetch_trades(SYMBOL, limit=200)
    assert len(newest) == 200 and all(t["timestamp"] <= now for t in newest)
    ids = [int(t["id"]) for t in newest]
    assert ids == sorted(set(ids))
    headers = exchange.last_response_headers
    assert (int(headers["cb-before"]), int(headers["cb-after"])) == (ids[-1], ids[0])
    older = exchange.fetch_trades(SYMBOL, limit=200, params={"after": headers["cb-after"]})
    assert int(older[-1]["id"]) < ids[0] and len(older) == 200
    newer = exchange.fetch_trades(SYMBOL, limit=50, params={"before": older[-1]["id"]})
    assert [t["id"] for t in newer] == [t["id"] for t in newest[:50]]
    assert {t["side"] for t in newest} == {"buy", "sell"}


def test_trades_of_a_minute_aggregate_to_the_served_minute(exchange, fresh_sim) -> None:
    fresh_sim.set_now("2019-10-17T09:30:00Z")
    trades = exchange.fetch_trades(SYMBOL, limit=1000)
    minute = exchange.parse8601("2019-10-17T09:20:00Z")
    inside = [t for t in trades if minute <= t["timestamp"] < minute + 60_000]
    candle = as_decimal_rows(exchange.fetch_ohlcv(SYMBOL, "1m", minute, 1))[0]
    prices = [repr(t["price"]) for t in inside]
    amounts = [t["info"]["size"] for t in inside]
    assert (Decimal(prices[0]), Decimal(prices[-1])) == (candle[1], candle[4])
    assert max(map(Decimal, prices)) == candle[2] and min(map(Decimal, prices)) == candle[3]
    assert sum(map(Decimal, amounts)) == candle[5]
