"""Per-market stream sessions under one supervisor: reconnect with backoff, stall watchdog, REST fills.

Why a watchdog: on a frame that is not valid JSON, ccxt's receive loop ends without an error and
watch_* waits until the keepalive gives up (a minute or more); a market that stays silent longer
than `stall_timeout_s` is reconnected instead. After every (re)connect, and on a stall, a dead
letter (the record may have been a trade), an overflow of ccxt's trade cache, or the periodic
sweep, the trades since the last one accepted (minus a margin) are fetched over REST, after the
subscription is in place, so the stream and the fill overlap instead of leaving a hole.

Why an anchor: a market with neither a checkpoint nor a streamed trade has no time to fill from.
Its first session reads the venue's newest trades before it subscribes; from then on the
collector answers for every later trade, also those sent before a reconnect that came ahead of the
first stream message (without it those were lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable

import ccxt

from cryptopipe_dagster.lib.collector.gap_fill import fetch_trades_from
from cryptopipe_dagster.lib.collector.metrics import CollectorMetrics
from cryptopipe_dagster.lib.collector.outbox import CANDLE_TIMEFRAME, MarketOutbox
from cryptopipe_dagster.lib.collector.settings import CollectorSettings, MarketSpec
from cryptopipe_dagster.lib.edge.coerce import MAX_EPOCH_MS, MIN_EPOCH_MS
from cryptopipe_dagster.lib.logs import log_event

log = logging.getLogger("cryptopipe.collector")
_POLL_S = 0.25  # the longest a session waits before looking at the stop flag again
_FILL_RETRY_S = 2.0


class Stalled(Exception):
    """No message within the stall timeout."""


def log_failure(event: str, market: str, error: BaseException, **fields: object) -> None:
    """One WARNING line for a REST call that failed (the session carries on and retries later)."""
    detail = f"{type(error).__name__}: {error}"
    log_event(log, event, level=logging.WARNING, market=market, error=detail, **fields)


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, waking early when `stop` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def supervise(
    name: str,
    spec: MarketSpec,
    settings: CollectorSettings,
    metrics: CollectorMetrics,
    make_exchange: Callable[[str], object],
    session: Callable[[object], Awaitable[None]],
    stop: asyncio.Event,
) -> None:
    """Run `session(exchange)` on fresh connections until `stop`; back off (full jitter) between them.

    A session returns when `stop` is set and raises when its connection is lost; one that received
    something (its `received` flag) resets the backoff. The same error `unhealthy_after` times in a
    row is a bug or a misconfiguration, not weather: the stream is marked unhealthy (metric, one
    ERROR log with the stack) and retried every `unhealthy_retry_s`; other streams carry on."""
    labels = {"exchange": spec.exchange, "symbol": spec.symbol}
    unhealthy = metrics.unhealthy.labels(**labels, stream=name)
    unhealthy.set(0)
    repeated = RepeatedError(settings.unhealthy_after)
    attempt, was_broken = 0, False
    while not stop.is_set():
        exchange = make_exchange(spec.exchange)
        cause, detail, stack = None, "", ""
        try:
            await session(exchange)
        except asyncio.CancelledError:
            raise
        except Stalled:
            cause = "stall"
        except (ccxt.NetworkError, ConnectionError) as error:
            cause = "disconnect"
            detail = f"{type(error).__name__}: {error}"
        except Exception as error:  # noqa: BLE001 - any other failure also ends in a reconnect
            cause = "error"
            detail = f"{type(error).__name__}: {error}"
            stack = traceback.format_exc()
        finally:
            with contextlib.suppress(Exception):
                await exchange.close()
        if stop.is_set() or cause is None:
            return
        received = getattr(session, "received", False)
        broken = repeated.record(detail if cause == "error" else None, received=received)
        attempt = 0 if received else min(attempt + 1, 16)
        delay = random.uniform(0, min(settings.reconnect_max_s, settings.reconnect_initial_s * 2**attempt))
        if broken:
            delay = settings.unhealthy_retry_s
            if not was_broken:  # entering the state: say it once, with the stack
                log_event(
                    log,
                    "stream_unhealthy",
                    level=logging.ERROR,
                    stream=name,
                    market=spec.key,
                    failures=repeated.count,
                    retry_s=delay,
                    detail=detail,
                    stack=stack,
                )
        unhealthy.set(1 if broken else 0)
        was_broken = broken
        metrics.reconnects.labels(**labels, cause=cause).inc()
        log_event(
            log,
            "reconnect",
            level=logging.WARNING,
            stream=name,
            market=spec.key,
            cause=cause,
            delay_s=round(delay, 3),
            detail=detail,
        )
        await sleep_unless(stop, delay)


class RepeatedError:
    """The same error again and again on one stream: how many in a row."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self._last: str | None = None

    def record(self, error: str | None, *, received: bool) -> bool:
        """Note one failed session (`error` None: weather, a stall or a disconnect; `received`: it
        got data before failing, so it is not a streak); True from `limit` identical errors on."""
        if error is None or error != self._last or received:
            self.count = 0
        self._last = error
        self.count += error is not None
        return self.count >= self.limit


