"""One market's outbox: buffer records, normalize + validate + dedup them, publish micro-batches.

The same `lib/` code as the historical path does the edge work (normalize_trades / normalize_ohlcv
and their Pandera schemas); rejected records leave as a ``dead_letters`` batch with their reason
codes. A batch Pub/Sub did not confirm after the publisher's own retries is published again, so
nothing is dropped; the checkpoint advances only over confirmed batches, in order.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, replace

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cryptopipe_dagster.lib.collector.checkpoint import CheckpointStore
from cryptopipe_dagster.lib.collector.dedup import RecentIds
from cryptopipe_dagster.lib.collector.metrics import CollectorMetrics
from cryptopipe_dagster.lib.collector.settings import CollectorSettings, MarketSpec
from cryptopipe_dagster.lib.edge.fingerprint import PayloadTracker, drift_classifier
from cryptopipe_dagster.lib.edge.fingerprint_store import SHAPES_ATTRIBUTE, shapes_attribute
from cryptopipe_dagster.lib.edge.normalize import normalize_ohlcv
from cryptopipe_dagster.lib.edge.normalize_trades import normalize_trades
from cryptopipe_dagster.lib.errors import InvalidBatch
from cryptopipe_dagster.lib.logs import log_event
from cryptopipe_dagster.lib.pubsub.codec import EncodedBatch, RecordKind, encode_batch
from cryptopipe_dagster.lib.pubsub.publisher import MarketDataPublisher

log = logging.getLogger("cryptopipe.collector")
CANDLE_TIMEFRAME = "1m"
_EPOCH = pd.Timestamp(0, tz="UTC")
_CANDLE_VALUES = ("ts", "open", "high", "low", "close", "volume")
_SENT_CANDLES_KEPT = 1_440  # a day of 1m candles remembered per market


@dataclass
class _InFlight:
    batch: EncodedBatch
    kind: RecordKind
    future: Future
    records: int
    event_ms: int
    arrived_at: float  # monotonic arrival of the batch's oldest record


class MarketOutbox:
    """Buffers and publishes one market's trades, closed candles and dead letters."""

    def __init__(
        self,
        spec: MarketSpec,
        settings: CollectorSettings,
        publisher: MarketDataPublisher,
        metrics: CollectorMetrics,
        checkpoint: CheckpointStore,
    ) -> None:
        self.spec, self.settings, self.publisher = spec, settings, publisher
        self.metrics, self.checkpoint = metrics, checkpoint
        self._labels = {"exchange": spec.exchange, "symbol": spec.symbol}
        self._trades: dict[str, list] = {"ws": [], "rest": []}
        self._candles: dict[str, list] = {"ws": [], "rest": []}
        self._first_at: float | None = None
        self._dedup = RecentIds(settings.dedup_capacity)
        # Payload shapes per endpoint (schema drift); new ones ride along with the next message.
        self.payloads = PayloadTracker()
        self.candle_high_ms = checkpoint.get(spec.key, "candles") or -1
        self._sent_candles: dict[int, tuple] = {}  # ts ms -> (open, high, low, close, volume) sent
        self._in_flight: deque[_InFlight] = deque()
        self.high_water_ms: int | None = checkpoint.get(spec.key, "trades")  # newest trade accepted
        # Where this collector's responsibility starts: its checkpoint, else the first streamed trade.
        # REST fills never reach further back (trades before it were never promised downstream).
        self.floor_ms: int | None = self.high_water_ms

    def anchor(self, floor_ms: int, ids: list[str]) -> None:
        """Answer for the trades after `floor_ms` (a first start without a checkpoint): the trades
        the venue had already served by then (`ids`) are not this collector's, and a fill that
        returns them again drops them as duplicates."""
        self.floor_ms = floor_ms
        self._dedup.remember(ids)

    # -- input -------------------------------------------------------------------------------
    def add_trades(self, trades: list, transport: str) -> None:
        """Queue ccxt trade dicts as received (transport: ws or rest)."""
        self._add(self._trades[transport], trades, "trades", transport)

    def add_candles(self, rows: list, transport: str) -> None:
        """Queue closed 1m candles as ccxt rows [ts, o, h, l, c, v]."""
        self._add(self._candles[transport], rows, "candles", transport)

    def _add(self, buffer: list, records: list, kind: str, transport: str) -> None:
        if not records:
            return
        buffer.extend(records)
        self.metrics.received.labels(**self._labels, kind=kind, transport=transport).inc(len(records))
        if self._first_at is None:
            self._first_at = time.monotonic()

    @property
    def buffered(self) -> int:
        """Records waiting to be published."""
        return sum(map(len, self._trades.values())) + sum(map(len, self._candles.values()))

    def due(self) -> bool:
        """True when the buffer is full or its oldest record waited batch_max_age_s."""
        if self._first_at is None:
            return False
        full = self.buffered >= self.settings.batch_max_records
        return full or time.monotonic() - self._first_at >= self.settings.batch_max_age_s

    # -- publishing ----------------------------------------------------------------------------
    def flush(self) -> int:
        """Normalize, validate and dedup the buffer, publish it; returns dead letters produced."""
        if self._first_at is None:
            return 0
        arrived, self._first_at = self._first_at, None
        now = pd.Timestamp.now(tz="UTC")
        dead = 0
        for transport, records in self._trades.items():
            if records:
                self._trades[transport] = []
                dead += self._flush_trades(records, transport, now, arrived)
        for transport, rows in self._candles.items():
            if rows:
                self._candles[transport] = []
                dead += self._flush_candles(rows, transport, now, arrived)
        self._update_depth()
        return dead

    def _flush_trades(self, records: list, transport: str, now: pd.Timestamp, arrived: float) -> int:
        endpoint = "watch_trades" if transport == "ws" else "fetch_trades"
        drift = drift_classifier(self.payloads, self.spec.exchange, endpoint, records, now)
        batch = normalize_trades(
            records,
            exchange=self.spec.exchange,
            source=transport,
            now=now,
            ingested_at=now,
            drift=drift,
            model_check=False,  # the columnar edge rules here; Pandera in the loader (see normalize_trades)
        )
        # Arrow from here to the wire: no pandas frame per flush (it was most of the collector's CPU).
        valid = batch.valid_arrow
        ids = valid["trade_id"].to_pylist()
        fresh = self._dedup.fresh(ids)
        dropped = batch.duplicates_dropped + int((~fresh).sum())
        if dropped:
            self.metrics.duplicates.labels(**self._labels, kind="trades").inc(dropped)
            valid = valid.filter(pa.array(fresh))
            ids = [trade_id for trade_id, keep in zip(ids, fresh, strict=True) if keep]
        if len(valid):
            self._dedup.remember(ids)
            oldest, newest = _epoch_ms_range(valid["ts"])
            if self.floor_ms is None and transport == "ws":
                self.floor_ms = oldest
            self.high_water_ms = max(self.high_water_ms or newest, newest)
            symbols = pc.unique(valid["symbol"])  # in order of appearance, as groupby(sort=False)
            for symbol in symbols:
                part = valid if len(symbols) == 1 else valid.filter(pc.equal(valid["symbol"], symbol))
                self._publish(part, "trades", arrived)
        return self._publish_dead(batch.dead_letters, arrived)

    def _flush_candles(self, rows: list, transport: str, now: pd.Timestamp, arrived: float) -> int:
        endpoint = "watch_ohlcv" if transport == "ws" else "fetch_ohlcv"
        batch = normalize_ohlcv(
            rows,
            exchange=self.spec.exchange,
            symbol=self.spec.symbol,
            timeframe=CANDLE_TIMEFRAME,
            source=transport,
            now=now,
            ingested_at=now,
            drift=drift_classifier(self.payloads, self.spec.exchange, endpoint, rows, now),
        )
        valid = batch.valid
        # Stream and REST both deliver closed candles: send a candle again only if it changed and is
        # at least as complete (a late out-of-order update, or the reconnect snapshot, can complete a
        # candle the stream closed early; volume only grows as a minute's trades arrive).
        fresh = [self._candle_changed(row) for row in valid[list(_CANDLE_VALUES)].itertuples()]
        if not all(fresh):
            self.metrics.duplicates.labels(**self._labels, kind="candles").inc(fresh.count(False))
        valid = valid.loc[fresh]
        if len(valid):
            self.candle_high_ms = max(self.candle_high_ms, int(_epoch_ms(valid["ts"]).max()))
            for row in valid[list(_CANDLE_VALUES)].itertuples(index=False):
                self._sent_candles[_epoch_ms_of(row.ts)] = tuple(row)[1:]
            while len(self._sent_candles) > _SENT_CANDLES_KEPT:
                self._sent_candles.pop(next(iter(self._sent_candles)))
            self._publish(valid, "candles", arrived)
        return self._publish_dead(batch.dead_letters, arrived)

    def _candle_changed(self, row) -> bool:
        sent = self._sent_candles.get(_epoch_ms_of(row.ts))
        values = (row.open, row.high, row.low, row.close, row.volume)
        if sent is None:
            return _epoch_ms_of(row.ts) > self.candle_high_ms - _SENT_CANDLES_KEPT * 60_000
        return values != sent and row.volume >= sent[-1]

    def _publish_dead(self, dead: pd.DataFrame, arrived: float) -> int:
        if not len(dead):
            return 0
        for reason, count in dead["reason_code"].value_counts().items():
            self.metrics.dead_letters.labels(**self._labels, reason=str(reason)).inc(int(count))
        log_event(
            log,
            "dead_letters",
            market=self.spec.key,
            count=len(dead),
            reasons=dead["reason_code"].value_counts().to_dict(),
        )
        self._publish(dead, "dead_letters", arrived)
        return len(dead)

    def _publish(self, records: pd.DataFrame | pa.Table, kind: RecordKind, arrived: float) -> None:
        try:
            batch = encode_batch(records, kind)
        except InvalidBatch as error:  # a bug, not data: our own frames always encode
            log_event(
                log, "encode_failed", level=logging.ERROR, market=self.spec.key, kind=kind, error=str(error)
            )
            raise
        times = records["first_seen_at" if kind == "dead_letters" else "ts"]
        event_ms = _epoch_ms_range(times)[1] if isinstance(records, pa.Table) else int(_epoch_ms(times).max())
        batch = self._with_new_shapes(batch)
        future = self.publisher.publish_encoded(batch)
        self._in_flight.append(_InFlight(batch, kind, future, len(records), event_ms, arrived))
        self.metrics.published.labels(**self._labels, kind=kind).inc(len(records))

    def _with_new_shapes(self, batch: EncodedBatch) -> EncodedBatch:
        """The batch carrying the payload shapes first seen since the last message (if any)."""
        shapes = shapes_attribute(self.payloads.take_pending())
        if shapes is None:
            return batch
        return replace(batch, attributes={**batch.attributes, SHAPES_ATTRIBUTE: shapes})

    def settle(self, *, republish: bool = True) -> None:
        """Account for confirmed batches (in order) and re-publish the ones that failed.

        With republish=False (after the publisher closed) a failed batch stops the accounting, so
        the checkpoint stays before it."""
        while self._in_flight and self._in_flight[0].future.done():
            item = self._in_flight.popleft()
            error = item.future.exception()
            if error is not None and not republish:
                self._in_flight.appendleft(item)
                break
            if error is not None:
                self.metrics.publish_failures.labels(**self._labels).inc()
                log_event(
                    log,
                    "republish",
                    level=logging.WARNING,
                    market=self.spec.key,
                    batch_id=item.batch.batch_id,
                    error=type(error).__name__,
                )
                item.future = self.publisher.publish_encoded(item.batch)
                self._in_flight.appendleft(item)
                break
            self.metrics.batches.labels(**self._labels, kind=item.kind).inc()
            self.metrics.receive_to_publish.labels(**self._labels).observe(time.monotonic() - item.arrived_at)
            if item.kind != "dead_letters":
                self.checkpoint.advance(self.spec.key, item.kind, item.event_ms)
                self.metrics.lag.labels(**self._labels).set(time.time() - item.event_ms / 1000)
        self._update_depth()

    @property
    def in_flight(self) -> int:
        """Batches handed to Pub/Sub and not confirmed yet."""
        return len(self._in_flight)

    def _update_depth(self) -> None:
        depth = self.buffered + sum(item.records for item in self._in_flight)
        self.metrics.queue_depth.labels(**self._labels).set(depth)


def _epoch_ms(times: pd.Series) -> pd.Series:
    return (times - _EPOCH) // pd.Timedelta(milliseconds=1)


def _epoch_ms_range(times: pa.ChunkedArray) -> tuple[int, int]:
    """Oldest and newest of an Arrow UTC timestamp column, in epoch ms."""
    bounds = pc.min_max(times.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()))
    return bounds["min"].as_py() // 1_000_000, bounds["max"].as_py() // 1_000_000


def _epoch_ms_of(ts: pd.Timestamp) -> int:
    return (ts - _EPOCH) // pd.Timedelta(milliseconds=1)
