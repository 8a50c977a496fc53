"""Kraken spot REST API (ccxt id `kraken`), under /kraken/0/public.

NOTE: Kraken serves a recording made on Coinbase. The Coinbase Exchange BTC/USD hourly recording is
replayed through Kraken's API so the pipeline has a venue with a candle stream (ccxt.pro has no
candle stream for coinbaseexchange or bitstamp). The pair stays BTC/USD: Kraken writes it
XXBTZUSD / XBTUSD / XBT/USD and ccxt maps it back to BTC/USD. Hourly bars equal the recording;
minutes and trades are derived with Kraken's own key, so they differ from Coinbase's derived ones
while aggregating to the same hours.

Shapes as the real API: `{"error": [], "result": {...}}`, errors in the `error` list (`EQuery:...`,
`EGeneral:...`); OHLC rows `[time, open, high, low, close, vwap, volume, count]` with strings for
prices, at most 720 per answer, `since` in seconds (candles opening after it), and `last`; trades
`[price, volume, time, "b"|"s", "m"|"l", "", trade_id]` oldest first, at most 1000, `since` in
seconds or as the nanosecond cursor `last` of the previous page.
Deviations: `vwap` of REST candles is the typical price (high+low+close)/3 (not tracked exactly;
ccxt ignores it); with `since` the real API still only reaches back 720 candles, the simulator
serves the 720 candles after `since` so a backfill over the recording works.
"""

from __future__ import annotations

import dataclasses
import email.utils

import numpy as np
from aiohttp import web

from cryptopipe_dagster.simulator import series
from cryptopipe_dagster.simulator.clock import iso_ms
from cryptopipe_dagster.simulator.derive import IntBars
from cryptopipe_dagster.simulator.market_data import Market, market_key
from cryptopipe_dagster.simulator.trades import Trades, trade_counts
from cryptopipe_dagster.simulator.venues.common import (
    Route,
    Venue,
    candle_page,
    json_response,
    raw_json_response,
    retry_after_text,
)
from cryptopipe_dagster.simulator.venues.kraken_assets import (
    ASSETS,
    altname,
    asset,
    asset_id,
    asset_pair,
    pair_id,
    wsname,
)
from cryptopipe_dagster.simulator.venues.stream_common import trade_hashes

INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)  # minutes
MAX_CANDLES = 720
MAX_TRADES = 1000
_SECONDS_BELOW = 10**11  # a `since` below this is seconds, above it the nanosecond cursor


