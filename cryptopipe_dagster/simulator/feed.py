"""The live feed of one market on one venue: replays the tape to every subscribed channel.

A feed starts on its first subscription, at the configured start (default: the simulator clock),
and walks the tape at `speed` times real time (`max`: as fast as subscribers take it; with no
subscriber a `max` feed waits, a timed feed keeps running, so a reconnecting client has a real
gap to recover over REST). Every channel (trades; candles on venues that stream them) renders a
chunk of the tape into due times and message texts; the loop sends the earliest due message of
any channel, applies its stream fault, and enters each trade into the ledger as the trades
channel passes it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from cryptopipe_dagster.simulator import stream_faults as sf
from cryptopipe_dagster.simulator.channel import ChannelStream, Renderer
from cryptopipe_dagster.simulator.clock import iso_ms
from cryptopipe_dagster.simulator.ledger import Ledger
from cryptopipe_dagster.simulator.market_data import Market
from cryptopipe_dagster.simulator.stream_conn import Connection
from cryptopipe_dagster.simulator.tape import StreamConfig, TapeChunk, tape

if TYPE_CHECKING:
    from cryptopipe_dagster.simulator.hub import StreamHub

log = logging.getLogger("cryptopipe.simulator")

_YIELD_EVERY = 256  # messages between yields to the event loop when nothing else makes it wait


class MarketFeed:
    """Replay of one (venue, symbol) with its channels, ledger and replay position."""

    def __init__(self, hub: StreamHub, exchange: str, market: Market, channels: dict[str, Renderer]) -> None:
        self.hub, self.exchange, self.market = hub, exchange, market
        self._renderers = channels  # name -> renderer; the first one is the trades channel
        self.channels: dict[str, ChannelStream] = {}
        self.config = hub.config
        self._joined = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._reset_state()
        self.channel(next(iter(channels)))  # the trades channel always runs: it keeps the ledger

    def _reset_state(self) -> None:
        self.ledger = Ledger()
        self.state = "idle"
        self.error: str | None = None
        self.start_ms: int | None = None
        self._final_ms: int | None = None
        self._covered_ms: int | None = None  # end of the last chunk played (exclusive)
        self._chunk: TapeChunk | None = None
        self._last_due: int | None = None
        self._steps = 0
        self._generation = self.hub.faults.generation
        for channel in self.channels.values():
            channel.restart(self._plan(channel.name))

    def _plan(self, channel: str) -> sf.StreamFaultPlan:
        faults = self.hub.faults
        return sf.StreamFaultPlan(
            faults.plan.stream_rules, faults.seed, f"{self.exchange}|{self.market.symbol}|{channel}"
        )

    def channel(self, name: str) -> ChannelStream:
        """The channel stream (created on first use; KeyError for channels the venue lacks)."""
        if name not in self.channels:
            first = next(iter(self._renderers))
            stream = ChannelStream(name, self._renderers[name], name == first, self._plan(name))
            if self._chunk is not None:
                stream.load(self.market, self._chunk, self._last_due)
            self.channels[name] = stream
        return self.channels[name]

    def subscribe(self, conn: Connection, channel: str) -> None:
        """Add a listener; the first one starts the replay."""
        stream = self.channel(name=channel)
        conn.subscribe(stream)
        self._joined.set()
        if self.state == "idle":
            self.start()

    def start(self) -> None:
        """Begin the replay at the configured start (default: the clock now)."""
        self.start_ms = self.config.start_ms if self.config.start_ms is not None else self.hub.clock.now_ms()
        self._anchor(self.start_ms, self.config.speed)
        self.state = "running"
        self._task = asyncio.ensure_future(self._run())

    def reset(self, config: StreamConfig) -> None:
        """Stop, clear the ledger and replay again under `config` (listeners stay subscribed)."""
        if self._task is not None:
            self._task.cancel()
        self.config = config
        self._reset_state()
        if self.listening():
            self.start()

    def stop(self) -> None:
        """Cancel the replay task (server shutdown)."""
        if self._task is not None:
            self._task.cancel()

    def listening(self) -> bool:
        """Whether any channel has a subscriber."""
        return any(channel.subscribers for channel in self.channels.values())

    def position_ms(self) -> int | None:
        """How far the replay has got (None before it started); REST answers up to here."""
        if self._final_ms is not None or self.start_ms is None:
            return self._final_ms if self._final_ms is not None else None
        if self.config.speed is None:
            return self._last_due if self._last_due is not None else self.start_ms
        elapsed = asyncio.get_running_loop().time() - self._anchor_wall
        return int(self._anchor_pos + elapsed * self._rate * 1000)

    def current_ms(self) -> int:
        """The replay position, or where the replay will start when it has not yet."""
        position = self.position_ms()
        if position is not None:
            return position
        return self.config.start_ms if self.config.start_ms is not None else self.hub.clock.now_ms()

    def horizon_id(self) -> int | None:
        """The newest trade id the replay emitted: REST trades stop there too, so REST never shows a
        trade the stream has not reached (a stalled feed's clock runs on; its ledger does not)."""
        return self.ledger.last_id()

    def _anchor(self, position_ms: int, speed: float | None) -> None:
        self._anchor_pos, self._anchor_wall = position_ms, asyncio.get_running_loop().time()
        self._rate = speed or 0.0

    async def _run(self) -> None:
        try:
            for chunk in tape(self.market, self.start_ms, self.config):
                self._chunk = chunk
                self.ledger.begin(chunk.trades.trade_id, chunk.trades.ts_ms)
                for channel in self.channels.values():
                    channel.load(self.market, chunk)
                await self._play_chunk()
                self._covered_ms = chunk.end_ms
            if self._covered_ms is None:  # e.g. the default start (the wall clock) is past the recording
                log.warning(
                    "simulator_feed_empty exchange=%s symbol=%s start=%s reason=no_trades_after_start",
                    self.exchange,
                    self.market.symbol,
                    iso_ms(self.start_ms),
                )
            await self._finish()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must show in /_sim/stream, not kill the server silently
            log.exception("simulator_feed_failed exchange=%s symbol=%s", self.exchange, self.market.symbol)
            self.state, self.error = "error", repr(exc)

    async def _finish(self) -> None:
        final = self.start_ms if self._covered_ms is None else self._covered_ms - 1
        if self.config.speed is not None:
            await self._pace(final)
        for channel in self.channels.values():
            if channel.held is not None:
                await channel.broadcast(channel.held)
                channel.held = None
        self.ledger.commit()
        self._final_ms, self.state = final, "stopped"

    async def _play_chunk(self) -> None:
        while True:
            best, best_due = None, 0
            for channel in self.channels.values():
                if channel.cursor < len(channel.due):
                    due = channel.due[channel.cursor]
                    if best is None or due < best_due:
                        best, best_due = channel, due
            if best is None:
                return
            await self._pace(best_due)
            await self._process(best, best_due)

    async def _pace(self, due: int) -> None:
        self._steps += 1
        if self.config.speed is None:
            while not self.listening():
                self._joined.clear()
                await self._joined.wait()
            if self._steps % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            return
        delay = (
            self._anchor_wall
            + (due - self._anchor_pos) / (self._rate * 1000)
            - asyncio.get_running_loop().time()
        )
        if delay > 0:
            await asyncio.sleep(delay)
        elif self._steps % _YIELD_EVERY == 0:
            await asyncio.sleep(0)

    async def _process(self, channel: ChannelStream, due: int) -> None:
        if self._generation != self.hub.faults.generation:
            self._generation = self.hub.faults.generation
            for stream in self.channels.values():
                stream.reset(self._plan(stream.name))
        index = channel.cursor
        channel.cursor += 1
        channel.number += 1
        channel.processed += 1
        if channel.ledger:
            self.ledger.advance()
        self._last_due = due if self._last_due is None else max(self._last_due, due)
        code = int(channel.codes[index - channel.codes_from])
        text = channel.texts[index]
        if code:
            await self._fault(channel, code, text)
        else:
            await channel.broadcast(text)
        if channel.held is not None and code != sf.KIND_CODES[sf.WS_OUT_OF_ORDER]:
            held, channel.held = channel.held, None
            await channel.broadcast(held)
        if channel.burst_left and code != sf.KIND_CODES[sf.WS_BURST]:
            channel.burst_left -= 1
            if channel.burst_left == 0 and self.config.speed is not None:
                self._anchor(self.position_ms(), self.config.speed)

    async def _fault(self, channel: ChannelStream, code: int, text: str) -> None:
        kind = sf.KIND_NAMES[code]
        channel.faults[kind] += 1
        rng = channel.plan.rng(channel.number)
        settings = self.hub.faults.settings
        if kind == sf.WS_DISCONNECT:
            for conn in tuple(channel.subscribers):
                conn.drop(graceful=rng.random() < 0.5, code=rng.choice((1001, 1011)))
        elif kind == sf.WS_STALL:
            await asyncio.sleep(settings.stall_seconds)
            await channel.broadcast(text)
        elif kind == sf.WS_DUPLICATE:
            await channel.broadcast(text)
            await channel.broadcast(text)
        elif kind == sf.WS_OUT_OF_ORDER:
            if channel.held is not None:
                await channel.broadcast(channel.held)
            channel.held = text
        elif kind == sf.WS_MALFORMED:
            await channel.broadcast(sf.malformed_text(text, rng))
        elif kind == sf.WS_DRIFT:
            await channel.broadcast(sf.drifted_text(text, settings.drift_change, settings.drift_fields))
        elif kind == sf.WS_BURST:
            channel.burst_left = settings.burst_messages
            if self.config.speed is not None:  # `max` has no faster rate
                self._anchor(self.position_ms(), self.config.speed * settings.burst_factor)
            await channel.broadcast(text)

    def describe(self) -> dict:
        """JSON-ready status for GET /_sim/stream."""
        position = self.position_ms() if self.state != "idle" else None
        return {
            "exchange": self.exchange,
            "symbol": self.market.symbol,
            "state": self.state,
            "error": self.error,
            "start": None if self.start_ms is None else iso_ms(self.start_ms),
            "position": None if position is None else iso_ms(position),
            "emitted": self.ledger.count,
            "channels": {
                name: {
                    "subscribers": len(c.subscribers),
                    "messages": c.processed,
                    "sent": c.sent,
                    "faults": dict(c.faults),
                }
                for name, c in self.channels.items()
            },
        }
