"""Bitstamp WebSocket API v2 (ccxt id `bitstamp`, real URL wss://ws.bitstamp.net), served at
ws://<sim>/bitstamp.

As the real API: `{"event": "bts:subscribe", "data": {"channel": "live_trades_btcusd"}}` is answered
with `bts:subscription_succeeded`, then every trade is an event `trade` with `data: {id, timestamp
(epoch seconds as text), microtimestamp, amount, amount_str, price, price_str, type (0 buy, 1 sell),
buy_order_id, sell_order_id}`; `bts:unsubscribe` and `bts:heartbeat` work, anything else is a
`bts:error`. Only the public `live_trades_<pair>` channels are served.
"""

from __future__ import annotations

from typing import Any

from cryptopipe_dagster.simulator.channel import Renderer
from cryptopipe_dagster.simulator.feed import MarketFeed
from cryptopipe_dagster.simulator.market_data import Market
from cryptopipe_dagster.simulator.stream_conn import Connection
from cryptopipe_dagster.simulator.tape import TapeChunk
from cryptopipe_dagster.simulator.venues.stream_common import VenueStream, trade_hashes

CHANNEL = "live_trades"
_ORDER_ID_BITS = 50  # Bitstamp order ids are ~16-digit integers


class BitstampStream(VenueStream):
    """The `live_trades_<pair>` channels of Bitstamp's WebSocket API v2."""

    exchange_id = "bitstamp"
    path = ""

    def channels(self) -> dict[str, Renderer]:
        """Only live trades (the trades channel)."""
        return {CHANNEL: render_live_trades}

    async def on_message(self, conn: Connection, data: Any, raw: str) -> None:
        """bts:subscribe / bts:unsubscribe / bts:heartbeat."""
        event = data.get("event") if isinstance(data, dict) else None
        if event == "bts:heartbeat":
            await conn.send_json({"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}})
            return
        if event not in ("bts:subscribe", "bts:unsubscribe"):
            await _error(conn, "Bad subscription string." if event is None else f"Unknown event: {event}")
            return
        payload = data.get("data")
        channel = payload.get("channel") if isinstance(payload, dict) else None
        feed = self._feed_of(channel) if isinstance(channel, str) else None
        if feed is None:
            await _error(conn, "Incorrect channel name.")
            return
        if event == "bts:unsubscribe":
            conn.unsubscribe(feed.channel(CHANNEL))
            await conn.send_json({"event": "bts:unsubscription_succeeded", "channel": channel, "data": {}})
            return
        await conn.send_json({"event": "bts:subscription_succeeded", "channel": channel, "data": {}})
        feed.subscribe(conn, CHANNEL)

    def _feed_of(self, channel: str) -> MarketFeed | None:
        prefix = f"{CHANNEL}_"
        if not channel.startswith(prefix):
            return None
        pair = channel[len(prefix) :]
        market = next((m for m in self.venue.markets if pair_id(m) == pair), None)
        return None if market is None else self.feed(market.symbol)


async def _error(conn: Connection, message: str) -> None:
    await conn.send_json({"event": "bts:error", "channel": "", "data": {"code": None, "message": message}})


def pair_id(market: Market) -> str:
    """Bitstamp's pair id, e.g. btcusd."""
    return f"{market.base}{market.quote}".lower()


def render_live_trades(market: Market, chunk: TapeChunk) -> tuple[list[int], list[str]]:
    """One `trade` event per trade, due at the trade's time."""
    trades = chunk.trades
    channel = f"{CHANNEL}_{pair_id(market)}"
    shift = 64 - _ORDER_ID_BITS
    buy_ids = (trade_hashes(trades.trade_id, 5) >> shift).tolist()
    sell_ids = (trade_hashes(trades.trade_id, 6) >> shift).tolist()
    micros = (trades.ts_ms * 1000).tolist()
    texts = [
        f'{{"data":{{"id":{i},"timestamp":"{us // 1_000_000}","amount":{amount},"amount_str":"{amount_text}",'
        f'"price":{price},"price_str":"{price_text}","type":{int(sell)},"microtimestamp":"{us}",'
        f'"buy_order_id":{buy},"sell_order_id":{sold}}},"channel":"{channel}","event":"trade"}}'
        for i, us, amount, amount_text, price, price_text, sell, buy, sold in zip(
            trades.trade_id.tolist(),
            micros,
            market.volumes(trades.amount).tolist(),
            market.volume_texts(trades.amount),
            market.prices(trades.price).tolist(),
            market.price_texts(trades.price),
            trades.is_sell.tolist(),
            buy_ids,
            sell_ids,
            strict=True,
        )
    ]
    return trades.ts_ms.tolist(), texts
