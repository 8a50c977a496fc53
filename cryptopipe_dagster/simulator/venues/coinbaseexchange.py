"""Coinbase Exchange public market-data REST API (ccxt id `coinbaseexchange`).

Shapes follow the real API as ccxt 4.5 requests and parses it: candles are
`[[time, low, high, open, close, volume], ...]` newest first with numbers, at most 300 per request;
trades are newest first with string price/size and ISO 8601 times, paginated by trade id with the
`cb-before` / `cb-after` headers; errors are `{"message": "..."}`.
"""

from __future__ import annotations

import numpy as np
from aiohttp import web

from cryptopipe_dagster.simulator import series
from cryptopipe_dagster.simulator.clock import SimClock, iso_ms, parse_instant
from cryptopipe_dagster.simulator.derive import IntBars
from cryptopipe_dagster.simulator.market_data import VOLUME_DECIMALS, Market, MarketStore
from cryptopipe_dagster.simulator.trades import Trades
from cryptopipe_dagster.simulator.venues.common import (
    FIAT,
    Route,
    RowCache,
    Venue,
    candle_page,
    int_param,
    json_response,
    raw_json_response,
    retry_after_text,
)

GRANULARITIES = (60, 300, 900, 3600, 21600, 86400)
MAX_CANDLES = 300
MAX_TRADES = 1000


class CoinbaseExchange(Venue):
    """Routes under /coinbaseexchange (ccxt's `https://api.{hostname}`)."""

    exchange_id = "coinbaseexchange"

    def __init__(self, store: MarketStore, clock: SimClock) -> None:
        super().__init__(store, clock)
        self._rows = RowCache(_candle_rows)

    def routes(self) -> list[Route]:
        """Every endpoint ccxt's public coinbaseexchange methods call."""
        return [
            Route("GET", "/products", self.products, "markets"),
            Route("GET", "/products/{id}", self.product, "markets"),
            Route("GET", "/currencies", self.currencies, "markets"),
            Route("GET", "/time", self.time, "markets"),
            Route("GET", "/products/{id}/candles", self.candles, "data"),
            Route("GET", "/products/{id}/trades", self.trades, "data"),
        ]

    def throttle_error(self, status: int, retry_after_s: float) -> web.Response:
        """Coinbase answers throttling with a JSON message."""
        message = "Public rate limit exceeded" if status == 429 else "Forbidden"
        return json_response({"message": message}, status, {"Retry-After": retry_after_text(retry_after_s)})

    def server_error(self, status: int) -> web.Response:
        """5xx with Coinbase's JSON message body."""
        return json_response({"message": "Internal server error"}, status)

    async def products(self, request: web.Request) -> web.Response:
        """GET /products"""
        return json_response([_product(m) for m in self.markets])

    async def product(self, request: web.Request) -> web.Response:
        """GET /products/{id}"""
        market = self._market(request)
        return _not_found() if market is None else json_response(_product(market))

    async def currencies(self, request: web.Request) -> web.Response:
        """GET /currencies: every currency of a recorded market."""
        codes = sorted({code for m in self.markets for code in (m.base, m.quote)})
        return json_response([_currency(code, self.currency_name(code)) for code in codes])

    async def time(self, request: web.Request) -> web.Response:
        """GET /time, on the simulator's clock."""
        now_ms = self.clock.now_ms()
        return json_response({"iso": iso_ms(now_ms), "epoch": now_ms / 1000})

    async def candles(self, request: web.Request) -> web.Response:
        """GET /products/{id}/candles?granularity=&start=&end="""
        market = self._market(request)
        if market is None:
            return _not_found()
        now_ms = self.now_ms(market)
        try:
            step, first_s, last_s = _candle_window(request, now_ms)
        except ValueError as exc:
            return json_response({"message": str(exc)}, 400)
        page = candle_page(request, market, step, first_s, last_s, now_ms)
        if isinstance(page, slice):
            encoded = self._rows.rows(market, page)
            encoded.reverse()
            return raw_json_response(b"[" + b",".join(encoded) + b"]")
        rows = _candle_rows(market, page)
        rows.reverse()
        return json_response(rows)

    async def trades(self, request: web.Request) -> web.Response:
        """GET /products/{id}/trades?limit=&after=&before= (after: older than id, before: newer)."""
        market = self._market(request)
        if market is None:
            return _not_found()
        try:
            limit = int_param(request, "limit") or MAX_TRADES
            after, before = int_param(request, "after"), int_param(request, "before")
        except ValueError as exc:
            return json_response({"message": str(exc)}, 400)
        if not 1 <= limit <= MAX_TRADES:
            return json_response({"message": f"limit must be between 1 and {MAX_TRADES}"}, 400)
        now_ms, newest_id = self.view(market)
        if newest_id is not None and before is None:  # a stream replay: nothing it has not emitted
            after = newest_id + 1 if after is None else min(after, newest_id + 1)
        if before is not None and after is None:
            trades = series.trades_newer_than(market, before, limit, now_ms)
        else:
            trades = series.trades_older_than(market, after, limit, now_ms)
        if newest_id is not None:
            trades = trades.select(trades.trade_id <= newest_id)
        return _trades_response(market, trades)

    def _market(self, request: web.Request) -> Market | None:
        return self.market(request.match_info["id"].upper().replace("-", "/"))


