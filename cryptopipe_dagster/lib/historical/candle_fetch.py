"""Fetching one market's OHLCV over REST (ccxt): paginate [since, end), normalize and validate in
batches, and MERGE with dead letters (and, for a backfill, its checkpoint) in one write.

The backfill (candle_backfill.py) and the gap repair (gap_repair.py) both fetch through here, so a
repaired span goes through exactly the path its first fetch took.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import ccxt
import pandas as pd

from cryptopipe_dagster.lib.edge.fingerprint import PayloadTracker, drift_classifier
from cryptopipe_dagster.lib.edge.fingerprint_store import known_shapes, observations_frame
from cryptopipe_dagster.lib.edge.normalize import normalize_ohlcv
from cryptopipe_dagster.lib.exchanges.clients import DEFAULT_RETRY, RetryPolicy, call_with_retries
from cryptopipe_dagster.lib.historical.overlap import OrderedWorker
from cryptopipe_dagster.lib.timeframes import timeframe_ms
from cryptopipe_dagster.lib.warehouse import Checkpoint, Warehouse

CANDLE_KEY = ["exchange", "symbol", "timeframe", "ts"]
DEFAULT_PAGE_LIMIT = 500


@dataclass(frozen=True)
class BackfillTarget:
    """One market and timeframe over [start, end) (UTC, end exclusive)."""

    exchange: str
    symbol: str
    timeframe: str
    start: pd.Timestamp
    end: pd.Timestamp


@dataclass
class BackfillStats:
    """What one backfill did; every field becomes Dagster metadata."""

    target: BackfillTarget
    inserted: int = 0
    updated: int = 0
    already_present: int = 0
    duplicates_dropped: int = 0
    dead_letters: int = 0
    incomplete_dropped: int = 0
    requests: int = 0
    gap_candles_repaired: int = 0
    gaps_recorded: int = 0
    returned: int = 0
    skipped_complete: bool = False
    resumed_from: pd.Timestamp | None = None
    dead_letter_reasons: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0
    # Seconds spent normalizing and loading (overlapped with the fetches on a worker thread).
    processing_s: float = 0.0
    pending: list[pd.DataFrame] = field(default_factory=list, repr=False)
    pending_dead: list[pd.DataFrame] = field(default_factory=list, repr=False)
    # Payload shapes of fetch_ohlcv (schema drift); seeded from ops.payload_fingerprints by payload_tracker.
    payloads: PayloadTracker = field(default_factory=PayloadTracker, repr=False)

    @property
    def rows_loaded(self) -> int:
        return self.inserted + self.updated


ProgressCallback = Callable[[BackfillTarget, pd.Timestamp, int], None]


def page_limit_of(exchange: ccxt.Exchange) -> int:
    """The largest OHLCV page the exchange serves, from ccxt's feature table."""
    try:
        limit = exchange.features["spot"]["fetchOHLCV"]["limit"]
    except (KeyError, TypeError):
        limit = None
    return int(limit) if isinstance(limit, int) and limit > 0 else DEFAULT_PAGE_LIMIT


def exchange_now(exchange: ccxt.Exchange, retry: RetryPolicy = DEFAULT_RETRY) -> pd.Timestamp:
    """The exchange's clock when it tells it (so 'incomplete' means incomplete there), else ours."""
    wall = pd.Timestamp.now(tz="UTC")
    if not exchange.has.get("fetchTime"):
        return wall
    server_ms = call_with_retries(exchange, exchange.fetch_time, what="fetch_time", policy=retry)
    return min(wall, pd.Timestamp(server_ms, unit="ms", tz="UTC")) if server_ms else wall


