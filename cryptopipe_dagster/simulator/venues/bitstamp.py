"""Bitstamp public market-data REST API v2 (ccxt id `bitstamp`), under /bitstamp/api/v2.

As the real API: every value is a string, timestamps are epoch seconds, OHLC comes oldest first as
`{"data": {"pair": "BTC/USD", "ohlc": [...]}}` with `step` and `limit` (1..1000) required;
transactions come newest first for the last minute/hour/day; errors are
`{"status": "error", "reason": "...", "code": "API...."}`.
"""

from __future__ import annotations

from aiohttp import web

from cryptopipe_dagster.simulator import series
from cryptopipe_dagster.simulator.clock import SimClock
from cryptopipe_dagster.simulator.derive import IntBars
from cryptopipe_dagster.simulator.market_data import VOLUME_DECIMALS, Market, MarketStore
from cryptopipe_dagster.simulator.venues.common import (
    FIAT,
    Route,
    RowCache,
    Venue,
    candle_page,
    dumps,
    int_param,
    json_response,
    raw_json_response,
    retry_after_text,
)

STEPS = (60, 180, 300, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400, 259200)
MAX_LIMIT = 1000
TRANSACTION_SPANS = {"minute": 60, "hour": 3600, "day": 86400}


class Bitstamp(Venue):
    """Routes under /bitstamp/api/v2 (ccxt's `https://www.bitstamp.net/api` + version)."""

    exchange_id = "bitstamp"

    def __init__(self, store: MarketStore, clock: SimClock) -> None:
        super().__init__(store, clock)
        self._rows = RowCache(_ohlc_rows)

    def routes(self) -> list[Route]:
        """Every endpoint ccxt's public bitstamp methods call (trailing slash as Bitstamp writes them)."""
        return [
            Route("GET", "/api/v2/markets/", self.markets_info, "markets"),
            Route("GET", "/api/v2/trading-pairs-info/", self.trading_pairs_info, "markets"),
            Route("GET", "/api/v2/currencies/", self.currencies, "markets"),
            Route("GET", "/api/v2/ohlc/{pair}/", self.ohlc, "data"),
            Route("GET", "/api/v2/transactions/{pair}/", self.transactions, "data"),
        ]

    def throttle_error(self, status: int, retry_after_s: float) -> web.Response:
        """Throttling without Bitstamp's `status: error` body, so clients map it by HTTP status."""
        body = {"code": "API0013" if status == 429 else "API0014", "message": "Too many requests"}
        return json_response(body, status, {"Retry-After": retry_after_text(retry_after_s)})

    def server_error(self, status: int) -> web.Response:
        """5xx as Bitstamp's edge serves it: an HTML page."""
        text = f"<html><head><title>{status}</title></head><body><h1>{status} Server Error</h1></body></html>"
        return web.Response(text=text, status=status, content_type="text/html")

    async def markets_info(self, request: web.Request) -> web.Response:
        """GET /api/v2/markets/ (what ccxt's load_markets calls)."""
        return json_response([_market_info(m, self._description(m)) for m in self.markets])

    async def trading_pairs_info(self, request: web.Request) -> web.Response:
        """GET /api/v2/trading-pairs-info/ (the older markets endpoint)."""
        return json_response([_trading_pair(m, self._description(m)) for m in self.markets])

    async def currencies(self, request: web.Request) -> web.Response:
        """GET /api/v2/currencies/"""
        codes = sorted({code for m in self.markets for code in (m.base, m.quote)})
        return json_response([_currency(code, self.currency_name(code)) for code in codes])

    async def ohlc(self, request: web.Request) -> web.Response:
        """GET /api/v2/ohlc/{pair}/?step=&limit=&start=&end="""
        market = self._market(request)
        if market is None:
            return _error(404, "Invalid currency pair.", "API0009")
        now_ms = self.now_ms(market)
        try:
            step, limit, first_s, last_s = _ohlc_window(request, now_ms)
        except ValueError as exc:
            return _error(400, str(exc), "API0003")
        page = candle_page(request, market, step, first_s, last_s, now_ms, limit=limit)
        if isinstance(page, slice):
            head = b'{"data":{"pair":' + dumps(market.symbol) + b',"ohlc":['
            return raw_json_response(head + b",".join(self._rows.rows(market, page)) + b"]}}")
        return json_response({"data": {"pair": market.symbol, "ohlc": _ohlc_rows(market, page)}})

    async def transactions(self, request: web.Request) -> web.Response:
        """GET /api/v2/transactions/{pair}/?time=minute|hour|day: newest first."""
        market = self._market(request)
        if market is None:
            return _error(404, "Invalid currency pair.", "API0009")
        span = TRANSACTION_SPANS.get(request.query.get("time", "hour"))
        if span is None:
            return _error(400, "time: must be one of minute, hour, day.", "API0003")
        now_ms, newest_id = self.view(market)
        trades = series.trades_between(market, now_ms - span * 1000 + 1, now_ms + 1, now_ms)
        if newest_id is not None:  # a stream replay: nothing it has not emitted
            trades = trades.select(trades.trade_id <= newest_id)
        trades = trades.select(slice(None, None, -1))
        rows = [
            {
                "date": str(ts // 1000),
                "tid": str(tid),
                "amount": amount,
                "type": "1" if sell else "0",
                "price": price,
            }
            for ts, tid, amount, sell, price in zip(
                trades.ts_ms.tolist(),
                trades.trade_id.tolist(),
                market.volume_texts(trades.amount),
                trades.is_sell.tolist(),
                market.price_texts(trades.price),
                strict=True,
            )
        ]
        return json_response(rows)

    def _market(self, request: web.Request) -> Market | None:
        pair = request.match_info["pair"].lower()
        return next((m for m in self.markets if _pair_id(m) == pair), None)

    def _description(self, market: Market) -> str:
        return f"{self.currency_name(market.base)} / {self.currency_name(market.quote)}"


def _ohlc_rows(market: Market, bars: IntBars) -> list[dict]:
    """Bitstamp OHLC rows: every value a string, timestamp in epoch seconds."""
    return [
        {"high": h, "timestamp": str(t), "volume": v, "low": lo, "close": c, "open": o}
        for t, o, h, lo, c, v in zip(
            bars.ts.tolist(),
            market.price_texts(bars.open),
            market.price_texts(bars.high),
            market.price_texts(bars.low),
            market.price_texts(bars.close),
            market.volume_texts(bars.volume),
            strict=True,
        )
    ]


def _ohlc_window(request: web.Request, now_ms: int) -> tuple[int, int, int, int]:
    """(step, limit, first open time, last open time) or ValueError with Bitstamp's wording."""
    step, limit = int_param(request, "step"), int_param(request, "limit")
    if step is None or step not in STEPS:
        raise ValueError(f"step: must be one of {', '.join(map(str, STEPS))}.")
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: must be between 1 and {MAX_LIMIT}.")
    start, end = int_param(request, "start"), int_param(request, "end")
    span = (limit - 1) * step
    if start is not None and end is None:
        end = start + span
    elif start is None:
        end = now_ms // 1000 if end is None else end
        start = end - span
    if end < start:
        raise ValueError("end: must be after start.")
    # With both bounds Bitstamp lets `end` win: the `limit` candles ending at `end`.
    return step, limit, max(start, (end // step) * step - span), end


def _error(status: int, reason: str, code: str) -> web.Response:
    return json_response({"status": "error", "reason": reason, "code": code}, status)


def _pair_id(market: Market) -> str:
    return f"{market.base}{market.quote}".lower()


def _market_info(market: Market, description: str) -> dict:
    return {
        "name": market.symbol,
        "market_symbol": _pair_id(market),
        "base_currency": market.base,
        "base_decimals": VOLUME_DECIMALS,
        "counter_currency": market.quote,
        "counter_decimals": market.price_decimals,
        "minimum_order_value": "10",
        "trading": "Enabled",
        "instant_order_counter_decimals": market.price_decimals,
        "instant_and_market_orders": "Enabled",
        "description": description,
        "market_type": "SPOT",
    }


def _trading_pair(market: Market, description: str) -> dict:
    return {
        "name": market.symbol,
        "url_symbol": _pair_id(market),
        "base_decimals": VOLUME_DECIMALS,
        "counter_decimals": market.price_decimals,
        "instant_order_counter_decimals": market.price_decimals,
        "minimum_order": f"10.0 {market.quote}",
        "trading": "Enabled",
        "instant_and_market_orders": "Enabled",
        "description": description,
    }


def _currency(code: str, name: str) -> dict:
    fiat = code in FIAT
    return {
        "name": name,
        "currency": code,
        "type": "fiat" if fiat else "crypto",
        "symbol": "$" if code == "USD" else code,
        "decimals": 2 if fiat else VOLUME_DECIMALS,
        "logo": "",
        "available_supply": "",
        "deposit": "Enabled",
        "withdrawal": "Enabled",
        "networks": [],
    }
