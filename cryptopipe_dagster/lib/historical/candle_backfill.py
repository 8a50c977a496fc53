"""Historical OHLCV backfill of one (exchange, market, timeframe) window: fetch what is not loaded
yet, checkpoint it, then record the window's gaps in the ledger and make one repair attempt.

Resume: the checkpoint keeps, per (exchange, symbol, timeframe), the SET of durably loaded ranges
(ranges.py). A backfill asks only for the parts of its window outside them (all of it with
refetch), and each loaded part joins the set, so disjoint backfills, resumes after a crash and a
later covering run compose. Candles, dead letters and the checkpoint are written in one
transaction (DuckDB; in order, data first, on BigQuery), so a crash loses nothing and a re-run
duplicates nothing (the MERGE key is deterministic).

Gaps inside loaded ranges are the gap ledger's job (gap_ledger.py, gap_repair.py): the backfill
records every missing span it finds and tries each due one once; the scheduled repair retries them
with backoff until they fill or are confirmed as the exchange's own outage.
"""

from __future__ import annotations

import logging
import time

import ccxt
import pandas as pd

from cryptopipe_dagster.lib.exchanges.clients import DEFAULT_RETRY, RetryPolicy
from cryptopipe_dagster.lib.historical.candle_fetch import (
    NORMALIZE_ROWS,
    BackfillStats,
    BackfillTarget,
    ProgressCallback,
    closed_until,
    exchange_now,
    fetch_range,
    flush,
    page_limit_of,
    payload_tracker,
)
from cryptopipe_dagster.lib.historical.gap_ledger import CANDLES_KIND, OPEN, GapPolicy, new_gaps
from cryptopipe_dagster.lib.historical.gap_repair import repair_gaps
from cryptopipe_dagster.lib.historical.gaps import find_gaps
from cryptopipe_dagster.lib.historical.overlap import OrderedWorker
from cryptopipe_dagster.lib.historical.ranges import RangeSet, add_range, missing_parts
from cryptopipe_dagster.lib.timeframes import timeframe_ms
from cryptopipe_dagster.lib.warehouse import Checkpoint, Warehouse

__all__ = [
    "BackfillStats",
    "BackfillTarget",
    "backfill_candles",
    "closed_until",
    "exchange_now",
    "find_window_gaps",
    "listed_window",
    "page_limit_of",
]

log = logging.getLogger(__name__)


def _checkpoint(target: BackfillTarget, loaded: RangeSet, at: pd.Timestamp, run_id: str | None) -> Checkpoint:
    # window_start / fetched_through: the loaded range holding `at` (what this write extended).
    start, through = next(((lo, hi) for lo, hi in loaded if lo <= at <= hi), (at, at))
    return Checkpoint(
        exchange=target.exchange,
        symbol=target.symbol,
        timeframe=target.timeframe,
        window_start=start,
        window_end=target.end,
        fetched_through=through,
        updated_at=pd.Timestamp.now(tz="UTC"),
        run_id=run_id,
        loaded_ranges=loaded,
    )


def _load_part(
    exchange: ccxt.Exchange,
    warehouse: Warehouse,
    target: BackfillTarget,
    part: tuple[pd.Timestamp, pd.Timestamp],
    loaded: RangeSet,
    *,
    now: pd.Timestamp,
    stats: BackfillStats,
    run_id: str | None,
    flush_rows: int,
    progress: ProgressCallback | None,
    retry: RetryPolicy,
    overlap: bool,
) -> RangeSet:
    """Fetch one unloaded part of the window; every flush adds what is durable to the range set."""
    start, end = part
    # Never checkpoint past the last closed candle: the open one must be fetched again next time.
    final_until = closed_until(now, target.timeframe, end)

    fetched = 0  # rows handed to normalization since the last flush was queued

    def on_page(next_since: pd.Timestamp, handed: int) -> None:
        # A flush is queued only on a page that handed every fetched row to normalization (handed >
        # 0), after those batches: its checkpoint never covers a row that is not in the flush.
        nonlocal fetched
        fetched += handed
        if progress:
            progress(target, next_since, stats.rows_loaded + sum(len(f) for f in stats.pending))
        if fetched >= flush_rows:
            fetched = 0
            through = min(next_since, final_until)
            checkpoint = _checkpoint(target, add_range(loaded, start, through), start, run_id)
            worker.submit(flush, warehouse, stats, checkpoint)

    # Normalize at least as often as we flush: a flush (and its checkpoint) needs normalized rows.
    normalize_rows = min(NORMALIZE_ROWS, flush_rows)
    with OrderedWorker(inline=not overlap) as worker:  # normalize + load overlap the next fetches
        fetch_range(exchange, target, start, end, now, stats, on_page, retry, normalize_rows, worker)
    stats.processing_s += worker.busy_s
    loaded = add_range(loaded, start, final_until)
    flush(warehouse, stats, _checkpoint(target, loaded, start, run_id) if final_until > start else None)
    return loaded


