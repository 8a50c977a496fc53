"""Repair of open gaps: re-fetch exactly each gap's span through the backfill's fetch path, MERGE
what comes back (idempotent), and move the gap along the ledger's states (gap_ledger.py).

Only candle gaps are re-fetched here; trade gaps (incomplete REST fills, reconciliation) are
recorded and listed, and their repair is the collector's next REST fill.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import ccxt
import pandas as pd

from cryptopipe_dagster.lib.errors import ExchangeUnavailable
from cryptopipe_dagster.lib.exchanges.clients import DEFAULT_RETRY, RetryPolicy
from cryptopipe_dagster.lib.historical.candle_fetch import BackfillTarget, exchange_now, fetch_span
from cryptopipe_dagster.lib.historical.gap_ledger import (
    CANDLES_KIND,
    CONFIRMED,
    OPEN,
    REPAIRED,
    Attempt,
    GapPolicy,
    after_attempt,
)
from cryptopipe_dagster.lib.historical.gaps import find_gaps
from cryptopipe_dagster.lib.warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass
class RepairReport:
    """What one repair pass did; `gaps` holds every attempted gap after its attempt."""

    attempted: int = 0
    repaired: int = 0
    confirmed: int = 0
    still_open: int = 0
    candles_filled: int = 0
    gaps: list[dict] = field(default_factory=list)

    def add(self, gap: dict, filled: int) -> None:
        self.attempted += 1
        self.candles_filled += filled
        self.repaired += gap["state"] == REPAIRED
        self.confirmed += gap["state"] == CONFIRMED
        self.still_open += gap["state"] == OPEN
        self.gaps.append(gap)

    def extend(self, other: RepairReport) -> None:
        for name in ("attempted", "repaired", "confirmed", "still_open", "candles_filled"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.gaps.extend(other.gaps)


def _missing(warehouse: Warehouse, gap: dict) -> int:
    start, end = pd.Timestamp(gap["span_start"]), pd.Timestamp(gap["span_end"])
    present = warehouse.candle_timestamps(gap["exchange"], gap["symbol"], gap["timeframe"], start, end)
    return sum(missing for _first, _last, missing in find_gaps(present, start, end, gap["timeframe"]))


def attempt_candle_gap(
    exchange: ccxt.Exchange,
    warehouse: Warehouse,
    gap: dict,
    *,
    now: pd.Timestamp,
    fetch_now: pd.Timestamp,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> Attempt:
    """Re-fetch the gap's span [span_start, span_end) and MERGE it; what the exchange answered."""
    before = _missing(warehouse, gap)
    target = BackfillTarget(
        gap["exchange"],
        gap["symbol"],
        gap["timeframe"],
        pd.Timestamp(gap["span_start"]),
        pd.Timestamp(gap["span_end"]),
    )
    try:
        stats = fetch_span(exchange, warehouse, target, now=fetch_now, retry=retry)
    except ExchangeUnavailable as error:  # down or throttled: try again later, never "no data"
        return Attempt(now, 0, 0, 0, before, error=f"{type(error).__name__}: {error}"[:200])
    after = _missing(warehouse, gap)
    return Attempt(now, stats.returned, stats.dead_letters, before - after, after)


def repair_gaps(
    exchange: ccxt.Exchange,
    warehouse: Warehouse,
    gaps: pd.DataFrame,
    *,
    now: pd.Timestamp,
    policy: GapPolicy,
    retry: RetryPolicy = DEFAULT_RETRY,
    fetch_now: pd.Timestamp | None = None,
) -> RepairReport:
    """One attempt at each of `gaps` (candle gaps of this exchange), written back to the ledger."""
    report = RepairReport()
    if gaps.empty:
        return report
    fetch_now = fetch_now if fetch_now is not None else exchange_now(exchange, retry)
    for gap in gaps.to_dict("records"):
        attempt = attempt_candle_gap(exchange, warehouse, gap, now=now, fetch_now=fetch_now, retry=retry)
        report.add(after_attempt(gap, attempt, policy), attempt.filled)
    warehouse.update_gaps(pd.DataFrame(report.gaps))
    log.info(
        "gap_repair exchange=%s attempted=%d repaired=%d confirmed=%d still_open=%d filled=%d",
        exchange.id,
        report.attempted,
        report.repaired,
        report.confirmed,
        report.still_open,
        report.candles_filled,
    )
    return report


def repair_due_gaps(
    warehouse: Warehouse,
    client_for: Callable[[str], ccxt.Exchange],
    *,
    now: pd.Timestamp,
    policy: GapPolicy,
    retry: RetryPolicy = DEFAULT_RETRY,
    exchange: str | None = None,
) -> RepairReport:
    """Every open candle gap due at `now` (next_attempt <= now), one attempt each, per exchange."""
    due = warehouse.list_gaps(state=OPEN, kind=CANDLES_KIND, due_at=now, exchange=exchange)
    total = RepairReport()
    for exchange_id, group in due.groupby("exchange", sort=True):
        client = client_for(str(exchange_id))
        try:
            fetch_now = exchange_now(client, retry)
        except ExchangeUnavailable as error:  # its gaps stay due; the other exchanges go on
            log.warning("gap_repair_skipped exchange=%s error=%s", exchange_id, type(error).__name__)
            continue
        report = repair_gaps(
            client, warehouse, group, now=now, policy=policy, retry=retry, fetch_now=fetch_now
        )
        total.extend(report)
    return total
