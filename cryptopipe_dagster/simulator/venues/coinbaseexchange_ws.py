"""Coinbase Exchange WebSocket feed (ccxt id `coinbaseexchange`, real URL wss://ws-feed.exchange.coinbase.com),
served at ws://<sim>/coinbaseexchange.

As the real feed: the client sends `{"type": "subscribe", "product_ids": [...], "channels": ["matches"]}`
(channels may also be `{"name": ..., "product_ids": [...]}`); the server answers with a
`subscriptions` message listing everything subscribed, a `last_match` (the newest trade already
emitted, when there is one), then one `match` message per trade: `trade_id`, `sequence`, ISO
`time`, string `price` and `size`, the maker's `side` and order ids. Errors are
`{"type": "error", "message": ..., "reason": ...}`. Only the public `matches` channel is served.
"""

from __future__ import annotations

from typing import Any

from cryptopipe_dagster.simulator.channel import Renderer
from cryptopipe_dagster.simulator.feed import MarketFeed
from cryptopipe_dagster.simulator.market_data import Market
from cryptopipe_dagster.simulator.stream_conn import Connection
from cryptopipe_dagster.simulator.tape import TapeChunk
from cryptopipe_dagster.simulator.trades import Trades
from cryptopipe_dagster.simulator.venues.stream_common import (
    VenueStream,
    iso_times,
    order_uuids,
    recent_ledger_trades,
)

CHANNEL = "matches"
_SEQUENCE_STEP = 10  # the real sequence counts every book event, so matches see gaps


class CoinbaseExchangeStream(VenueStream):
    """The `matches` channel of the Coinbase Exchange feed."""

    exchange_id = "coinbaseexchange"
    path = ""

    def channels(self) -> dict[str, Renderer]:
        """Only `matches` (the trades channel)."""
        return {CHANNEL: render_matches}

    async def on_message(self, conn: Connection, data: Any, raw: str) -> None:
        """subscribe / unsubscribe; anything else is an error message, as on the real feed."""
        if not isinstance(data, dict):
            await _error(conn, "Malformed JSON", f"unable to parse message: {raw[:100]}")
            return
        kind = data.get("type")
        if kind not in ("subscribe", "unsubscribe"):
            await _error(conn, "Failed to subscribe", "Type has to be either subscribe or unsubscribe")
            return
        try:
            wanted = _requested(data)
        except ValueError as exc:
            await _error(conn, "Failed to subscribe", str(exc))
            return
        feeds = []
        for product in wanted:
            feed = self.feed(product.replace("-", "/"))
            if feed is None:
                await _error(conn, "Failed to subscribe", f"{product} is not a valid product")
                return
            feeds.append(feed)
        products: set[str] = conn.scratch.setdefault("products", set())
        if kind == "unsubscribe":
            for feed in feeds:
                conn.unsubscribe(feed.channel(CHANNEL))
                products.discard(product_id(feed.market))
            await conn.send_json(_subscriptions(products))
            return
        products.update(product_id(feed.market) for feed in feeds)
        await self._subscribe(conn, feeds, products)

    async def _subscribe(self, conn: Connection, feeds: list[MarketFeed], products: set[str]) -> None:
        await conn.send_json(_subscriptions(products))
        for feed in feeds:
            last = recent_ledger_trades(feed, 1)
            if len(last):
                await conn.send(render_trades(feed.market, last, "last_match")[0])
            feed.subscribe(conn, CHANNEL)


def _requested(data: dict) -> list[str]:
    """Product ids of a (un)subscribe message; ValueError for channels other than matches."""
    products = list(data.get("product_ids") or [])
    for channel in data.get("channels") or []:
        name = channel.get("name") if isinstance(channel, dict) else channel
        if name != CHANNEL:
            raise ValueError(f"{name} is not a valid channel")
        if isinstance(channel, dict):
            products.extend(channel.get("product_ids") or [])
    if not products:
        raise ValueError("No product ids provided")
    if not all(isinstance(p, str) for p in products):
        raise ValueError("product_ids must be strings")
    return list(dict.fromkeys(p.upper() for p in products))


def _subscriptions(products: set[str]) -> dict:
    return {"type": "subscriptions", "channels": [{"name": CHANNEL, "product_ids": sorted(products)}]}


async def _error(conn: Connection, message: str, reason: str) -> None:
    await conn.send_json({"type": "error", "message": message, "reason": reason})


def product_id(market: Market) -> str:
    """Coinbase's product id, e.g. BTC-USD."""
    return f"{market.base}-{market.quote}"


def render_matches(market: Market, chunk: TapeChunk) -> tuple[list[int], list[str]]:
    """One `match` message per trade of the chunk, due at the trade's time."""
    return chunk.trades.ts_ms.tolist(), render_trades(market, chunk.trades, "match")


def render_trades(market: Market, trades: Trades, kind: str) -> list[str]:
    """`match` / `last_match` messages; `time` is the REST endpoint's `time` for the same trade."""
    ids = trades.trade_id.tolist()
    # Coinbase's public `side` is the maker's side; ccxt flips it back to the taker's.
    sides = ["buy" if sell else "sell" for sell in trades.is_sell.tolist()]
    product = f"{market.base}-{market.quote}"
    return [
        f'{{"type":"{kind}","trade_id":{i},"maker_order_id":"{maker}","taker_order_id":"{taker}",'
        f'"side":"{side}","size":"{size}","price":"{price}","product_id":"{product}",'
        f'"sequence":{i * _SEQUENCE_STEP},"time":"{time}"}}'
        for i, maker, taker, side, size, price, time in zip(
            ids,
            order_uuids(trades.trade_id, 1),
            order_uuids(trades.trade_id, 3),
            sides,
            market.volume_texts(trades.amount),
            market.price_texts(trades.price),
            iso_times(trades.ts_ms * 1000, "us"),
            strict=True,
        )
    ]
