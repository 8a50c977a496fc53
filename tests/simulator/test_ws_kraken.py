"""The Kraken venue (a Coinbase recording served through Kraken's API): REST and the v2 ohlc stream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import ccxt
import pytest

from cryptopipe_dagster.lib.exchanges.url_override import point_exchange_at
from cryptopipe_dagster.simulator import series
from cryptopipe_dagster.simulator.server import SimulatorServer
from cryptopipe_dagster.simulator.venues.kraken import Kraken, trade_ns
from tests.simulator.ccxt_helpers import as_decimal_rows, fetch_all, recorded, recorded_rows, rollup
from tests.simulator.conftest import DATA_DIR, SEED
from tests.simulator.ws_helpers import SYMBOL, pro, stopped

HOUR_MS = 3_600_000


@pytest.fixture
def kraken(connect, fresh_sim) -> ccxt.Exchange:
    return connect("kraken")


def test_markets_show_btc_usd_with_kraken_ids(kraken) -> None:
    markets = kraken.load_markets()
    assert list(markets) == [SYMBOL]  # Kraken's XBT/ZUSD maps back to BTC/USD, never USDT
    market = markets[SYMBOL]
    assert (market["id"], market["base"], market["quote"]) == ("XXBTZUSD", "BTC", "USD")
    assert (market["info"]["altname"], market["info"]["wsname"]) == ("XBTUSD", "XBT/USD")
    assert market["precision"] == {"amount": 1e-08, "price": 0.01} and market["active"]
    assert set(kraken.currencies) == {"BTC", "USD"}


def test_time_follows_the_clock(kraken, fresh_sim) -> None:
    fresh_sim.set_now("2019-10-17T09:30:00Z")
    assert kraken.fetch_time() == kraken.parse8601("2019-10-17T09:30:00Z")


def test_every_recorded_hour_comes_back_exactly(kraken) -> None:
    csv_rows = recorded_rows(recorded("coinbaseexchange", SYMBOL))
    first, last = csv_rows[0][0], csv_rows[-1][0]
    served = as_decimal_rows(fetch_all(kraken, SYMBOL, "1h", first, last + HOUR_MS, 720))
    assert served == csv_rows  # pages of 720, equal to the Coinbase CSV text


def test_ohlc_has_krakens_shape(kraken) -> None:
    since = kraken.parse8601("2019-06-01T00:00:00Z") // 1000
    raw = kraken.publicGetOHLC({"pair": "XXBTZUSD", "interval": 60, "since": since})
    rows = raw["result"]["XXBTZUSD"]
    assert raw["error"] == [] and len(rows) == 720 and rows[0][0] == since + 3600  # after `since`
    assert all(len(r) == 8 and isinstance(r[1], str) and isinstance(r[7], int) for r in rows)
    assert raw["result"]["last"] == rows[-1][0]
    minutes = kraken.publicGetOHLC({"pair": "XBTUSD", "interval": 1, "since": since})["result"]["XXBTZUSD"]
    hour = [r for r in minutes if since + 3600 <= r[0] < since + 7200]
    trades = kraken.fetch_trades(SYMBOL, (since + 3600) * 1000, 1000)
    in_hour = [t for t in trades if t["timestamp"] < (since + 7200) * 1000]
    assert sum(r[7] for r in hour) == len(in_hour) == rows[0][7]  # `count` is the derived trades
    with pytest.raises(ccxt.BadRequest):
        kraken.publicGetOHLC({"pair": "XXBTZUSD", "interval": 2})
    with pytest.raises(ccxt.ExchangeError, match="Unknown asset pair"):
        kraken.publicGetOHLC({"pair": "XETHZUSD"})


def test_trades_page_forward_with_the_nanosecond_cursor(kraken, store) -> None:
    since_ms = kraken.parse8601("2019-10-16T00:00:30Z")
    first = kraken.publicGetTrades({"pair": "XXBTZUSD", "since": since_ms // 1000, "count": 500})["result"]
    second = kraken.publicGetTrades({"pair": "XXBTZUSD", "since": first["last"], "count": 500})["result"]
    rows = first["XXBTZUSD"] + second["XXBTZUSD"]
    ids = [r[6] for r in rows]
    assert len(rows) == 1000 and ids == sorted(set(ids))  # no overlap, no gap at the cursor
    market = Kraken(store, None).markets[0]
    expected = series.trades_newer_than(market, int(ids[0]) - 1, 1000, since_ms + 10 * HOUR_MS)
    assert ids == expected.trade_id.tolist()
    assert first["last"] == str(trade_ns(expected.select(slice(499, 500)))[0])
    parsed = kraken.fetch_trades(SYMBOL, since_ms, 3)
    assert [int(t["id"]) for t in parsed] == ids[:3] and parsed[0]["timestamp"] >= since_ms
    assert [repr(t["price"]) for t in parsed] == [repr(float(r[0])) for r in rows[:3]]


@pytest.fixture(scope="module")
def hour_replay() -> Iterator[SimulatorServer]:
    """One recorded hour streamed at max speed; the clock frozen at its start."""
    start = "2019-10-17T05:00:00Z"
    with SimulatorServer(
        DATA_DIR,
        seed=SEED,
        now=start,
        stream_speed="max",
        stream_start=start,
        stream_stop_after="2019-10-17T06:00:00Z",
    ) as server:
        yield server


def test_watch_ohlcv_candles_equal_the_derived_minutes_and_the_hour(hour_replay) -> None:
    async def run() -> list[list]:
        exchange = pro("kraken", hour_replay.base_url)
        try:
            await asyncio.wait_for(exchange.watch_ohlcv(SYMBOL, "1m"), 10)
            done = stopped(hour_replay, "kraken")
            for _ in range(200):
                if done():
                    break
                await asyncio.sleep(0.05)
            # What arrives without a pending watch still lands in the cache: wait for the last minute.
            last_minute = ccxt.Exchange.parse8601("2019-10-17T05:59:00Z")
            for _ in range(200):
                if any(c[0] == last_minute for c in exchange.ohlcvs[SYMBOL]["1m"]):
                    break
                await asyncio.sleep(0.05)
            return [list(c) for c in exchange.ohlcvs[SYMBOL]["1m"]]
        finally:
            await exchange.close()

    streamed = asyncio.run(run())
    hour = recorded_rows(recorded("coinbaseexchange", SYMBOL))
    start = ccxt.Exchange.parse8601("2019-10-17T05:00:00Z")
    bar = next(row for row in hour if row[0] == start)
    rest = ccxt.kraken({"enableRateLimit": False})
    point_exchange_at(rest, hour_replay.base_url)
    minutes = as_decimal_rows(rest.fetch_ohlcv(SYMBOL, "1m", start, 60))
    traded = [m for m in minutes if m[5] > 0]  # a minute without trades has no stream update
    live = as_decimal_rows([c for c in streamed if c[0] >= start])
    assert live == traded
    assert len(minutes) == 60 and rollup(minutes) == bar[1:]  # and the minutes make the recorded hour
    assert rollup(live) == bar[1:]  # so do the streamed ones (every minute of this hour traded)
    # The subscription's snapshot: the newest 60 minutes up to the replay start (the open one empty).
    before = as_decimal_rows(rest.fetch_ohlcv(SYMBOL, "1m", start - 59 * 60_000, 59))
    assert as_decimal_rows([c for c in streamed if c[0] < start]) == [m for m in before if m[5] > 0]
    status = hour_replay.stream_status()["feeds"][0]
    channel = status["channels"]["ohlc-1"]
    assert channel["messages"] == status["emitted"] + len(traded)  # one update per trade + each close
    assert Decimal(repr(streamed[-1][4])) == bar[4]
