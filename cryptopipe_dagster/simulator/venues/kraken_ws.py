"""Kraken WebSocket API v2 (real URL wss://ws.kraken.com/v2, ccxt's `publicV2`, which ccxt.pro 4.5
uses for watch_trades and watch_ohlcv), served at ws://<sim>/kraken/v2. Like the REST venue it
replays a recording made on Coinbase (see venues/kraken.py).

As the real API: on connect a `status` update; `{"method": "subscribe", "params": {"channel":
"trade" | "ohlc", "symbol": ["BTC/USD"], "interval": 1}, "req_id": n}` is acknowledged per symbol,
then a `snapshot` (the newest trades already emitted, at most 50; the newest candles, at most 60),
then `update`s: one per trade on `trade` (`symbol, side, price, qty, ord_type, trade_id,
timestamp`), and on `ohlc` the open candle after each trade plus the final candle once its interval
is over (`open, high, low, close, trades, volume, vwap, interval_begin, interval, timestamp`).
`{"method": "ping"}` gets a `pong`, a subscribed socket gets `{"channel": "heartbeat"}` after a
second without messages. v2 names the pair BTC/USD (v1's XBT/USD is only the REST `wsname`).
ohlc intervals are those that divide an hour (1, 5, 15, 30, 60).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from cryptopipe_dagster.simulator import series
from cryptopipe_dagster.simulator.channel import Renderer
from cryptopipe_dagster.simulator.feed import MarketFeed
from cryptopipe_dagster.simulator.market_data import Market
from cryptopipe_dagster.simulator.stream_conn import Connection
from cryptopipe_dagster.simulator.tape import HOUR_MS, TapeChunk
from cryptopipe_dagster.simulator.trades import Trades
from cryptopipe_dagster.simulator.venues.kraken import taker_is_limit
from cryptopipe_dagster.simulator.venues.stream_common import (
    RunningCandles,
    VenueStream,
    iso_times,
    recent_ledger_trades,
    running_candles,
)

TRADE = "trade"
OHLC_INTERVALS = (1, 5, 15, 30, 60)
TRADE_SNAPSHOT = 50
CANDLE_SNAPSHOT = 60
_HEARTBEAT_S = 1.0


def ohlc_channel(interval: int) -> str:
    """Feed channel name of an ohlc interval (minutes)."""
    return f"ohlc-{interval}"


class KrakenStream(VenueStream):
    """Kraken v2 public `trade` and `ohlc` channels."""

    exchange_id = "kraken"
    path = "/v2"

    def channels(self) -> dict[str, Renderer]:
        """`trade` first (it keeps the ledger), then one ohlc channel per interval."""
        renderers: dict[str, Renderer] = {TRADE: render_trade_updates}
        for interval in OHLC_INTERVALS:
            renderers[ohlc_channel(interval)] = _candle_renderer(interval)
        return renderers

    async def on_open(self, conn: Connection) -> None:
        """The status greeting, and the heartbeat task."""
        status = {"api_version": "v2", "connection_id": id(conn), "system": "online", "version": "2.0.10"}
        await conn.send_json({"channel": "status", "type": "update", "data": [status]})
        conn.scratch["heartbeat"] = asyncio.ensure_future(_heartbeat(conn))

    async def on_close(self, conn: Connection) -> None:
        """Stop the heartbeat."""
        task = conn.scratch.pop("heartbeat", None)
        if task is not None:
            task.cancel()

    async def on_message(self, conn: Connection, data: Any, raw: str) -> None:
        """ping, subscribe, unsubscribe."""
        time_in = _now_iso()
        method = data.get("method") if isinstance(data, dict) else None
        req_id = data.get("req_id") if isinstance(data, dict) else None
        reply = {"method": method, "req_id": req_id} if req_id is not None else {"method": method}
        if method == "ping":
            await conn.send_json({**reply, "method": "pong", "time_in": time_in, "time_out": _now_iso()})
            return
        if method not in ("subscribe", "unsubscribe"):
            await _fail(conn, {**reply, "method": method or ""}, "Malformed request", time_in)
            return
        params = data.get("params") if isinstance(data.get("params"), dict) else {}
        await self._subscription(conn, method, params, reply, time_in)

    async def _subscription(
        self, conn: Connection, method: str, params: dict, reply: dict, time_in: str
    ) -> None:
        channel, symbols = params.get("channel"), params.get("symbol")
        if channel not in (TRADE, "ohlc"):
            await _fail(conn, reply, f"Channel {channel} not supported", time_in)
            return
        if not isinstance(symbols, list) or not symbols:
            await _fail(conn, reply, "Pair field must be an array", time_in)
            return
        interval = params.get("interval")
        if channel == "ohlc" and interval not in OHLC_INTERVALS:
            await _fail(conn, reply, "Subscription ohlc interval not supported", time_in)
            return
        name = TRADE if channel == TRADE else ohlc_channel(interval)
        for symbol in symbols:
            feed = self.feed(symbol) if isinstance(symbol, str) else None
            if feed is None:
                await _fail(
                    conn, {**reply, "symbol": symbol}, f"Currency pair not supported {symbol}", time_in
                )
                continue
            result = {"channel": channel, "snapshot": True, "symbol": symbol}
            if channel == "ohlc":
                result["interval"] = interval
            if method == "unsubscribe":
                conn.unsubscribe(feed.channel(name))
                result.pop("snapshot")
            await conn.send_json(
                {**reply, "result": result, "success": True, "time_in": time_in, "time_out": _now_iso()}
            )
            if method == "subscribe":
                for text in _snapshot(feed, channel, interval):
                    await conn.send(text)
                feed.subscribe(conn, name)


async def _heartbeat(conn: Connection) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        while not conn.dead:
            await asyncio.sleep(_HEARTBEAT_S)
            if conn.channels and time.monotonic() - conn.last_sent >= _HEARTBEAT_S:
                await conn.send('{"channel":"heartbeat"}')


async def _fail(conn: Connection, reply: dict, error: str, time_in: str) -> None:
    await conn.send_json(
        {**reply, "error": error, "success": False, "time_in": time_in, "time_out": _now_iso()}
    )


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _snapshot(feed: MarketFeed, channel: str, interval: int | None) -> list[str]:
    if channel == TRADE:
        trades = recent_ledger_trades(feed, TRADE_SNAPSHOT)
        return [_trade_message(feed.market, trades, "snapshot")] if len(trades) else []
    position = feed.current_ms()
    bucket_ms = interval * 60_000
    first = (position // bucket_ms - CANDLE_SNAPSHOT + 1) * bucket_ms
    trades = series.trades_between(feed.market, first, position + 1, position)
    if not len(trades):
        return []
    candles = running_candles(feed.market, trades, bucket_ms)
    rows = np.flatnonzero(candles.last_of_bucket)
    data = _candle_rows(feed.market, candles, rows, interval)
    stamp = iso_times(np.array([position * 1_000_000]), "ns")[0]
    return [
        '{"channel":"ohlc","type":"snapshot","timestamp":"' + stamp + '","data":[' + ",".join(data) + "]}"
    ]


def render_trade_updates(market: Market, chunk: TapeChunk) -> tuple[list[int], list[str]]:
    """One `trade` update per trade, due at its time."""
    trades = chunk.trades
    rows = _trade_rows(market, trades)
    return trades.ts_ms.tolist(), ['{"channel":"trade","type":"update","data":[' + row + "]}" for row in rows]


def _trade_message(market: Market, trades: Trades, kind: str) -> str:
    return '{"channel":"trade","type":"' + kind + '","data":[' + ",".join(_trade_rows(market, trades)) + "]}"


def _trade_rows(market: Market, trades: Trades) -> list[str]:
    # µs = ms * 1000 + the trade's index in its minute: unique, and the REST time of the same trade.
    micros = trades.ts_ms * 1000 + trades.trade_id % 1000
    sides = np.where(trades.is_sell, "sell", "buy").tolist()
    kinds = np.where(taker_is_limit(trades), "limit", "market").tolist()
    symbol = market.symbol
    return [
        f'{{"symbol":"{symbol}","side":"{side}","price":{price},"qty":{qty},"ord_type":"{kind}",'
        f'"trade_id":{i},"timestamp":"{stamp}"}}'
        for side, price, qty, kind, i, stamp in zip(
            sides,
            market.prices(trades.price).tolist(),
            market.volumes(trades.amount).tolist(),
            kinds,
            trades.trade_id.tolist(),
            iso_times(micros, "us"),
            strict=True,
        )
    ]


def _candle_renderer(interval: int) -> Renderer:
    def render(market: Market, chunk: TapeChunk) -> tuple[list[int], list[str]]:
        return render_candle_updates(market, chunk, interval)

    return render


def render_candle_updates(market: Market, chunk: TapeChunk, interval: int) -> tuple[list[int], list[str]]:
    """The open candle after every trade (due at the trade), and each candle whose interval ends
    inside the chunk once more as final (due 1 ms before the interval ends, so before the next
    interval's first trade)."""
    bucket_ms = interval * 60_000
    if HOUR_MS % bucket_ms:
        raise ValueError(f"ohlc interval {interval} does not divide an hour")
    lead = len(chunk.lead)
    trades = Trades.concat([chunk.lead, chunk.trades])
    if not len(trades):
        return [], []
    candles = running_candles(market, trades, bucket_ms)
    updates = np.arange(lead, len(trades))
    ends = candles.bucket_ms + bucket_ms
    closes = np.flatnonzero(candles.last_of_bucket & (ends <= chunk.end_ms) & (ends - 1 >= chunk.start_ms))
    rows = np.concatenate([updates, closes])
    due = np.concatenate([trades.ts_ms[updates], ends[closes] - 1])
    stamps = np.concatenate([trades.ts_ms[updates], ends[closes]]) * 1_000_000
    order = np.argsort(due, kind="stable")
    rows, due, stamps = rows[order], due[order], stamps[order]
    data = _candle_rows(market, candles, rows, interval)
    texts = [
        '{"channel":"ohlc","type":"update","timestamp":"' + stamp + '","data":[' + row + "]}"
        for stamp, row in zip(iso_times(stamps, "ns"), data, strict=True)
    ]
    return due.tolist(), texts


def _candle_rows(market: Market, candles: RunningCandles, rows: np.ndarray, interval: int) -> list[str]:
    begins = candles.bucket_ms[rows]
    symbol = market.symbol
    return [
        f'{{"symbol":"{symbol}","open":{o},"high":{h},"low":{lo},"close":{c},"trades":{n},"volume":{v},'
        f'"vwap":{w},"interval_begin":"{begin}","interval":{interval},"timestamp":"{end}"}}'
        for o, h, lo, c, n, v, w, begin, end in zip(
            market.prices(candles.open[rows]).tolist(),
            market.prices(candles.high[rows]).tolist(),
            market.prices(candles.low[rows]).tolist(),
            market.prices(candles.close[rows]).tolist(),
            candles.count[rows].tolist(),
            market.volumes(candles.volume[rows]).tolist(),
            candles.vwap[rows].tolist(),
            iso_times(begins * 1_000_000, "ns"),
            iso_times((begins + interval * 60_000) * 1000, "us"),
            strict=True,
        )
    ]
