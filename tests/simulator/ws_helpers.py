"""Helpers for the WebSocket tests: unmodified ccxt.pro (or a raw aiohttp socket) against the simulator."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import ccxt
import ccxt.pro as ccxt_pro

from cryptopipe_dagster.lib.exchanges.url_override import point_exchange_at
from cryptopipe_dagster.simulator.server import SimulatorServer

SYMBOL = "BTC/USD"
START = "2019-10-17T05:00:00Z"  # inside the Coinbase (and so Kraken) and Bitstamp recordings
EXCHANGES = ("coinbaseexchange", "bitstamp", "kraken")
SUBSCRIBE = {
    "coinbaseexchange": ("", {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]}),
    "bitstamp": ("", {"event": "bts:subscribe", "data": {"channel": "live_trades_btcusd"}}),
    "kraken": (
        "/v2",
        {"method": "subscribe", "params": {"channel": "trade", "symbol": [SYMBOL]}, "req_id": 1},
    ),
}


def pro(exchange_id: str, base_url: str, trades_limit: int = 100_000) -> ccxt_pro.Exchange:
    """An unmodified ccxt.pro exchange pointed at the simulator.

    ccxt keeps the newest `tradesLimit` trades (default 1000) and drains every buffered message
    before a watch_trades call resumes, so a `max`-speed replay that buffers more than that between
    two calls loses the overflow on the client side; a large limit keeps the accounting exact."""
    config = {"enableRateLimit": False, "timeout": 5000, "options": {"tradesLimit": trades_limit}}
    exchange = getattr(ccxt_pro, exchange_id)(config)
    point_exchange_at(exchange, base_url)
    return exchange


def rest_trades_from(base_url: str, exchange_id: str, first: dict) -> list[dict]:
    """Each venue's REST way to the trades from `first` on (as a collector recovers a gap): Kraken
    pages forward from its time, Coinbase serves the newest 1000, Bitstamp the last hour."""
    exchange = getattr(ccxt, exchange_id)({"enableRateLimit": False})
    point_exchange_at(exchange, base_url)
    if exchange_id == "kraken":
        return exchange.fetch_trades(SYMBOL, first["timestamp"])
    limit = 1000 if exchange_id == "coinbaseexchange" else None
    return [t for t in exchange.fetch_trades(SYMBOL, limit=limit) if int(t["id"]) >= int(first["id"])]


def trade_key(trade: dict) -> tuple:
    """What must agree between the stream and REST for one trade."""
    return (int(trade["id"]), trade["timestamp"], repr(trade["price"]), repr(trade["amount"]), trade["side"])


async def watch_until(
    exchange: ccxt_pro.Exchange,
    done: Callable[[list[dict]], bool],
    timeout: float = 15.0,
    symbol: str = SYMBOL,
) -> list[dict]:
    """Call watch_trades until `done(received)`; every trade the calls returned, in order. A call
    waiting longer than 0.2 s is retried (ccxt returns only on the next message); errors propagate."""
    received: list[dict] = []
    deadline = time.monotonic() + timeout
    while not done(received):
        if time.monotonic() > deadline:
            raise TimeoutError(f"stream did not finish: {len(received)} trades received")
        try:
            received.extend(await asyncio.wait_for(exchange.watch_trades(symbol), 0.2))
        except TimeoutError:
            continue
    return received


def stopped(sim: SimulatorServer, exchange: str) -> Callable[..., bool]:
    """True once that exchange's feed has replayed up to its stop."""

    def check(*_: object) -> bool:
        feeds = sim.stream_status()["feeds"]
        return any(f["exchange"] == exchange and f["state"] == "stopped" for f in feeds)

    return check


async def raw_messages(
    base_url: str, exchange_id: str, count: int, timeout: float = 10.0
) -> list[tuple[float, str]]:
    """(arrival time, text) of the first `count` feed messages after subscribing, over a plain socket."""
    path, subscribe = SUBSCRIBE[exchange_id]
    url = base_url.replace("http://", "ws://") + f"/{exchange_id}{path}"
    out: list[tuple[float, str]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(json.dumps(subscribe))
        while len(out) < count:
            message = await asyncio.wait_for(ws.receive(), timeout)
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            if _is_trade_message(exchange_id, message.data):
                out.append((time.monotonic(), message.data))
    return out


def _is_trade_message(exchange_id: str, text: str) -> bool:
    """Feed messages (valid or faulted), not acks, greetings or heartbeats."""
    return not any(
        marker in text
        for marker in ('"subscriptions"', "bts:subscription", '"status"', '"heartbeat"', '"method"')
    )


def trade_id_of(exchange_id: str, text: str) -> int | None:
    """The trade id in a raw feed message, None when it is malformed."""
    try:
        data: Any = json.loads(text)
        if exchange_id == "coinbaseexchange":
            return int(data["trade_id"])
        if exchange_id == "bitstamp":
            return int(data["data"]["id"])
        return int(data["data"][0]["trade_id"])
    except (ValueError, KeyError, TypeError, IndexError):
        return None


async def until_cached(
    exchange,
    replay: SimulatorServer,
    exchange_id: str,
    symbols: list[str] | None = None,
    timeout_s: float = 10.0,
) -> None:
    """Until ccxt's cache holds the newest trade the replay emitted on each symbol's stream (the
    last messages arrive without a pending watch; on a busy machine that takes longer than a fixed
    sleep), or the timeout (the test's own assertions then say what is missing)."""
    deadline = time.monotonic() + timeout_s
    newest = {}
    for symbol in symbols or [SYMBOL]:
        ids = replay.emitted(exchange_id, symbol)["ids"]
        if ids:
            newest[symbol] = str(ids[-1])
    while time.monotonic() < deadline:
        cached = {s: {str(t["id"]) for t in exchange.trades.get(s) or []} for s in newest}
        if all(newest[s] in cached[s] for s in newest):
            return
        await asyncio.sleep(0.05)