class Watch:
    """One pending ccxt.pro watch_* call at a time, polled without cancelling it.

    Cancelling a watch call on a timeout (asyncio.wait_for) can lose what it was about to return:
    the trades stay in ccxt's cache, unseen until the next frame. Here a call is only cancelled when
    the session ends."""

    def __init__(self, call) -> None:
        self._call = call
        self._task: asyncio.Task | None = None

    async def next(self, timeout_s: float):
        """The call's result, or None if it has not returned within `timeout_s` (it stays pending)."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._call())
        done, _pending = await asyncio.wait({self._task}, timeout=timeout_s)
        if not done:
            return None
        task, self._task = self._task, None
        return task.result()  # raises what the call raised (disconnects end the session)

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            # The watch's own cancellation is expected; the session's is not ours to swallow.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        except Exception:  # noqa: BLE001, S110 - the session is over: what the watch raised no longer matters
            pass


class TradeSession:
    """One connection's life for a market's trades: watch, watchdog, fills, sweeps."""

    def __init__(
        self,
        spec: MarketSpec,
        settings: CollectorSettings,
        outbox: MarketOutbox,
        metrics: CollectorMetrics,
        stop: asyncio.Event,
    ) -> None:
        self.spec, self.settings, self.outbox, self.metrics, self.stop = spec, settings, outbox, metrics, stop
        self._labels = {"exchange": spec.exchange, "symbol": spec.symbol}
        self._fill_from: int | None = None
        self._fill_trigger = ""
        self._next_fill_at = 0.0
        self._next_sweep = time.monotonic() + settings.sweep_interval_s
        self._sweep_mark = outbox.high_water_ms
        self._connects = 0
        self.received = False
        # Read at scrape time, so the age grows while the market is silent (the stale-market alert).
        self._last_message_at = time.monotonic()
        metrics.last_message_age.labels(**self._labels).set_function(
            lambda: time.monotonic() - self._last_message_at
        )

    def request_fill(self, trigger: str, from_ms: int | None) -> None:
        """Ask for a REST fill from `from_ms` (minus the margin); the earliest request wins."""
        if from_ms is None:
            return
        start = from_ms - int(self.settings.fill_margin_s * 1000)
        if self.outbox.floor_ms is not None:
            start = max(start, self.outbox.floor_ms)
        if self._fill_from is None or start < self._fill_from:
            self._fill_from, self._fill_trigger = start, trigger

    async def __call__(self, exchange) -> None:
        self._connects += 1
        self.received = False
        await exchange.load_markets()
        if self.outbox.floor_ms is None:
            await self._anchor(exchange)
        resume_ms = self.outbox.high_water_ms
        self.request_fill(
            "start" if self._connects == 1 else "reconnect",
            resume_ms if resume_ms is not None else self.outbox.floor_ms,
        )
        async with Watch(lambda: exchange.watch_trades(self.spec.symbol)) as watch:
            await self._stream(exchange, watch)

    async def _stream(self, exchange, watch: Watch) -> None:
        last_message = time.monotonic()
        subscribed = False
        while not self.stop.is_set():
            now = time.monotonic()
            if subscribed and self._fill_from is not None and now >= self._next_fill_at:
                await self._fill(exchange)
            if now >= self._next_sweep:
                self.request_fill("sweep", self._sweep_mark)
                self._sweep_mark, self._next_sweep = (
                    self.outbox.high_water_ms,
                    now + self.settings.sweep_interval_s,
                )
            if now - last_message >= self.settings.stall_timeout_s:
                raise Stalled(f"no trade message for {self.settings.stall_timeout_s} s")
            wait = min(_POLL_S, last_message + self.settings.stall_timeout_s - now)
            trades = await watch.next(max(wait, 0.01))
            subscribed = True
            if trades is None:
                continue
            last_message, self.received = time.monotonic(), True
            self._last_message_at = last_message
            before = self.outbox.high_water_ms
            self.outbox.add_trades(trades, "ws")
            if len(trades) >= self.settings.trades_limit:  # ccxt's cache overflowed: some were evicted
                self.request_fill("overflow", before)

    async def _anchor(self, exchange) -> None:
        """Where this collector's responsibility starts when nothing says so yet (see the module
        docstring): just after the newest trade the venue serves now. Should the venue not answer,
        the first streamed trade is the start, as before, and the next connect tries again."""
        try:
            page = await exchange.fetch_trades(self.spec.symbol)
        except (ccxt.BaseError, OSError) as error:
            log_failure("anchor_failed", self.spec.key, error)
            return
        served = [t for t in page if isinstance(t, dict)] if isinstance(page, list) else []
        times = [t.get("timestamp") for t in served]
        times = [ms for ms in times if type(ms) is int and MIN_EPOCH_MS <= ms < MAX_EPOCH_MS]
        if not times:  # a market without trades yet: its first streamed trade is the start
            return
        floor_ms = max(times) + 1
        self.outbox.anchor(floor_ms, [str(t["id"]) for t in served if t.get("id") is not None])
        log_event(log, "anchored", market=self.spec.key, floor_ms=floor_ms, served=len(served))

    async def _fill(self, exchange) -> None:
        from_ms, trigger = self._fill_from, self._fill_trigger
        self._fill_from = None
        # Up to where the stream already delivers (plus the margin): paging on past it in a busy
        # market would chase the stream for ever while nobody reads the socket.
        newest = self.outbox.high_water_ms
        until_ms = None if newest is None else newest + int(self.settings.fill_margin_s * 1000)
        try:
            result = await fetch_trades_from(exchange, self.spec.symbol, from_ms, until_ms=until_ms)
        except (ccxt.BaseError, OSError) as error:
            self.request_fill(trigger, from_ms + int(self.settings.fill_margin_s * 1000))
            self._next_fill_at = time.monotonic() + _FILL_RETRY_S
            self.metrics.gap_fills.labels(**self._labels, trigger=trigger, outcome="failed").inc()
            log_failure("gap_fill_failed", self.spec.key, error, trigger=trigger)
            return
        self.outbox.add_trades(result.trades, "rest")
        outcome = "complete" if result.complete else "incomplete"
        self.metrics.gap_fills.labels(**self._labels, trigger=trigger, outcome=outcome).inc()
        log_event(
            log,
            "gap_fill",
            level=logging.INFO if result.complete else logging.WARNING,
            market=self.spec.key,
            trigger=trigger,
            from_ms=from_ms,
            trades=len(result.trades),
            requests=result.requests,
            complete=result.complete,
            unfilled=result.unfilled,
        )

    def on_dead_letters(self, before_ms: int | None) -> None:
        """A rejected record may have been a trade: fetch the span again over REST."""
        self.request_fill("dead_letter", before_ms)


class CandleSession:
    """One connection's life for a market's 1m candles: only closed candles leave the collector."""

    def __init__(
        self, spec: MarketSpec, settings: CollectorSettings, outbox: MarketOutbox, stop: asyncio.Event
    ) -> None:
        self.spec, self.settings, self.outbox, self.stop = spec, settings, outbox, stop
        self._open: list | None = None  # the newest candle seen: still forming
        self.received = False

    async def __call__(self, exchange) -> None:
        self.received = False
        await exchange.load_markets()
        async with Watch(lambda: exchange.watch_ohlcv(self.spec.symbol, CANDLE_TIMEFRAME)) as watch:
            await self._stream(exchange, watch)

    async def _stream(self, exchange, watch: Watch) -> None:
        last_message = time.monotonic()
        filled = False
        while not self.stop.is_set():
            now = time.monotonic()
            if now - last_message >= self.settings.stall_timeout_s:
                raise Stalled(f"no candle message for {self.settings.stall_timeout_s} s")
            rows = await watch.next(_POLL_S)
            if rows is None:
                rows = []
            else:
                last_message, self.received = time.monotonic(), True
            self._take(rows, "ws")
            if not filled and self._open is not None:
                await self._fill(exchange)
                filled = True

    def _take(self, rows: list, transport: str) -> None:
        """Rows older than the newest one are closed; the newest stays open until a newer one starts."""
        rows = [r for r in rows if isinstance(r, list | tuple) and r and isinstance(r[0], int)]
        if self._open is not None:
            rows = [self._open, *rows]
        if not rows:
            return
        newest = max(r[0] for r in rows)
        latest: dict[int, list] = {}
        for row in rows:
            latest[row[0]] = list(row)  # the last update of a candle is its final value
        self._open = latest.pop(newest)
        self.outbox.add_candles(sorted(latest.values()), transport)

    async def _fill(self, exchange) -> None:
        """After (re)connecting: the closed candles since the last one published, over REST."""
        since = self.outbox.candle_high_ms
        if since < 0 or self._open is None:
            return
        try:
            rows = await exchange.fetch_ohlcv(self.spec.symbol, CANDLE_TIMEFRAME, since=since + 1)
        except (ccxt.BaseError, OSError) as error:
            log_failure("candle_fill_failed", self.spec.key, error)
            return
        closed = [r for r in rows or [] if isinstance(r, list | tuple) and r and r[0] < self._open[0]]
        self.outbox.add_candles(closed, "rest")
