"""What every venue shares: route declarations, JSON answers, the sim state and faulted candle pages."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from aiohttp import web

try:  # ccxt depends on orjson on CPython; the stdlib is the fallback
    import orjson
except ImportError:  # pragma: no cover
    orjson = None

from cryptopipe_dagster.simulator import series
from cryptopipe_dagster.simulator.clock import SimClock
from cryptopipe_dagster.simulator.derive import IntBars
from cryptopipe_dagster.simulator.fault_kinds import repeat_rows
from cryptopipe_dagster.simulator.faults import DUPLICATE_ROWS, DUPLICATES_APPLIED
from cryptopipe_dagster.simulator.market_data import Market, MarketStore

Category = Literal["data", "markets"]
Handler = Callable[[web.Request], Awaitable[web.Response]]

CURRENCY_NAMES = {
    "BTC": "Bitcoin",
    "ETH": "Ether",
    "LTC": "Litecoin",
    "BCH": "Bitcoin Cash",
    "XRP": "XRP",
    "USD": "U.S. dollar",
    "EUR": "Euro",
    "GBP": "British pound",
    "USDT": "Tether",
    "USDC": "USD Coin",
}
FIAT = frozenset({"USD", "EUR", "GBP"})


@dataclass(frozen=True)
class Route:
    """One endpoint of a venue; `category` decides whether faults may hit it."""

    method: str
    path: str  # relative to the venue prefix /<ccxt id>
    handler: Handler
    category: Category


class Horizon(Protocol):
    """Up to when REST may answer for a market: the stream hub, whose replay may run ahead of the clock."""

    def horizon(self, exchange: str, symbol: str, clock_ms: int) -> tuple[int, int | None]: ...


class Venue:
    """Base of an exchange API: subclasses set `exchange_id` and implement `routes` and the errors."""

    exchange_id = ""
    recording_exchange = ""  # whose recordings it serves, when not its own (see venues/kraken.py)

    def __init__(self, store: MarketStore, clock: SimClock) -> None:
        self.store = store
        self.clock = clock
        self.horizon: Horizon | None = None  # set by create_app once the stream hub exists
        self._markets: list[Market] = []
        self._by_symbol: dict[str, Market] = {}
        self.add_markets(self.recorded_markets())

    @classmethod
    def source_exchange(cls) -> str:
        """The exchange id of the recordings this venue serves."""
        return cls.recording_exchange or cls.exchange_id

    def recorded_markets(self) -> list[Market]:
        """The recorded markets this venue serves."""
        return self.store.markets(self.exchange_id)

    @property
    def markets(self) -> list[Market]:
        """Every market this venue serves: the recorded ones, then any derived ones (derived.py)."""
        return self._markets

    def add_markets(self, markets: list[Market]) -> None:
        """Serve more markets (derived ones); ValueError for a symbol the venue already serves."""
        for market in markets:
            if market.symbol in self._by_symbol:
                raise ValueError(f"{self.exchange_id} already serves {market.symbol}")
            self._by_symbol[market.symbol] = market
        self._markets = [*self._markets, *markets]

    def replace_market(self, market: Market) -> None:
        """Serve `market` in place of the one with its symbol (a scenario such as a flash crash)."""
        if market.symbol not in self._by_symbol:
            raise ValueError(f"{self.exchange_id} does not serve {market.symbol}")
        self._by_symbol[market.symbol] = market
        self._markets = [market if m.symbol == market.symbol else m for m in self._markets]

    def market(self, symbol: str) -> Market | None:
        """The served market of a unified symbol, None when the venue does not serve it."""
        return self._by_symbol.get(symbol)

    def currency_name(self, code: str) -> str:
        """A currency's display name; a derived base names the recording it was derived from."""
        if code in CURRENCY_NAMES:
            return CURRENCY_NAMES[code]
        source = next((m for m in self._markets if m.base == code and m.derived_from), None)
        if source is None:
            return code
        return f"{code} (simulated: {source.derived_from} x {source.price_factor})"

    def view(self, market: Market) -> tuple[int, int | None]:
        """(now for this market's data, newest trade id to show or None): the clock, or the stream
        replay's position when that is ahead, so REST serves every trade a stream has emitted."""
        clock_ms = self.clock.now_ms()
        if self.horizon is None:
            return clock_ms, None
        return self.horizon.horizon(market.exchange, market.symbol, clock_ms)

    def now_ms(self, market: Market) -> int:
        """`view(market)[0]`"""
        return self.view(market)[0]

    def routes(self) -> list[Route]:
        """Every endpoint of this venue."""
        raise NotImplementedError

    def throttle_error(self, status: int, retry_after_s: float) -> web.Response:
        """429 / 418 answer in this venue's shape (used by faults)."""
        raise NotImplementedError

    def server_error(self, status: int) -> web.Response:
        """5xx answer in this venue's shape (used by faults)."""
        raise NotImplementedError


def dumps(data: Any) -> bytes:
    """Compact JSON; orjson (a dependency of ccxt) when present: ~10x faster at float-heavy pages."""
    if orjson is not None:
        return orjson.dumps(data)
    return json.dumps(data, separators=(",", ":")).encode()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON answer with the venue's headers."""
    return raw_json_response(dumps(data), status, headers)


def raw_json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """An already encoded JSON body."""
    return web.Response(body=body, status=status, headers=headers, content_type="application/json")


class RowCache:
    """Encoded JSON rows of each market's recorded bars, rendered once: a page of complete
    recorded bars is then a join of byte strings (the common case of a backfill)."""

    def __init__(self, render: Callable[[Market, IntBars], list[Any]]) -> None:
        self._render = render
        self._rows: dict[tuple[str, str], list[bytes]] = {}

    def rows(self, market: Market, index: slice) -> list[bytes]:
        """Encoded rows of recorded bars `index`."""
        key = (market.exchange, market.symbol)
        if key not in self._rows:
            self._rows[key] = [dumps(row) for row in self._render(market, market.bars)]
        return self._rows[key][index]


def retry_after_text(seconds: float) -> str:
    """Retry-After value: whole seconds when integral, as the header is usually sent."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def candle_page(
    request: web.Request,
    market: Market,
    step: int,
    first_s: int,
    last_s: int,
    now_ms: int,
    limit: int | None = None,
) -> IntBars | slice:
    """Candles for one page, or a slice of the recorded bars when the page is exactly complete
    recorded bars. Under the duplicate_rows fault some rows repeat and the tail of the previous
    page (the bars just before `first_s`) is prepended, as a flaky paginator does."""
    rng = request.get(DUPLICATE_ROWS)
    if rng is None:
        index = series.recorded_slice(market, step, first_s, last_s, now_ms)
        if index is not None:
            return index if limit is None else slice(index.start, min(index.stop, index.start + limit))
    bars = series.candles(market, step, first_s, last_s, now_ms)
    if limit is not None:
        bars = bars.select(slice(0, limit))
    if rng is None or len(bars) == 0:
        return bars
    request[DUPLICATES_APPLIED] = True
    overlap = rng.randint(1, 3)
    earlier = series.candles(market, step, first_s - overlap * step, first_s - 1, now_ms)
    order = list(range(len(bars)))
    repeat_rows(order, rng)
    return IntBars.concat([earlier, bars.select(np.array(order))])


def int_param(request: web.Request, name: str) -> int | None:
    """An optional integer query parameter; ValueError (with the name) when not an integer."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"Invalid {name}") from None
