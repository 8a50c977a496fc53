"""Derived markets (S001/USD, ...): listed, streamed, paged and aggregated exactly like the recorded ones."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import ccxt
import pytest
import requests

from cryptopipe_dagster.lib.edge.symbols import canonical_symbol
from cryptopipe_dagster.lib.exchanges.url_override import point_exchange_at
from cryptopipe_dagster.simulator import series
from cryptopipe_dagster.simulator.derived import derived_markets, streamable_markets
from cryptopipe_dagster.simulator.server import SimulatorServer
from tests.simulator.ccxt_helpers import as_decimal_rows, recorded, recorded_rows
from tests.simulator.conftest import DATA_DIR, SEED
from tests.simulator.ws_helpers import EXCHANGES, START, pro, until_cached, watch_until

DERIVED = 120
RECORDED = [
    "coinbaseexchange:BTC/USD",
    "bitstamp:BTC/USD",
    "bitstamp:ETH/USD",
    "bitstamp:LTC/USD",
    "kraken:BTC/USD",
]
START_MS = ccxt.Exchange.parse8601(START)
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def derived_sim() -> Iterator[SimulatorServer]:
    """Clock frozen at START (REST shows nothing the replay has not reached), replays at `max`."""
    with SimulatorServer(
        DATA_DIR, seed=SEED, now=START, stream_speed="max", derived_markets=DERIVED
    ) as server:
        yield server


@pytest.fixture
def replay(derived_sim: SimulatorServer) -> Iterator[SimulatorServer]:
    yield derived_sim
    derived_sim.set_stream("max", START)


def rest(sim: SimulatorServer, exchange_id: str) -> ccxt.Exchange:
    exchange = getattr(ccxt, exchange_id)({"enableRateLimit": False, "timeout": 5000})
    point_exchange_at(exchange, sim.base_url)
    return exchange


def derived_of(exchange_id: str, count: int, skip: int = 0) -> list[str]:
    """Symbols of `count` derived markets served by one venue, after the first `skip` of them."""
    markets = streamable_markets(len(RECORDED) + DERIVED, DATA_DIR)[len(RECORDED) :]
    symbols = [m.split(":", 1)[1] for m in markets if m.startswith(f"{exchange_id}:")]
    return symbols[skip : skip + count]


def test_streamable_markets_are_the_recorded_ones_then_derived_ones() -> None:
    markets = streamable_markets(100, DATA_DIR)
    assert len(markets) == 100 and markets[:5] == RECORDED
    assert markets[5:8] == ["coinbaseexchange:S001/USD", "bitstamp:S002/USD", "kraken:S003/USD"]
    assert streamable_markets(12, DATA_DIR) == markets[:12]  # market i never depends on the count
    for market in markets:
        exchange, symbol = market.split(":", 1)
        assert canonical_symbol(symbol) == symbol and exchange in EXCHANGES
    with pytest.raises(ValueError, match="between 0 and 999"):
        streamable_markets(5 + 1000, DATA_DIR)


def test_load_markets_lists_every_streamable_market_when_asked(derived_sim) -> None:
    listed = []
    for exchange_id in EXCHANGES:
        exchange = rest(derived_sim, exchange_id)
        for symbol, market in exchange.load_markets().items():
            assert canonical_symbol(market["id"]) == symbol  # S001-USD, s002usd, S003USD
            listed.append(f"{exchange_id}:{symbol}")
    expected = streamable_markets(len(RECORDED) + DERIVED, DATA_DIR)
    assert len(listed) >= 100 and sorted(listed) == sorted(expected)
    assert sorted(derived_sim.stream_status()["markets"]) == sorted(expected)
    catalog = requests.get(f"{derived_sim.base_url}/_sim/markets", timeout=5).json()
    s001 = next(m for m in catalog if m["symbol"] == "S001/USD")
    assert (s001["venues"], s001["derived_from"]) == (["coinbaseexchange"], "bitstamp:BTC/USD")


def test_without_derived_markets_only_the_recorded_ones_are_listed(sim, connect) -> None:
    listed = [f"{ex}:{symbol}" for ex in EXCHANGES for symbol in connect(ex).load_markets()]
    assert sorted(listed) == sorted(RECORDED) == sorted(sim.stream_status()["markets"])


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_watch_trades_on_derived_markets_receives_the_ledger(replay, exchange_id) -> None:
    replay.set_stream("max", START, stop_after=40)
    symbols = derived_of(exchange_id, 3)

    def feed_stopped(symbol: str):
        def check(_: list) -> bool:
            feeds = replay.stream_status()["feeds"]
            return any(
                f["exchange"] == exchange_id and f["symbol"] == symbol and f["state"] == "stopped"
                for f in feeds
            )

        return check

    async def run() -> dict[str, list[dict]]:
        exchange = pro(exchange_id, replay.base_url)
        try:
            for symbol in symbols:
                await watch_until(exchange, feed_stopped(symbol), symbol=symbol)
            await until_cached(exchange, replay, exchange_id, symbols)
            return {symbol: list(exchange.trades[symbol]) for symbol in symbols}
        finally:
            await exchange.close()

    streamed = asyncio.run(run())
    for symbol in symbols:
        query = {"exchange": exchange_id, "symbol": symbol}
        ledger = requests.get(f"{replay.base_url}/_sim/stream/emitted", params=query, timeout=5).json()
        assert [int(t["id"]) for t in streamed[symbol]] == ledger["ids"] and ledger["count"] == 40
        assert all(t["symbol"] == symbol for t in streamed[symbol])
    first = streamed[symbols[0]]
    assert [_trade_key(t) for t in _rest_trades(replay, exchange_id, symbols[0], first[0])] == [
        _trade_key(t) for t in first
    ]


def _rest_trades(sim: SimulatorServer, exchange_id: str, symbol: str, first: dict) -> list[dict]:
    """Each venue's REST way to the trades from `first` on, as a collector fills a gap."""
    exchange = rest(sim, exchange_id)
    if exchange_id == "kraken":
        return exchange.fetch_trades(symbol, first["timestamp"])
    limit = 1000 if exchange_id == "coinbaseexchange" else None
    return [t for t in exchange.fetch_trades(symbol, limit=limit) if int(t["id"]) >= int(first["id"])]


