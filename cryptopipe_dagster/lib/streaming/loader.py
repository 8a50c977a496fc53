"""Landed micro-batches -> validated, deduplicated, MERGEd into raw.trades / raw.candles.

Trades go to raw.trades on (exchange, symbol, trade_id). Closed 1m candles from the collector go to
the same raw.candles table as the historical path, on the same key; a live candle can arrive in
several versions (closed early by the stream, completed later), and the most complete one (volume
only grows within a minute) wins, in the batch and against what is stored.

The MERGE and the move to the loaded ledger are two transactions: a crash between them loads the
batches again, which the MERGE on the record keys turns into a no-op.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from cryptopipe_dagster.lib.edge.schemas import CandleSchema, TradeSchema
from cryptopipe_dagster.lib.edge.validation import validate_frame
from cryptopipe_dagster.lib.pubsub.codec import KEY_COLUMNS
from cryptopipe_dagster.lib.warehouse.base import Warehouse
from cryptopipe_dagster.lib.warehouse.landing import LandingArea

KINDS = ("trades", "candles")
DEAD_LETTER_SOURCE = "pubsub"
_SCHEMAS = {"trades": TradeSchema, "candles": CandleSchema}


@dataclass
class LoadCounts:
    """What loading some batches of one kind did (added up over a tick with `add`)."""

    batches: int = 0
    records_in: int = 0
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates_dropped: int = 0
    dead_letters: int = 0
    dead_letters_by_reason: Counter = field(default_factory=Counter)
    loads: int = 0  # MERGE statements issued
    # (exchange, UTC day) of every loaded row: the raw/candles partitions a candle load touched.
    touched: set[tuple[str, str]] = field(default_factory=set)
    publish_to_load_ms: list[float] = field(default_factory=list)  # one per loaded batch

    def add(self, other: LoadCounts) -> None:
        """Add `other`'s counts to these."""
        for name in ("batches", "records_in", "rows", "inserted", "updated", "unchanged"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.duplicates_dropped += other.duplicates_dropped
        self.dead_letters += other.dead_letters
        self.dead_letters_by_reason.update(other.dead_letters_by_reason)
        self.loads += other.loads
        self.touched |= other.touched
        self.publish_to_load_ms.extend(other.publish_to_load_ms)

    def metadata(self) -> dict[str, int]:
        """The counts as flat numeric metadata (what the Dagster UI plots)."""
        return {
            "batches": self.batches,
            "records_in": self.records_in,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "duplicates_dropped": self.duplicates_dropped,
            "dead_letters": self.dead_letters,
            "merges": self.loads,
        }


def load_records(warehouse: Warehouse, kind: str, records: pd.DataFrame) -> LoadCounts:
    """Validate + dedup + MERGE one kind's records; rejects become dead letters. Returns the counts."""
    if records.empty:
        return LoadCounts(records_in=0)
    # The records left the collector as schema-valid frames; validating again is the same code as
    # the historical path (validate_frame + the schema) and catches a publisher that skipped it.
    valid, dead = validate_frame(records, _SCHEMAS[kind], dataset=kind, source=DEAD_LETTER_SOURCE)
    before = len(valid)
    if kind == "candles":
        valid = valid.sort_values("volume", kind="stable")  # most complete version last
    # A record re-sent in a later batch (same key) is loaded once; the last one wins, as in normalize.
    valid = valid.loc[~valid.duplicated(subset=list(KEY_COLUMNS[kind]), keep="last")]
    if kind == "candles" and len(valid):
        valid = drop_less_complete(warehouse, valid)
    stats = warehouse.merge_trades(valid) if kind == "trades" else warehouse.merge_candles(valid)
    if len(dead):
        warehouse.write_dead_letters(dead)
    return LoadCounts(
        records_in=len(records),
        rows=len(valid),
        inserted=stats.inserted,
        updated=stats.updated,
        unchanged=stats.unchanged,
        duplicates_dropped=before - len(valid),
        dead_letters=len(dead),
        dead_letters_by_reason=Counter(dead["reason_code"].astype(str)) if len(dead) else Counter(),
        loads=1,
        touched=_touched(valid) if kind == "candles" else set(),
    )


def load_pending(
    landing: LandingArea, warehouse: Warehouse, kind: str, max_batches: int = 2_000
) -> LoadCounts:
    """Load up to `max_batches` landed batches of `kind` (oldest first) and move them to the ledger."""
    pending = landing.pending_batches(kind, limit=max_batches)
    if pending.empty:
        return LoadCounts()
    landed = landing.read_records(list(pending["batch_id"]))
    counts = load_records(warehouse, kind, landed.records)
    moved = landing.mark_loaded(landed.batch_ids)
    counts.batches = len(moved)
    latency = (moved["loaded_at"] - moved["published_at"]).dt.total_seconds() * 1000
    counts.publish_to_load_ms = latency.dropna().round(1).tolist()
    return counts


def drop_less_complete(warehouse: Warehouse, candles: pd.DataFrame) -> pd.DataFrame:
    """Candles whose stored version has more volume are left out (a stale version never wins)."""
    existing = warehouse.stored_candle_volumes(candles)
    if existing.empty:
        return candles
    keyed = candles.astype({"exchange": str, "symbol": str, "timeframe": str}).merge(
        existing, on=["exchange", "symbol", "timeframe", "ts"], how="left"
    )
    keep = (keyed["stored_volume"].isna() | (keyed["volume"] >= keyed["stored_volume"])).to_numpy()
    return candles.loc[keep]


def _touched(candles: pd.DataFrame) -> set[tuple[str, str]]:
    if candles.empty:
        return set()
    days = candles["ts"].dt.strftime("%Y-%m-%d")
    return set(zip(candles["exchange"].astype(str), days, strict=True))
