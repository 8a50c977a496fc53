"""The live path's durable landing area, behind one interface (DuckDB locally, BigQuery in prod).

Ack after durable (STYLE.md): the stream loader lands every decoded Pub/Sub batch (one row per batch
id, the payload kept verbatim as the Arrow IPC stream it arrived as) and only then acks. A crash
between landing and ack means redelivery; landing the same batch id again changes nothing, so the
batch is still loaded exactly once.

Loading a batch records it in the loaded ledger (published, landed, loaded, ingested_at and source
per batch: what the freshness and backlog figures are computed from). A batch redelivered after it
was loaded is landed and loaded again; the MERGE on the record keys makes that a no-op, and the
ledger then holds its id twice (count distinct ids). How "not loaded yet" is stored differs: DuckDB
moves the row out of the landing table; BigQuery appends only and anti-joins the two tables.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import pandas as pd
import pyarrow as pa

from cryptopipe_dagster.lib.pubsub.codec import decode_batch
from cryptopipe_dagster.lib.pubsub.puller import ReceivedBatch

LEDGER_COLUMNS = (
    "batch_id",
    "message_id",
    "exchange",
    "symbol",
    "kind",
    "record_count",
    "published_at",
    "landed_at",
    "ingested_at",
    "source",
)
LANDING_SCHEMA = pa.schema(
    [
        ("batch_id", pa.string()),
        ("message_id", pa.string()),
        ("exchange", pa.string()),
        ("symbol", pa.string()),
        ("kind", pa.string()),
        ("record_count", pa.int64()),
        ("attributes", pa.string()),
        ("payload", pa.binary()),
        ("published_at", pa.timestamp("us", tz="UTC")),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("source", pa.string()),
    ]
)


@dataclass(frozen=True)
class LandedRecords:
    """Records of some landed batches: the ids found and the oldest publish time among them."""

    batch_ids: tuple[str, ...]
    records: pd.DataFrame
    oldest_published_at: pd.Timestamp | None


class LandingArea(ABC):
    """Landed batches waiting to load, and the ledger of loaded ones."""

    def __enter__(self) -> Self:
        """Hold one session for several calls where the backend has one; else a no-op."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def land(self, batches: Sequence[ReceivedBatch], now: pd.Timestamp | None = None) -> list[str]:
        """Store decoded batches durably; returns the batch ids that were new, in arrival order.

        Batch ids waiting in the landing area, and repeats within `batches`, are left alone."""
        if any(batch.is_poison or not batch.batch_id for batch in batches):
            raise ValueError("only decoded batches with a batch_id can be landed")
        staged = landing_rows(batches)
        if not staged.num_rows:
            return []
        new_ids = set(self._insert(staged, now if now is not None else pd.Timestamp.now(tz="UTC")))
        return [batch_id for batch_id in staged["batch_id"].to_pylist() if batch_id in new_ids]

    def read_records(self, batch_ids: Sequence[str]) -> LandedRecords:
        """The records of the given landed batches, concatenated in landing order."""
        rows = self._payloads(batch_ids)
        frames = [decode_batch(bytes(payload), json.loads(attrs)) for _, attrs, payload, _ in rows]
        published = [pd.Timestamp(r[3]) for r in rows if r[3] is not None and not pd.isna(r[3])]
        return LandedRecords(
            batch_ids=tuple(r[0] for r in rows),
            records=pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(),
            oldest_published_at=min(published).tz_convert("UTC") if published else None,
        )

    @abstractmethod
    def _insert(self, staged: pa.Table, landed_at: pd.Timestamp) -> list[str]:
        """Insert the rows (LANDING_SCHEMA) whose batch id is not waiting yet; the ids inserted."""

    @abstractmethod
    def _payloads(self, batch_ids: Sequence[str]) -> list[tuple]:
        """(batch_id, attributes JSON, payload, published_at) of the waiting batches, landing order."""

    @abstractmethod
    def pending_batches(self, kind: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """Landed, not yet loaded batches (no payload), oldest first; at most `limit` of them."""

    @abstractmethod
    def mark_loaded(self, batch_ids: Sequence[str], now: pd.Timestamp | None = None) -> pd.DataFrame:
        """Record the batches as loaded; returns the ledger rows written (batch_id, published_at,
        loaded_at)."""

    @abstractmethod
    def loaded_batches(self, since: pd.Timestamp | None = None) -> pd.DataFrame:
        """The ledger of loaded batches (loaded_at >= `since`, or the retained ledger), oldest first."""

    @abstractmethod
    def last_loaded_at(self, kind: str) -> pd.Timestamp | None:
        """When the newest batch of `kind` was loaded (None before the first)."""

    @abstractmethod
    def prune_ledger(self, older_than: pd.Timestamp) -> int:
        """Forget ledger rows loaded before `older_than` (the ledger is for recent figures); count."""


def landing_rows(batches: Sequence[ReceivedBatch]) -> pa.Table:
    """One LANDING_SCHEMA row per distinct batch id (the first copy wins)."""
    unique: dict[str, ReceivedBatch] = {}
    for batch in batches:
        unique.setdefault(batch.batch_id or "", batch)
    rows = list(unique.values())
    attrs = [b.attributes for b in rows]
    return pa.table(
        {
            "batch_id": [b.batch_id for b in rows],
            "message_id": [b.message_id for b in rows],
            "exchange": [a["exchange"] for a in attrs],
            "symbol": [a["symbol"] for a in attrs],
            "kind": [a["kind"] for a in attrs],
            "record_count": [len(b.records) if b.records is not None else 0 for b in rows],
            "attributes": [json.dumps(a, sort_keys=True) for a in attrs],
            "payload": [b.data for b in rows],
            "published_at": [
                pd.Timestamp(b.publish_time).tz_convert("UTC") if b.publish_time else None for b in rows
            ],
            "ingested_at": [_first(b.records, "ingested_at") for b in rows],
            "source": [_first(b.records, "source") for b in rows],
        },
        schema=LANDING_SCHEMA,
    )


def _first(records: pd.DataFrame | None, column: str):
    """The batch's value of a column that holds one value per batch (None when absent)."""
    if records is None or column not in records.columns or records.empty:
        return None
    value = records[column].iloc[0]
    return None if pd.isna(value) else (pd.Timestamp(value) if column == "ingested_at" else str(value))