def _trade_key(trade: dict) -> tuple:
    # Bitstamp's REST `date` has whole seconds only.
    return (int(trade["id"]), trade["timestamp"] // 1000, repr(trade["price"]), repr(trade["amount"]))


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_derived_trades_aggregate_to_derived_minutes(derived_sim, exchange_id) -> None:
    symbol = derived_of(exchange_id, 1, skip=5)[0]  # never streamed here: REST follows the clock
    exchange = rest(derived_sim, exchange_id)
    minute = START_MS - 40 * 60_000
    if exchange_id == "kraken":
        trades = exchange.fetch_trades(symbol, minute)
    else:
        trades = exchange.fetch_trades(symbol, limit=1000 if exchange_id == "coinbaseexchange" else None)
    candles = as_decimal_rows(exchange.fetch_ohlcv(symbol, "1m", minute, 5))
    assert [c[0] for c in candles] == [minute + i * 60_000 for i in range(5)]
    for candle in candles:
        inside = [t for t in trades if candle[0] <= t["timestamp"] < candle[0] + 60_000]
        prices = [Decimal(repr(t["price"])) for t in inside]
        amounts = [Decimal(repr(t["amount"])) for t in inside]
        assert (prices[0], max(prices), min(prices), prices[-1]) == candle[1:5]
        assert sum(amounts) == candle[5]


@pytest.mark.parametrize(
    "exchange_id, source, timeframe",
    [
        ("coinbaseexchange", "coinbaseexchange:BTC/USD", "1h"),
        ("bitstamp", "coinbaseexchange:BTC/USD", "1h"),
        ("kraken", "bitstamp:ETH/USD", "1d"),
    ],
)
def test_derived_bars_are_the_source_bars_scaled(derived_sim, exchange_id, source, timeframe) -> None:
    catalog = requests.get(f"{derived_sim.base_url}/_sim/markets", timeout=5).json()
    derived = next(m for m in catalog if m["exchange"] == exchange_id and m.get("derived_from") == source)
    factor = Decimal(derived["price_factor"])
    step = ccxt.Exchange.parse_timeframe(timeframe) * 1000
    # The clock is frozen at START: the last 100 bars complete before it.
    rows = [row for row in recorded_rows(recorded(*source.split(":"))) if row[0] + step <= START_MS][-100:]
    exchange = rest(derived_sim, exchange_id)
    served = as_decimal_rows(exchange.fetch_ohlcv(derived["symbol"], timeframe, rows[0][0], 100))
    assert served == [(ms, *(price * factor for price in row[:4]), row[4]) for ms, *row in rows]


def test_derived_markets_trade_at_their_sources_rates(store) -> None:
    hour = (START_MS - HOUR_MS, START_MS)
    per_hour = {m.symbol: len(series.trades_between(m, *hour, START_MS)) for m in derived_markets(store, 100)}
    sources = {
        f"{m.exchange}:{m.symbol}": len(series.trades_between(m, *hour, START_MS))
        for m in store.all_markets()
    }
    assert all(100 <= n <= 1000 for n in [*per_hour.values(), *sources.values()])  # ~0.03 .. 0.3 per second
    assert 0.5 <= sum(per_hour.values()) / 100 / (sum(sources.values()) / len(sources)) <= 2
