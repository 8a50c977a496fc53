"""REST recovery of the trades a stream may have missed: everything from a given time on.

Each venue pages its public trades differently, so the strategy is chosen per exchange:

- ``since`` (Kraken and, by default, any exchange ccxt pages by time): forward pages from the time.
- ``pages_back`` (Coinbase Exchange): newest first, then older pages through the ``after`` cursor
  until a page reaches back to the time.
- ``time_window`` (Bitstamp): only the last hour or day is served; a longer outage cannot be
  recovered and the fill says so (``complete=False``), which the collector counts and logs.

Trades older than the time are dropped here; overlap with the stream is removed by the collector's
duplicate filter (and, beyond it, by the warehouse MERGE).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import ccxt

STRATEGIES = {"coinbaseexchange": "pages_back", "bitstamp": "time_window"}
PAGE_LIMIT = 1_000
MAX_PAGES = 200  # one fill never pages forever; the next fill continues from what this one reached
_RETRYABLE = (ccxt.NetworkError, ccxt.BadResponse, ccxt.ExchangeNotAvailable)


@dataclass(frozen=True)
class GapFill:
    """Trades fetched from `from_ms` on, whether they surely reach back that far, and the cost.

    `unfilled` is the span [start_ms, end_ms) an incomplete fill could not cover (end None: up to
    where the stream resumed): what the venue no longer serves, logged as evidence for the gap the
    trade reconciliation then records in the gap ledger (ops.gaps)."""

    trades: list[dict]
    complete: bool
    requests: int
    unfilled: tuple[int, int | None] | None = None


async def fetch_trades_from(
    exchange, symbol: str, from_ms: int, *, until_ms: int | None = None, attempts: int = 5
) -> GapFill:
    """Every trade of `symbol` with timestamp >= from_ms that the venue still serves; with `until_ms`
    forward paging stops once a page reaches it (what follows, the stream delivers)."""
    strategy = STRATEGIES.get(exchange.id, "since")
    calls = _Calls(exchange, symbol, attempts)
    if strategy == "since":
        trades, complete = await _since(calls, from_ms, until_ms)
    else:
        fetch = {"pages_back": _pages_back, "time_window": _time_window}[strategy]
        trades, complete = await fetch(calls, from_ms)
    # Whole seconds: some venues (Bitstamp's REST) time trades to the second only, so a trade the
    # stream timed 12:00:00.806 comes back as 12:00:00.000; the extra overlap is deduplicated.
    second = from_ms - from_ms % 1000
    kept = [t for t in trades if _not_older(t, second)]
    unfilled = None if complete else _unfilled(strategy, from_ms, _times(kept), until_ms)
    return GapFill(kept, complete, calls.count, unfilled)


def _unfilled(strategy: str, from_ms: int, times: list[int], until_ms: int | None) -> tuple[int, int | None]:
    # Backward strategies reach down to their oldest trade; the forward one stops at its newest.
    if strategy == "since":
        return (max(times) if times else from_ms, until_ms)
    return (from_ms, min(times) if times else until_ms)


def _not_older(trade: object, from_ms: int) -> bool:
    # A record without a readable time is kept: normalization dead-letters it with its reason.
    ts = _ts(trade) if isinstance(trade, dict) else None
    return ts is None or ts >= from_ms


class _Calls:
    """fetch_trades with retries (exponential backoff, full jitter) and a request counter."""

    def __init__(self, exchange, symbol: str, attempts: int) -> None:
        self.exchange, self.symbol, self.attempts, self.count = exchange, symbol, attempts, 0

    async def fetch(self, **kwargs) -> list[dict]:
        for attempt in range(self.attempts):
            self.count += 1
            try:
                page = await self.exchange.fetch_trades(self.symbol, **kwargs)
                return page if isinstance(page, list) else []
            except _RETRYABLE:
                if attempt == self.attempts - 1:
                    raise
                await asyncio.sleep(random.uniform(0, min(8.0, 0.25 * 2**attempt)))
        return []


def _ts(trade: dict) -> int | None:
    value = trade.get("timestamp") if isinstance(trade, dict) else None
    return value if isinstance(value, int) else None


def _times(page: list[dict]) -> list[int]:
    return [ts for ts in map(_ts, page) if ts is not None]


async def _since(calls: _Calls, from_ms: int, until_ms: int | None = None) -> tuple[list[dict], bool]:
    # Page until a page brings nothing new. Not "until a short page": ccxt (Kraken) asks from the
    # whole second and drops what precedes `since`, so a full page can arrive short.
    out: list[dict] = []
    seen: set = set()
    cursor = from_ms - from_ms % 1000  # the whole second: ccxt would drop its earlier trades
    for _ in range(MAX_PAGES):
        page = await calls.fetch(since=cursor, limit=PAGE_LIMIT)
        new = [t for t in page if t.get("id") not in seen]
        if not new:
            return out, True
        out.extend(new)
        seen.update(t.get("id") for t in new)
        times = _times(new)
        if not times or max(times) <= cursor:
            # New trades but no progress in time: more than a page in one instant; cannot page on.
            return out, False
        if until_ms is not None and max(times) >= until_ms:
            return out, True
        cursor = max(times)
    return out, False


async def _pages_back(calls: _Calls, from_ms: int) -> tuple[list[dict], bool]:
    out: list[dict] = []
    params: dict = {}
    for _ in range(MAX_PAGES):
        page = await calls.fetch(limit=PAGE_LIMIT, params=params)
        out.extend(page)
        times = _times(page)
        ids = [int(t["id"]) for t in page if str(t.get("id", "")).isdigit()]
        if len(page) < PAGE_LIMIT or not times or min(times) < from_ms or not ids:
            return out, True
        params = {"after": min(ids)}
    return out, False


async def _time_window(calls: _Calls, from_ms: int) -> tuple[list[dict], bool]:
    page: list[dict] = []
    for span in ("hour", "day"):
        page = await calls.fetch(params={"time": span})
        times = _times(page)
        if times and min(times) <= from_ms:
            return page, True
    return page, False
