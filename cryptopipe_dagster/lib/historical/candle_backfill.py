"""Historical OHLCV backfill of one (exchange, market, timeframe) window: paginate, normalize,
load, checkpoint, then repair gaps.

Resume: the checkpoint table keeps, per (exchange, symbol, timeframe), the contiguous range
[window_start, fetched_through) that is durably loaded. A window inside it is skipped (unless
refetch), a window that starts inside it resumes at fetched_through, anything else starts over.
Candles, dead letters and the checkpoint are written in one transaction, so a crash at any point
loses nothing and a re-run duplicates nothing (the MERGE key is deterministic).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import ccxt
import pandas as pd

from cryptopipe_dagster.lib.edge.normalize import normalize_ohlcv
from cryptopipe_dagster.lib.exchanges.clients import DEFAULT_RETRY, RetryPolicy, call_with_retries
from cryptopipe_dagster.lib.historical.gaps import find_gaps
from cryptopipe_dagster.lib.timeframes import timeframe_ms
from cryptopipe_dagster.lib.warehouse import Checkpoint, Warehouse

log = logging.getLogger(__name__)
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
    skipped_complete: bool = False
    resumed_from: pd.Timestamp | None = None
    dead_letter_reasons: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0
    pending: list[pd.DataFrame] = field(default_factory=list, repr=False)
    pending_dead: list[pd.DataFrame] = field(default_factory=list, repr=False)

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


def resume_point(checkpoint: Checkpoint | None, target: BackfillTarget) -> pd.Timestamp | None:
    """Where to start, or None when the checkpoint says the window is already fully loaded."""
    if checkpoint is None:
        return target.start
    covered_from, through = checkpoint.window_start, checkpoint.fetched_through
    if covered_from <= target.start and target.end <= through:
        return None
    if covered_from <= target.start <= through:
        return through
    return target.start


def _checkpoint(
    target: BackfillTarget, covered_from: pd.Timestamp, through: pd.Timestamp, run_id: str | None
) -> Checkpoint:
    return Checkpoint(
        exchange=target.exchange,
        symbol=target.symbol,
        timeframe=target.timeframe,
        window_start=covered_from,
        window_end=target.end,
        fetched_through=through,
        updated_at=pd.Timestamp.now(tz="UTC"),
        run_id=run_id,
    )


NORMALIZE_ROWS = 20_000  # rows fetched before they are normalized and validated as one batch


def _flush(warehouse: Warehouse, stats: BackfillStats, checkpoint: Checkpoint | None) -> None:
    """One transaction: candles (deduplicated across pages), dead letters, checkpoint."""
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


def _fetch_range(
    exchange: ccxt.Exchange,
    target: BackfillTarget,
    since: pd.Timestamp,
    end: pd.Timestamp,
    now: pd.Timestamp,
    stats: BackfillStats,
    on_page: Callable[[pd.Timestamp], None],
    retry: RetryPolicy,
    normalize_rows: int = 0,
) -> None:
    """Paginate [since, end) into stats.pending; on_page(next_since) after each page."""
    step_ms, limit = timeframe_ms(target.timeframe), page_limit_of(exchange)
    # Nothing at or after the open candle can be final: do not even ask for it.
    end = closed_until(now, target.timeframe, end)
    since_ms, end_ms = int(since.value // 1_000_000), int(end.value // 1_000_000)
    rows_pending: list = []

    def normalize_pending() -> None:
        # Pages are normalized and validated together (one Pandera call per NORMALIZE_ROWS rows, not
        # per 300-row page: per-call overhead was most of a backfill's CPU time).
        if rows_pending:
            _normalize_into(stats, rows_pending, target, since, end, now)
            rows_pending.clear()

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
        if len(rows_pending) >= (normalize_rows or NORMALIZE_ROWS) or since_ms >= end_ms:
            normalize_pending()
        on_page(pd.Timestamp(min(since_ms, end_ms), unit="ms", tz="UTC"))
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
    batch = normalize_ohlcv(
        list(rows),
        exchange=target.exchange,
        symbol=target.symbol,
        timeframe=target.timeframe,
        source="rest",
        now=now,
    )
    stats.pending.append(batch.valid[(batch.valid["ts"] >= since) & (batch.valid["ts"] < end)])
    stats.pending_dead.append(batch.dead_letters)
    stats.duplicates_dropped += batch.duplicates_dropped
    stats.incomplete_dropped += batch.incomplete_dropped
    stats.dead_letters += len(batch.dead_letters)
    if not batch.dead_letters.empty:
        stats.dead_letter_reasons.update(batch.dead_letters["reason_code"].value_counts().to_dict())


def backfill_candles(
    exchange: ccxt.Exchange,
    warehouse: Warehouse,
    target: BackfillTarget,
    *,
    now: pd.Timestamp,
    run_id: str | None = None,
    refetch: bool = False,
    flush_rows: int = 50_000,
    progress: ProgressCallback | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> BackfillStats:
    """Backfill one target to the warehouse; see the module docstring for resume semantics."""
    started = time.monotonic()
    stats = BackfillStats(target=target)
    checkpoint = warehouse.get_checkpoint(target.exchange, target.symbol, target.timeframe)
    since = target.start if refetch else resume_point(checkpoint, target)
    if since is None:
        stats.skipped_complete = True
        return stats
    if since > target.start:
        stats.resumed_from = since
    covered_from = checkpoint.window_start if since > target.start and checkpoint else target.start
    # Never checkpoint past the last closed candle: the open one must be fetched again next time.
    final_until = closed_until(now, target.timeframe, target.end)

    def on_page(next_since: pd.Timestamp) -> None:
        pending = sum(len(f) for f in stats.pending)
        if progress:
            progress(target, next_since, stats.rows_loaded + pending)
        if pending >= flush_rows:
            through = min(next_since, final_until)
            _flush(warehouse, stats, _checkpoint(target, covered_from, through, run_id))

    # Normalize at least as often as we flush: a flush (and its checkpoint) needs normalized rows.
    normalize_rows = min(NORMALIZE_ROWS, flush_rows)
    _fetch_range(exchange, target, since, target.end, now, stats, on_page, retry, normalize_rows)
    _flush(warehouse, stats, _checkpoint(target, covered_from, max(final_until, covered_from), run_id))
    repair_gaps(exchange, warehouse, target, now=now, stats=stats, retry=retry)
    stats.elapsed_s = time.monotonic() - started
    log.info(
        "backfill_done exchange=%s symbol=%s timeframe=%s inserted=%d updated=%d dead_letters=%d "
        "duplicates_dropped=%d requests=%d elapsed_s=%.2f",
        target.exchange,
        target.symbol,
        target.timeframe,
        stats.inserted,
        stats.updated,
        stats.dead_letters,
        stats.duplicates_dropped,
        stats.requests,
        stats.elapsed_s,
    )
    return stats


def repair_gaps(
    exchange: ccxt.Exchange,
    warehouse: Warehouse,
    target: BackfillTarget,
    *,
    now: pd.Timestamp,
    stats: BackfillStats,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> None:
    """Re-fetch each missing span once: transient faults heal, real outages stay reported gaps."""
    step = pd.Timedelta(milliseconds=timeframe_ms(target.timeframe))
    end = closed_until(now, target.timeframe, target.end)
    present = warehouse.candle_timestamps(target.exchange, target.symbol, target.timeframe, target.start, end)
    if present.empty:
        return
    # Only holes between loaded candles: before the first listing there is nothing to repair.
    gaps = find_gaps(present, present.min(), end, target.timeframe)
    before = stats.inserted
    for gap_start, gap_end, _missing in gaps:
        _fetch_range(exchange, target, gap_start, gap_end + step, now, stats, lambda _since: None, retry)
    if gaps:
        _flush(warehouse, stats, None)
    stats.gap_candles_repaired = stats.inserted - before