# Every warehouse query prunes by date: a market with no candle in the year before a window counts
# as not listed yet, so its missing window is not reported as gaps.
LISTING_LOOKBACK = pd.Timedelta(days=366)


def listed_window(
    warehouse: Warehouse, target: BackfillTarget, now: pd.Timestamp
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The part of the window where candles are expected: from the market's first listing (looked
    for up to LISTING_LOOKBACK back) to the last closed candle; None when there is none."""
    end = closed_until(now, target.timeframe, target.end)
    first_listed = warehouse.first_candle_ts(
        target.exchange, target.symbol, target.timeframe, since=target.start - LISTING_LOOKBACK
    )
    if first_listed is None or first_listed >= end:
        return None
    return max(target.start, first_listed), end


def find_window_gaps(
    warehouse: Warehouse, target: BackfillTarget, now: pd.Timestamp
) -> list[tuple[pd.Timestamp, pd.Timestamp, int]]:
    """Missing spans [start, end) of closed candles in the window's listed part, with their counts."""
    window = listed_window(warehouse, target, now)
    if window is None:
        return []
    step = pd.Timedelta(milliseconds=timeframe_ms(target.timeframe))
    present = warehouse.candle_timestamps(target.exchange, target.symbol, target.timeframe, *window)
    return [(first, last + step, n) for first, last, n in find_gaps(present, *window, target.timeframe)]


def _record_and_repair(
    exchange: ccxt.Exchange,
    warehouse: Warehouse,
    target: BackfillTarget,
    *,
    now: pd.Timestamp,
    ledger_now: pd.Timestamp,
    stats: BackfillStats,
    policy: GapPolicy,
    retry: RetryPolicy,
) -> None:
    """The completeness pass: record the window's gaps, then one attempt at each one that is due."""
    spans = find_window_gaps(warehouse, target, now)
    market = (target.exchange, target.symbol, target.timeframe)
    found = new_gaps(*market, spans, kind=CANDLES_KIND, source="backfill", now=ledger_now)
    stats.gaps_recorded = warehouse.record_gaps(found) if spans else 0
    due = warehouse.list_gaps(
        state=OPEN,
        exchange=target.exchange,
        symbol=target.symbol,
        timeframe=target.timeframe,
        kind=CANDLES_KIND,
        due_at=ledger_now,
        overlapping=(target.start, target.end),
    )
    report = repair_gaps(exchange, warehouse, due, now=ledger_now, policy=policy, retry=retry, fetch_now=now)
    stats.gap_candles_repaired = report.candles_filled


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
    gap_policy: GapPolicy | None = None,
    ledger_now: pd.Timestamp | None = None,
    overlap: bool = True,
) -> BackfillStats:
    """Backfill one target to the warehouse; see the module docstring for resume and gaps.

    `now` is the exchange's clock (what is closed there); `ledger_now` (default: the wall clock)
    times the gap ledger's entries and attempts. overlap=False normalizes and loads in the calling
    thread between fetches (for a profiler that samples one thread)."""
    started = time.monotonic()
    stats = BackfillStats(target=target)
    checkpoint = warehouse.get_checkpoint(target.exchange, target.symbol, target.timeframe)
    loaded: RangeSet = checkpoint.ranges if checkpoint else ()
    parts = [(target.start, target.end)] if refetch else missing_parts(loaded, target.start, target.end)
    if not parts:
        stats.skipped_complete = True
        return stats
    stats.payloads = payload_tracker(warehouse, target.exchange)
    if parts[0][0] > target.start:
        stats.resumed_from = parts[0][0]
    for part in parts:
        loaded = _load_part(
            exchange,
            warehouse,
            target,
            part,
            loaded,
            now=now,
            stats=stats,
            run_id=run_id,
            flush_rows=flush_rows,
            progress=progress,
            retry=retry,
            overlap=overlap,
        )
    _record_and_repair(
        exchange,
        warehouse,
        target,
        now=now,
        ledger_now=ledger_now if ledger_now is not None else pd.Timestamp.now(tz="UTC"),
        stats=stats,
        policy=gap_policy or GapPolicy.from_env(),
        retry=retry,
    )
    stats.elapsed_s = time.monotonic() - started
    log.info(
        "backfill_done exchange=%s symbol=%s timeframe=%s inserted=%d updated=%d dead_letters=%d "
        "duplicates_dropped=%d requests=%d gaps_recorded=%d elapsed_s=%.2f",
        target.exchange,
        target.symbol,
        target.timeframe,
        stats.inserted,
        stats.updated,
        stats.dead_letters,
        stats.duplicates_dropped,
        stats.requests,
        stats.gaps_recorded,
        stats.elapsed_s,
    )
    return stats