class Kraken(Venue):
    """Routes under /kraken (ccxt's `https://api.kraken.com` + `/0/public/<method>`)."""

    exchange_id = "kraken"
    recording_exchange = "coinbaseexchange"

    def recorded_markets(self) -> list[Market]:
        """The Coinbase recordings, re-keyed as Kraken markets."""
        seed = self.store.seed
        return [
            dataclasses.replace(
                m, exchange=self.exchange_id, key=market_key(seed, self.exchange_id, m.symbol)
            )
            for m in self.store.markets(self.recording_exchange)
            if m.base in ASSETS and m.quote in ASSETS
        ]

    def routes(self) -> list[Route]:
        """The public endpoints ccxt's kraken calls for markets, time, OHLCV and trades."""
        return [
            Route("GET", "/0/public/Time", self.time, "markets"),
            Route("GET", "/0/public/SystemStatus", self.system_status, "markets"),
            Route("GET", "/0/public/Assets", self.assets, "markets"),
            Route("GET", "/0/public/AssetPairs", self.asset_pairs, "markets"),
            Route("GET", "/0/public/OHLC", self.ohlc, "data"),
            Route("GET", "/0/public/Trades", self.trades, "data"),
        ]

    def throttle_error(self, status: int, retry_after_s: float) -> web.Response:
        """Kraken names throttling in its error list."""
        error = "EAPI:Rate limit exceeded" if status == 429 else "EGeneral:Temporary lockout"
        return json_response({"error": [error]}, status, {"Retry-After": retry_after_text(retry_after_s)})

    def server_error(self, status: int) -> web.Response:
        """5xx with Kraken's error body."""
        return json_response({"error": ["EService:Unavailable"]}, status)

    async def time(self, request: web.Request) -> web.Response:
        """GET /0/public/Time, on the simulator's clock."""
        seconds = self.clock.now_ms() // 1000
        rfc1123 = email.utils.formatdate(seconds, usegmt=False).replace("-0000", "+0000")
        return _ok({"unixtime": seconds, "rfc1123": rfc1123})

    async def system_status(self, request: web.Request) -> web.Response:
        """GET /0/public/SystemStatus"""
        return _ok({"status": "online", "timestamp": iso_ms(self.clock.now_ms())[:19] + "Z"})

    async def assets(self, request: web.Request) -> web.Response:
        """GET /0/public/Assets: the currencies of the served pairs."""
        codes = sorted({code for m in self.markets for code in (m.base, m.quote)})
        return _ok({asset_id(code): asset(code) for code in codes})

    async def asset_pairs(self, request: web.Request) -> web.Response:
        """GET /0/public/AssetPairs[?pair=XXBTZUSD,XBTUSD]"""
        wanted = {p for p in request.query.get("pair", "").split(",") if p}
        pairs = {pair_id(m): asset_pair(m) for m in self.markets}
        if wanted:
            pairs = {k: v for k, v in pairs.items() if k in wanted or v["altname"] in wanted}
            if not pairs:
                return _error("EQuery:Unknown asset pair")
        return _ok(pairs)

    async def ohlc(self, request: web.Request) -> web.Response:
        """GET /0/public/OHLC?pair=&interval=&since="""
        market = self._market(request)
        if market is None:
            return _error("EQuery:Unknown asset pair")
        try:
            interval = int(request.query.get("interval", "1"))
            since = _number(request, "since")
        except ValueError:
            return _error("EGeneral:Invalid arguments")
        if interval not in INTERVALS:
            return _error("EGeneral:Invalid arguments")
        step = interval * 60
        now_ms = self.now_ms(market)
        if since is None:
            last_s = (now_ms // 1000 // step) * step
            first_s = last_s - (MAX_CANDLES - 1) * step
        else:
            first_s = (int(since) // step + 1) * step  # candles opening after `since`
            last_s = first_s + (MAX_CANDLES - 1) * step
        page = candle_page(request, market, step, first_s, last_s, now_ms, limit=MAX_CANDLES)
        bars = market.bars.select(page) if isinstance(page, slice) else page
        counts = _trade_counts(market, bars, step, now_ms)
        complete = bars.ts[(bars.ts + step) * 1000 <= now_ms]
        last = int(complete[-1]) if len(complete) else (int(bars.ts[-1]) if len(bars) else first_s - step)
        return _ok({pair_id(market): _ohlc_rows(market, bars, counts), "last": last})

    async def trades(self, request: web.Request) -> web.Response:
        """GET /0/public/Trades?pair=&since=&count= (oldest first)."""
        market = self._market(request)
        if market is None:
            return _error("EQuery:Unknown asset pair")
        try:
            since = _number(request, "since")
            count = int(request.query.get("count", MAX_TRADES))
        except ValueError:
            return _error("EGeneral:Invalid arguments")
        count = max(1, min(count, MAX_TRADES))
        now_ms, newest_id = self.view(market)
        trades = _trades_since(market, since, count, now_ms)
        if newest_id is not None:
            trades = trades.select(trades.trade_id <= newest_id)
        ns = trade_ns(trades)
        last = int(ns[-1]) if len(ns) else (now_ms * 1_000_000 if since is None else _since_ns(since)[0])
        pair = pair_id(market).encode()
        body = b'{"error":[],"result":{"' + pair + b'":[' + _trade_rows(market, trades, ns) + b'],"last":"'
        return raw_json_response(body + str(last).encode() + b'"}}')

    def _market(self, request: web.Request) -> Market | None:
        pair = request.query.get("pair", "")
        return next((m for m in self.markets if pair in (pair_id(m), altname(m), wsname(m))), None)


def trade_ns(trades: Trades) -> np.ndarray:
    """Trade times in ns, unique per trade: the ms time plus the trade's index in its minute in µs
    (+500 ns, so a float seconds value parsed back and truncated to ms gives the ms time exactly)."""
    return trades.ts_ms * 1_000_000 + (trades.trade_id % 1000) * 1000 + 500


def taker_is_limit(trades: Trades) -> np.ndarray:
    """Deterministic order type per trade: a quarter of the takers are limit orders."""
    return (trade_hashes(trades.trade_id, 9) & np.uint64(3)) == 0


def _ok(result: dict) -> web.Response:
    return json_response({"error": [], "result": result})


def _error(message: str) -> web.Response:
    return json_response({"error": [message]})


def _number(request: web.Request, name: str) -> int | float | None:
    """An optional number; integers stay exact (a nanosecond cursor does not fit a float)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    return int(raw) if raw.isdigit() else float(raw)


def _since_ns(since: int | float) -> tuple[int, bool]:
    """(since in ns, whether it is the exclusive cursor of a previous page)."""
    if since < _SECONDS_BELOW:
        return int(round(since * 1000)) * 1_000_000, False
    return int(since), True


def _trades_since(market: Market, since: int | float | None, count: int, now_ms: int) -> Trades:
    if since is None:
        return series.trades_older_than(market, None, count, now_ms)
    since_ns, exclusive = _since_ns(since)
    since_ms = since_ns // 1_000_000
    # Start at the minute holding `since`; up to 999 trades of that minute may fall before it.
    trades = series.trades_newer_than(market, (since_ms // 60_000) * 1000 - 1, count + 1000, now_ms)
    ns = trade_ns(trades)
    keep = ns > since_ns if exclusive else ns >= since_ns
    return trades.select(keep).select(slice(0, count))


def _trade_rows(market: Market, trades: Trades, ns: np.ndarray) -> bytes:
    sides = np.where(trades.is_sell, "s", "b").tolist()
    kinds = np.where(taker_is_limit(trades), "l", "m").tolist()
    rows = [
        f'["{price}","{volume}",{t // 10**9}.{t % 10**9:09d},"{side}","{kind}","",{i}]'
        for price, volume, t, side, kind, i in zip(
            market.price_texts(trades.price),
            market.volume_texts(trades.amount),
            ns.tolist(),
            sides,
            kinds,
            trades.trade_id.tolist(),
            strict=True,
        )
    ]
    return ",".join(rows).encode()


def _trade_counts(market: Market, bars: IntBars, step: int, now_ms: int) -> np.ndarray:
    """How many derived trades each bar holds (up to now)."""
    if len(bars) == 0:
        return np.zeros(0, dtype=np.int64)
    first, last = int(bars.ts.min()), int(bars.ts.max())
    minutes = series.minutes_between(market, first, last + step, now_ms)
    counts = trade_counts(market, minutes)
    for index in np.flatnonzero((minutes.ts + 60) * 1000 > now_ms):  # the minute holding now
        start = int(minutes.ts[index]) * 1000
        counts[index] = len(series.trades_between(market, start, now_ms + 1, now_ms))
    buckets = minutes.ts - minutes.ts % step
    unique, inverse = np.unique(buckets, return_inverse=True)
    sums = np.bincount(inverse, weights=counts, minlength=len(unique)).astype(np.int64)
    per_bucket = dict(zip(unique.tolist(), sums.tolist(), strict=True))
    return np.array([per_bucket.get(t, 0) for t in bars.ts.tolist()], dtype=np.int64)


def _ohlc_rows(market: Market, bars: IntBars, counts: np.ndarray) -> list[list]:
    typical = (bars.high + bars.low + bars.close) // 3
    return [
        [t, o, h, lo, c, vwap, v, n]
        for t, o, h, lo, c, vwap, v, n in zip(
            bars.ts.tolist(),
            market.price_texts(bars.open),
            market.price_texts(bars.high),
            market.price_texts(bars.low),
            market.price_texts(bars.close),
            market.price_texts(typical),
            market.volume_texts(bars.volume),
            counts.tolist(),
            strict=True,
        )
    ]