def _candle_rows(market: Market, bars: IntBars) -> list[tuple]:
    """[time, low, high, open, close, volume] with numbers, as Coinbase sends them."""
    return list(
        zip(
            bars.ts.tolist(),
            market.prices(bars.low).tolist(),
            market.prices(bars.high).tolist(),
            market.prices(bars.open).tolist(),
            market.prices(bars.close).tolist(),
            market.volumes(bars.volume).tolist(),
            strict=True,
        )
    )


def _candle_window(request: web.Request, now_ms: int) -> tuple[int, int, int]:
    """(granularity, first open time, last open time) per Coinbase's rules, or ValueError."""
    raw = request.query.get("granularity", "60")
    if not raw.isdigit() or int(raw) not in GRANULARITIES:
        raise ValueError("Unsupported granularity")
    step = int(raw)
    start, end = _instant_param(request, "start"), _instant_param(request, "end")
    span = (MAX_CANDLES - 1) * step
    if start is None and end is None:
        end = now_ms // 1000
    if start is None:
        start = end - span
    if end is None:
        end = start + span
    if end < start:
        raise ValueError("start must be before end")
    first, last = -(-start // step) * step, (end // step) * step
    if (last - first) // step + 1 > MAX_CANDLES:
        raise ValueError(
            "granularity too small for the requested time range. Count of aggregations requested exceeds 300"
        )
    return step, start, end


def _instant_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_instant(raw) // 1000
    except ValueError:
        raise ValueError(f"Invalid {name}") from None


def _trades_response(market: Market, trades: Trades) -> web.Response:
    order = np.arange(len(trades))[::-1]  # newest first
    times = np.datetime_as_string(trades.ts_ms[order].astype("datetime64[ms]"), unit="us")
    # Coinbase's public `side` is the maker's side; ccxt flips it back to the taker's.
    sides = np.where(trades.is_sell[order], "buy", "sell").tolist()
    rows = [
        {"time": f"{t}Z", "trade_id": tid, "price": price, "size": size, "side": side}
        for t, tid, price, size, side in zip(
            times.tolist(),
            trades.trade_id[order].tolist(),
            market.price_texts(trades.price[order]),
            market.volume_texts(trades.amount[order]),
            sides,
            strict=True,
        )
    ]
    headers = {}
    if rows:
        headers = {"cb-before": str(rows[0]["trade_id"]), "cb-after": str(rows[-1]["trade_id"])}
    return json_response(rows, headers=headers)


def _not_found() -> web.Response:
    return json_response({"message": "NotFound"}, 404)


def _product(market: Market) -> dict:
    return {
        "id": f"{market.base}-{market.quote}",
        "base_currency": market.base,
        "quote_currency": market.quote,
        "quote_increment": _increment(market.price_decimals),
        "base_increment": _increment(VOLUME_DECIMALS),
        "base_min_size": "0.00001",
        "base_max_size": "1500",
        "display_name": market.symbol,
        "min_market_funds": "1",
        "max_market_funds": "20000000",
        "margin_enabled": False,
        "fx_stablecoin": False,
        "max_slippage_percentage": "0.02000000",
        "post_only": False,
        "limit_only": False,
        "cancel_only": False,
        "trading_disabled": False,
        "status": "online",
        "status_message": "",
        "auction_mode": False,
    }


def _currency(code: str, name: str) -> dict:
    fiat = code in FIAT
    increment = "0.01" if fiat else _increment(VOLUME_DECIMALS)
    return {
        "id": code,
        "name": name,
        "min_size": increment,
        "status": "online",
        "message": "",
        "max_precision": increment,
        "convertible_to": [],
        "details": {
            "type": "fiat" if fiat else "crypto",
            "symbol": "$" if code == "USD" else code,
            "sort_order": 0,
            "push_payment_methods": [],
            "group_types": [],
            "display_name": None,
        },
        "default_network": "" if fiat else code.lower(),
        "supported_networks": [],
    }


def _increment(decimals: int) -> str:
    return "1" if decimals == 0 else "0." + "0" * (decimals - 1) + "1"
