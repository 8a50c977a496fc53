"""One channel of a market feed (e.g. Kraken's `trade` or `ohlc-1`): rendered messages of the current
tape chunk, their fault codes, and the sockets listening."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cryptopipe_dagster.simulator import stream_faults as sf
from cryptopipe_dagster.simulator.market_data import Market
from cryptopipe_dagster.simulator.stream_conn import Connection
from cryptopipe_dagster.simulator.tape import TapeChunk

Rendered = tuple[list[int], list[str]]  # (due times in ms, message texts), ascending
Renderer = Callable[[Market, TapeChunk], Rendered]


@dataclass(eq=False)  # identity semantics: channels live in sets of subscriptions
class ChannelStream:
    """One channel of a feed (e.g. Kraken's `trade`, `ohlc-1`): the current chunk's messages,
    its message count since the fault plan was installed, and who listens."""

    name: str
    render: Renderer
    ledger: bool  # the trades channel: its n-th message of a chunk is the chunk's n-th trade
    plan: sf.StreamFaultPlan

    def __post_init__(self) -> None:
        self.subscribers: set[Connection] = set()
        self.due: list[int] = []
        self.texts: list[str] = []
        self.cursor = 0
        self.codes = np.zeros(0, dtype=np.int8)
        self.codes_from = 0
        self.number = 0  # messages counted since the fault plan was installed
        self.processed = 0  # messages of this replay
        self.held: str | None = None
        self.burst_left = 0
        self.sent = 0
        self.faults: Counter = Counter()

    def load(self, market: Market, chunk: TapeChunk, after_ms: int | None = None) -> None:
        """Render a chunk; a channel created mid-chunk skips what is already past."""
        self.due, self.texts = self.render(market, chunk)
        self.cursor = 0 if after_ms is None else int(np.searchsorted(self.due, after_ms, "right"))
        self.decide()

    def decide(self) -> None:
        """Fault codes for the rest of the chunk, numbered on from the messages already counted."""
        self.codes = self.plan.decide(self.number + 1, len(self.texts) - self.cursor)
        self.codes_from = self.cursor

    def reset(self, plan: sf.StreamFaultPlan) -> None:
        """A new fault plan (or a new replay): count messages from 1 again."""
        self.plan, self.number = plan, 0
        self.decide()

    def restart(self, plan: sf.StreamFaultPlan) -> None:
        """A new replay: nothing loaded, held or counted."""
        self.due, self.texts, self.cursor, self.held, self.burst_left = [], [], 0, None, 0
        self.processed = self.sent = 0
        self.faults.clear()
        self.reset(plan)

    async def broadcast(self, text: str) -> None:
        """Send to every subscriber; dead ones leave."""
        for conn in tuple(self.subscribers):
            if not await conn.send(text):
                conn.detach()
        self.sent += 1