def closed_until(now: pd.Timestamp, timeframe: str, end: pd.Timestamp) -> pd.Timestamp:
    """min(end, open time of the candle still open at `now`): everything before it is final."""
    step = pd.Timedelta(milliseconds=timeframe_ms(timeframe))
    open_candle = pd.Timestamp((now.value // step.value) * step.value, tz="UTC")
    return min(end, open_candle)


NORMALIZE_ROWS = 20_000  # rows fetched before they are normalized and validated as one batch
OHLCV_ENDPOINT = "fetch_ohlcv"


def payload_tracker(warehouse: Warehouse, exchange: str) -> PayloadTracker:
    """A tracker that knows the exchange's last stored fetch_ohlcv shape (drift is measured
    against the previous run, not only within this one)."""
    stored = warehouse.payload_fingerprints(exchange=exchange, endpoint=OHLCV_ENDPOINT)
    return PayloadTracker(known=known_shapes(stored))


def flush(warehouse: Warehouse, stats: BackfillStats, checkpoint: Checkpoint | None) -> None:
    """One transaction: candles (deduplicated across pages), dead letters, checkpoint.

    New payload shapes are stored first (outside it: they are observations, not loaded data)."""
    observed = stats.payloads.take_pending()
    if observed:
        warehouse.record_payload_fingerprints(observations_frame(observed))
    frames = [f for f in stats.pending if not f.empty]
    candles = pd.concat(frames, ignore_index=True) if frames else None
    if candles is not None:
        before = len(candles)
        candles = candles.drop_duplicates(subset=CANDLE_KEY, keep="last")
        stats.duplicates_dropped += before - len(candles)
    dead = [f for f in stats.pending_dead if not f.empty]
    dead_letters = pd.concat(dead, ignore_index=True) if dead else None
    merged = warehouse.merge_candles_with_checkpoint(candles, dead_letters, checkpoint)
    stats.inserted += merged.inserted
    stats.updated += merged.updated
    stats.already_present += merged.unchanged
    stats.pending.clear()
    stats.pending_dead.clear()


def fetch_range(
    exchange: ccxt.Exchange,
    target: BackfillTarget,
    since: pd.Timestamp,
    end: pd.Timestamp,
    now: pd.Timestamp,
    stats: BackfillStats,
    on_page: Callable[[pd.Timestamp, int], None],
    retry: RetryPolicy,
    normalize_rows: int = 0,
    worker: OrderedWorker | None = None,
) -> None:
    """Paginate [since, end) into stats.pending; after each page on_page(next_since, rows handed to
    normalization by that page: 0, or every row fetched since the last time, up to next_since).

    With a worker, each batch is normalized on it while the next pages are fetched (overlap.py);
    on_page must then queue its flushes on the same worker, after the batches they cover."""
    step_ms, limit = timeframe_ms(target.timeframe), page_limit_of(exchange)
    # Nothing at or after the open candle can be final: do not even ask for it.
    end = closed_until(now, target.timeframe, end)
    since_ms, end_ms = int(since.value // 1_000_000), int(end.value // 1_000_000)
    rows_pending: list = []

    def normalize_pending() -> int:
        # Pages are normalized and validated together (one Pandera call per NORMALIZE_ROWS rows, not
        # per 300-row page: per-call overhead was most of a backfill's CPU time).
        if not rows_pending:
            return 0
        batch = rows_pending[:]
        rows_pending.clear()
        if worker is None:
            _normalize_into(stats, batch, target, since, end, now)
        else:
            worker.submit(_normalize_into, stats, batch, target, since, end, now)
        return len(batch)

    while since_ms < end_ms:
        rows = call_with_retries(
            exchange,
            lambda s=since_ms: exchange.fetch_ohlcv(target.symbol, target.timeframe, s, limit),
            what=f"fetch_ohlcv {target.symbol} {target.timeframe}",
            policy=retry,
        )
        stats.requests += 1
        rows = rows if isinstance(rows, list | tuple) else []
        rows_pending.extend(rows)
        newest = _newest_open_ms(rows, since_ms, end_ms)
        # The cursor follows the page's candle times (a row rejected later for its values still
        # existed); a page without any usable time is skipped (an outage gap, or one repair retries).
        since_ms = since_ms + limit * step_ms if newest is None else max(since_ms + step_ms, newest + step_ms)
        handed = 0
        if len(rows_pending) >= (normalize_rows or NORMALIZE_ROWS) or since_ms >= end_ms:
            handed = normalize_pending()
        on_page(pd.Timestamp(min(since_ms, end_ms), unit="ms", tz="UTC"), handed)
    normalize_pending()


def _newest_open_ms(rows: list, since_ms: int, end_ms: int) -> int | None:
    """The latest open time (ms) among rows shaped [int ts, ...] inside [since_ms, end_ms)."""
    times = [
        row[0]
        for row in rows
        if isinstance(row, list | tuple) and row and type(row[0]) is int and since_ms <= row[0] < end_ms
    ]
    return max(times) if times else None


def _normalize_into(
    stats: BackfillStats,
    rows: list,
    target: BackfillTarget,
    since: pd.Timestamp,
    end: pd.Timestamp,
    now: pd.Timestamp,
) -> None:
    rows = list(rows)
    drift = drift_classifier(
        stats.payloads, target.exchange, OHLCV_ENDPOINT, rows, pd.Timestamp.now(tz="UTC")
    )
    batch = normalize_ohlcv(
        rows,
        exchange=target.exchange,
        symbol=target.symbol,
        timeframe=target.timeframe,
        source="rest",
        now=now,
        drift=drift,
    )
    stats.pending.append(batch.valid[(batch.valid["ts"] >= since) & (batch.valid["ts"] < end)])
    stats.pending_dead.append(batch.dead_letters)
    stats.duplicates_dropped += batch.duplicates_dropped
    stats.incomplete_dropped += batch.incomplete_dropped
    stats.dead_letters += len(batch.dead_letters)
    if not batch.dead_letters.empty:
        stats.dead_letter_reasons.update(batch.dead_letters["reason_code"].value_counts().to_dict())


def fetch_span(
    exchange: ccxt.Exchange,
    warehouse: Warehouse,
    target: BackfillTarget,
    *,
    now: pd.Timestamp,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> BackfillStats:
    """Fetch [target.start, target.end) and MERGE it (no checkpoint): the repair of one gap.
    `stats.returned` counts the valid candles the exchange answered inside the span."""
    stats = BackfillStats(target=target, payloads=payload_tracker(warehouse, target.exchange))
    fetch_range(exchange, target, target.start, target.end, now, stats, lambda _since, _rows: None, retry)
    stats.returned = sum(len(frame) for frame in stats.pending)
    flush(warehouse, stats, None)
    return stats
