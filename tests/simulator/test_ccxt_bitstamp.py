"""Unmodified ccxt.bitstamp against the simulator over loopback."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from tests.simulator.ccxt_helpers import as_decimal_rows, fetch_all, recorded, recorded_rows, rollup

DAY_MS = 86_400_000
SYMBOLS = ["BTC/USD", "ETH/USD", "LTC/USD"]


@pytest.fixture
def exchange(connect, fresh_sim) -> ccxt.Exchange:
    return connect("bitstamp")


def test_load_markets_lists_exactly_the_recorded_pairs(exchange) -> None:
    markets = exchange.load_markets()
    assert sorted(markets) == SYMBOLS
    assert [markets[s]["id"] for s in SYMBOLS] == ["btcusd", "ethusd", "ltcusd"]
    assert all(m["active"] and m["spot"] for m in markets.values())
    assert set(exchange.currencies) == {"BTC", "ETH", "LTC", "USD"}


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_every_recorded_day_comes_back_exactly_with_the_outage_as_a_gap(exchange, symbol) -> None:
    expected = recorded_rows(recorded("bitstamp", symbol))
    served = as_decimal_rows(
        fetch_all(exchange, symbol, "1d", expected[0][0], expected[-1][0] + DAY_MS, 1000)
    )
    assert served == expected
    outage = (exchange.parse8601("2019-03-20T00:00:00Z"), exchange.parse8601("2019-04-01T00:00:00Z"))
    assert not [row for row in served if outage[0] <= row[0] < outage[1]]


def test_string_values_and_second_timestamps_on_the_wire(exchange) -> None:
    raw = exchange.publicGetOhlcPair({"pair": "btcusd", "step": 86400, "limit": 3, "start": 1546300800})
    assert raw["data"]["pair"] == "BTC/USD"
    rows = raw["data"]["ohlc"]
    assert [r["timestamp"] for r in rows] == ["1546300800", "1546387200", "1546473600"]  # oldest first
    assert all(isinstance(value, str) for row in rows for value in row.values())


def test_minutes_of_a_recorded_day_aggregate_back_exactly(exchange) -> None:
    day = recorded_rows(recorded("bitstamp", "ETH/USD"))[-30]
    minutes = as_decimal_rows(fetch_all(exchange, "ETH/USD", "1m", day[0], day[0] + DAY_MS, 1000))
    assert len(minutes) == 1440 and rollup(minutes) == day[1:]


def test_coarser_steps_roll_up_and_the_gap_stays(exchange) -> None:
    three_days = 3 * DAY_MS
    since = exchange.parse8601("2019-03-13T00:00:00Z") // three_days * three_days  # Bitstamp aligns steps
    days = as_decimal_rows(exchange.fetch_ohlcv("BTC/USD", "1d", since, 30))
    # ccxt maps its "1w" to Bitstamp's largest step, 259200 s (3 days); ask for it directly.
    raw = exchange.publicGetOhlcPair({"pair": "btcusd", "step": 259200, "limit": 10, "start": since // 1000})
    threes = as_decimal_rows(exchange.parse_ohlcvs(raw["data"]["ohlc"]))
    buckets: dict[int, list] = {}
    for row in days:
        buckets.setdefault(row[0] - row[0] % three_days, []).append(row)
    assert [r[0] for r in threes] == sorted(buckets)  # buckets inside the outage are absent
    assert [r[1:] for r in threes] == [rollup(rows) for _, rows in sorted(buckets.items())]
    hours = as_decimal_rows(
        exchange.fetch_ohlcv("BTC/USD", "1h", exchange.parse8601("2019-03-19T00:00:00Z"), 1000)
    )
    assert hours[23][0] == exchange.parse8601("2019-03-19T23:00:00Z")
    assert hours[24][0] == exchange.parse8601("2019-04-01T00:00:00Z")  # no invented hours in the outage


def test_invalid_step_and_limit_are_real_errors(exchange) -> None:
    with pytest.raises(ccxt.ExchangeError, match="step"):
        exchange.fetch_ohlcv("BTC/USD", "5h", exchange.parse8601("2019-01-01T00:00:00Z"), 10)
    with pytest.raises(ccxt.ExchangeError, match="limit"):
        exchange.publicGetOhlcPair({"pair": "btcusd", "step": 60, "limit": 1001})


def test_day_containing_now_is_served_partial(exchange, fresh_sim) -> None:
    fresh_sim.set_now("2020-01-17T12:00:00Z")
    full = recorded_rows(recorded("bitstamp", "BTC/USD"))[-1]
    bars = as_decimal_rows(exchange.fetch_ohlcv("BTC/USD", "1d", full[0] - DAY_MS, 5))
    assert len(bars) == 2 and bars[1][0] == full[0] and bars[1][1] == full[1]
    assert bars[1][5] < full[5] and full[3] <= bars[1][3] <= bars[1][2] <= full[2]
    minutes = as_decimal_rows(exchange.fetch_ohlcv("BTC/USD", "1m", full[0], 1000))
    assert len(minutes) == 720 and rollup(minutes) == bars[1][1:]


def test_transactions_cover_the_last_hour_up_to_now(exchange, fresh_sim) -> None:
    fresh_sim.set_now("2019-06-01T12:00:00Z")
    now = exchange.parse8601("2019-06-01T12:00:00Z")
    trades = exchange.fetch_trades("ETH/USD")
    assert trades and all(now - 3_600_000 < t["timestamp"] <= now for t in trades)
    assert {t["side"] for t in trades} == {"buy", "sell"}
    day = exchange.fetch_trades("ETH/USD", params={"time": "day"})
    assert len(day) > len(trades) and day[0]["timestamp"] > now - DAY_MS
    minute = exchange.parse8601("2019-06-01T11:00:00Z")
    inside = [t for t in trades if minute <= t["timestamp"] < minute + 60_000]
    candle = as_decimal_rows(exchange.fetch_ohlcv("ETH/USD", "1m", minute, 1))[0]
    amounts = [Decimal(t["info"]["amount"]) for t in inside]
    prices = [Decimal(t["info"]["price"]) for t in inside]
    assert (prices[0], max(prices), min(prices), prices[-1], sum(amounts)) == candle[1:]
    with pytest.raises(ccxt.ExchangeError):
        exchange.fetch_trades("ETH/USD", params={"time": "week"})
