"""All streams of one simulator app: feeds per (venue, symbol), the replay config, open sockets.

The hub is also the REST endpoints' view of the replay: `horizon` tells a venue up to when it may
answer for a market (the replay position when it is ahead of the clock), so REST serves every
trade a stream has emitted, with the same ids.
"""

from __future__ import annotations

import asyncio
import contextlib

from cryptopipe_dagster.simulator.channel import Renderer
from cryptopipe_dagster.simulator.clock import SimClock
from cryptopipe_dagster.simulator.faults import FaultInjector
from cryptopipe_dagster.simulator.feed import MarketFeed
from cryptopipe_dagster.simulator.ledger import Ledger
from cryptopipe_dagster.simulator.market_data import Market
from cryptopipe_dagster.simulator.stream_conn import Connection
from cryptopipe_dagster.simulator.tape import StreamConfig


class StreamHub:
    """Feeds are created on first subscription and replay under one shared `StreamConfig`."""

    def __init__(self, clock: SimClock, faults: FaultInjector, config: StreamConfig) -> None:
        self.clock, self.faults, self.config = clock, faults, config
        self.feeds: dict[tuple[str, str], MarketFeed] = {}
        self.connections: set[Connection] = set()
        self._markets: dict[str, dict[str, Market]] = {}
        self._channels: dict[str, dict[str, Renderer]] = {}

    def add_venue(self, exchange: str, markets: list[Market], channels: dict[str, Renderer]) -> None:
        """Make a venue's markets streamable with its channel renderers (trades channel first)."""
        self._markets[exchange] = {market.symbol: market for market in markets}
        self._channels[exchange] = channels

    def feed(self, exchange: str, symbol: str) -> MarketFeed | None:
        """The feed of a served market (created idle on first use), None for unknown markets."""
        key = (exchange, symbol)
        if key not in self.feeds:
            market = self._markets.get(exchange, {}).get(symbol)
            if market is None:
                return None
            self.feeds[key] = MarketFeed(self, exchange, market, self._channels[exchange])
        return self.feeds[key]

    def ledger(self, exchange: str, symbol: str) -> Ledger | None:
        """The emitted-trades ledger (empty before the feed started), None for unknown markets."""
        if symbol not in self._markets.get(exchange, {}):
            return None
        feed = self.feeds.get((exchange, symbol))
        return Ledger() if feed is None else feed.ledger

    def horizon(self, exchange: str, symbol: str, clock_ms: int) -> tuple[int, int | None]:
        """(now for REST, newest trade id REST may show or None): the replay position while it is
        ahead of the clock, and the last trade id the replay emitted."""
        feed = self.feeds.get((exchange, symbol))
        position = None if feed is None else feed.position_ms()
        start_ms = self.config.start_ms
        if position is None and start_ms is not None and start_ms <= clock_ms:
            # A replay waiting for its first subscriber: REST must not show what it will stream.
            return start_ms - 1, None
        if position is None or position <= clock_ms:
            return clock_ms, None
        return position, feed.horizon_id()

    def configure(self, config: StreamConfig) -> None:
        """New replay settings: every feed restarts from the new start with an empty ledger."""
        self.config = config
        for feed in self.feeds.values():
            feed.reset(config)

    async def shutdown(self) -> None:
        """Stop every feed and close every socket (going away), so the server stops promptly."""
        for feed in self.feeds.values():
            feed.stop()
        closing = [conn.ws.close(code=1001, message=b"server shutdown") for conn in tuple(self.connections)]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), timeout=2)

    def describe(self) -> dict:
        """JSON-ready status: config, streamable markets, feeds and open sockets."""
        return {
            "config": self.config.describe(),
            "markets": [
                f"{exchange}:{symbol}" for exchange, markets in self._markets.items() for symbol in markets
            ],
            "connections": len(self.connections),
            "feeds": [feed.describe() for feed in self.feeds.values()],
        }
