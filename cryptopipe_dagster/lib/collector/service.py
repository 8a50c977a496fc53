"""`Collector`: every configured market's streams in one asyncio process, publishing to Pub/Sub.

Life cycle: validate markets against ccxt.pro -> stream (streams.py) into per-market outboxes
(outbox.py) -> a flush loop publishes due buffers every few tens of milliseconds and settles
confirmations -> on stop (SIGTERM/SIGINT in the CLI, or a duration) the sessions end, buffers are
flushed, in-flight messages are awaited, and the checkpoint is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import asdict, dataclass

import ccxt
import ccxt.pro as ccxt_pro

from cryptopipe_dagster.lib.collector.checkpoint import CheckpointStore
from cryptopipe_dagster.lib.collector.metrics import CollectorMetrics
from cryptopipe_dagster.lib.collector.outbox import MarketOutbox
from cryptopipe_dagster.lib.collector.settings import CollectorSettings, MarketSpec
from cryptopipe_dagster.lib.collector.streams import CandleSession, TradeSession, sleep_unless, supervise
from cryptopipe_dagster.lib.errors import ConfigError, PublishFailed
from cryptopipe_dagster.lib.exchanges.url_override import point_exchange_at
from cryptopipe_dagster.lib.logs import log_event
from cryptopipe_dagster.lib.pubsub.publisher import MarketDataPublisher
from cryptopipe_dagster.lib.pubsub.publisher_client import PublisherSettings

log = logging.getLogger("cryptopipe.collector")
_FLUSH_TICK_S = 0.02
_CHECKPOINT_EVERY_S = 1.0
_MARKET_LIST_TIMEOUT_S = 15.0  # the shared market list; sessions load their own past this


@dataclass(frozen=True)
class CollectorReport:
    """What one run did, for the CLI summary and tests."""

    markets: list[str]
    duration_s: float
    records_received: int
    records_published: int
    batches_confirmed: int
    duplicates_dropped: int
    dead_letters: int
    reconnects: int
    gap_fills: int
    unpublished_batches: int
    checkpoint: dict

    def as_dict(self) -> dict:
        """JSON-ready."""
        return asdict(self)


class Collector:
    """``await Collector(settings).run(stop)``; `metrics_port` serves Prometheus /metrics (0: any port)."""

    def __init__(
        self,
        settings: CollectorSettings,
        *,
        publisher_settings: PublisherSettings | None = None,
        metrics_host: str = "127.0.0.1",
        metrics_port: int | None = None,
    ) -> None:
        self.settings = settings
        self.publisher_settings = publisher_settings or PublisherSettings(max_latency_s=0.01)
        self.metrics = CollectorMetrics()
        self.metrics_host, self.metrics_port = metrics_host, metrics_port
        self.checkpoint = CheckpointStore(settings.state_path)
        # exchange id -> its first client until that one has loaded markets, then (markets, currencies)
        self._markets: dict[str, object] = {}
        for spec in settings.markets:
            self._check_supported(spec)

    def make_exchange(self, exchange_id: str):
        """A fresh ccxt.pro client (one per connection: closing it is how a stalled socket is dropped).

        Clients of one exchange share its market list: the first client's, once it has loaded it. A
        client's own copy is ~0.8 MB and a market list request, so a hundred markets (a hundred
        clients, and more on every reconnect) would cost ~80 MB and a hundred requests for nothing."""
        options = {"tradesLimit": self.settings.trades_limit, **self.settings.extra_exchange_options}
        exchange = getattr(ccxt_pro, exchange_id)(
            {"enableRateLimit": True, "timeout": 10_000, "options": options}
        )
        if self.settings.exchange_api_url:
            point_exchange_at(exchange, self.settings.exchange_api_url)
        known = self._markets.setdefault(exchange_id, exchange)
        if known is not exchange and not isinstance(known, tuple) and known.markets:
            known = self._markets[exchange_id] = (known.markets, known.currencies)  # drop the client
        if isinstance(known, tuple):
            exchange.set_markets(*known)
        return exchange

    def _check_supported(self, spec: MarketSpec) -> None:
        if not hasattr(ccxt_pro, spec.exchange):
            raise ConfigError(f"market {spec.key}: ccxt.pro has no WebSocket support for {spec.exchange!r}")
        has = getattr(ccxt_pro, spec.exchange)().has
        if not has.get("watchTrades"):
            raise ConfigError(f"market {spec.key}: {spec.exchange} does not stream trades (watchTrades)")
        if spec.candles and not has.get("watchOHLCV"):
            raise ConfigError(f"market {spec.key}: {spec.exchange} does not stream candles (watchOHLCV)")

    async def run(
        self, stop: asyncio.Event | None = None, duration_s: float | None = None
    ) -> CollectorReport:
        """Collect until `stop` is set (or `duration_s` passed); flush and report."""
        stop = stop or asyncio.Event()
        started = time.monotonic()
        asyncio.get_running_loop().set_exception_handler(_log_loop_exception)
        if self.metrics_port is not None:
            self.metrics_port = self.metrics.serve(self.metrics_host, self.metrics_port)
        publisher = MarketDataPublisher(self.settings.project_id, settings=self.publisher_settings)
        await self._share_market_lists()
        outboxes: dict[str, MarketOutbox] = {}
        sessions: dict[str, TradeSession] = {}
        tasks: list[asyncio.Task] = []
        for spec in self.settings.markets:
            outbox = MarketOutbox(spec, self.settings, publisher, self.metrics, self.checkpoint)
            trades = TradeSession(spec, self.settings, outbox, self.metrics, stop)
            outboxes[spec.key], sessions[spec.key] = outbox, trades
            tasks.append(asyncio.create_task(self._supervise("trades", spec, trades, stop)))
            if spec.candles:
                candles = CandleSession(spec, self.settings, outbox, stop)
                tasks.append(asyncio.create_task(self._supervise("candles", spec, candles, stop)))
        log_event(
            log,
            "collector_started",
            markets=list(outboxes),
            project=self.settings.project_id,
            metrics_port=self.metrics_port,
            exchange_api_url=self.settings.exchange_api_url or "",
        )
        flusher = asyncio.create_task(self._flush_loop(outboxes, sessions, stop))
        try:
            if duration_s is not None:
                await sleep_unless(stop, duration_s)
                stop.set()
            await stop.wait()
        finally:
            stop.set()
            await asyncio.wait(tasks, timeout=self.settings.shutdown_timeout_s)
            for task in tasks:
                task.cancel()
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            unpublished = await asyncio.to_thread(self._drain, outboxes, publisher)
            self.metrics.stop()
        return self._report(list(outboxes), time.monotonic() - started, unpublished)

    async def _share_market_lists(self) -> None:
        """Load each exchange's market list once, before the sessions start, for all its clients to
        share (see make_exchange). If that fails, each session loads its own, with its retries."""
        for exchange_id in dict.fromkeys(spec.exchange for spec in self.settings.markets):
            client = self.make_exchange(exchange_id)
            try:
                await asyncio.wait_for(client.load_markets(), timeout=_MARKET_LIST_TIMEOUT_S)
            except (TimeoutError, ccxt.BaseError, OSError) as error:
                self._markets.pop(exchange_id, None)
                log_event(
                    log,
                    "market_list_not_shared",
                    level=logging.WARNING,
                    exchange=exchange_id,
                    error=f"{type(error).__name__}: {error}",
                )
            finally:
                with contextlib.suppress(ccxt.BaseError, OSError):
                    await client.close()

    async def _supervise(self, name: str, spec: MarketSpec, session, stop: asyncio.Event) -> None:
        await supervise(name, spec, self.settings, self.metrics, self.make_exchange, session, stop)

    async def _flush_loop(
        self, outboxes: dict[str, MarketOutbox], sessions: dict[str, TradeSession], stop: asyncio.Event
    ) -> None:
        next_save = time.monotonic() + _CHECKPOINT_EVERY_S
        while True:
            for key, outbox in outboxes.items():
                outbox.settle()
                if outbox.due():
                    before = outbox.high_water_ms
                    if outbox.flush():
                        sessions[key].on_dead_letters(before)
            if time.monotonic() >= next_save:
                self.checkpoint.save()
                next_save = time.monotonic() + _CHECKPOINT_EVERY_S
            await asyncio.sleep(_FLUSH_TICK_S)

    def _drain(self, outboxes: dict[str, MarketOutbox], publisher: MarketDataPublisher) -> int:
        """Flush buffers, wait for in-flight batches (graceful shutdown); returns batches left unpublished."""
        for outbox in outboxes.values():
            outbox.flush()
        unpublished = 0
        try:
            publisher.close(self.settings.shutdown_timeout_s)
        except PublishFailed as error:
            unpublished = len(error.failures)
            log_event(
                log,
                "unpublished_at_shutdown",
                level=logging.ERROR,
                batches=unpublished,
                note="the checkpoint stays before them: the next start fills them over REST",
            )
        for outbox in outboxes.values():
            outbox.settle(republish=False)
        self.checkpoint.save()
        return unpublished

    def _report(self, markets: list[str], duration_s: float, unpublished: int) -> CollectorReport:
        total = self.metrics.total
        report = CollectorReport(
            markets=markets,
            duration_s=round(duration_s, 3),
            records_received=int(total("cryptopipe_collector_records_received_total")),
            records_published=int(total("cryptopipe_collector_records_published_total")),
            batches_confirmed=int(total("cryptopipe_collector_batches_confirmed_total")),
            duplicates_dropped=int(total("cryptopipe_collector_duplicates_dropped_total")),
            dead_letters=int(total("cryptopipe_collector_dead_letters_total")),
            reconnects=int(total("cryptopipe_collector_reconnects_total")),
            gap_fills=int(total("cryptopipe_collector_gap_fills_total")),
            unpublished_batches=unpublished,
            checkpoint=self.checkpoint.snapshot(),
        )
        log_event(log, "collector_stopped", **report.as_dict())
        return report


def _log_loop_exception(_loop: asyncio.AbstractEventLoop, context: dict) -> None:
    # ccxt parses frames in loop callbacks: an unparseable frame ends up here (and its socket goes
    # quiet, which the stall watchdog turns into a reconnect). One structured line, not a traceback.
    error = context.get("exception")
    log_event(
        log,
        "stream_callback_error",
        level=logging.WARNING,
        message=context.get("message", ""),
        error=f"{type(error).__name__}: {error}" if error else "",
    )
