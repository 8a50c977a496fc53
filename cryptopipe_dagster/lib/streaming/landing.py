"""The durable landing area: pulled Pub/Sub batches are stored here before their message is acked.

Ack after durable (STYLE.md): the stream loader lands every decoded batch in ``ops.landed_batches``
(one row per batch id, the payload kept verbatim as the Arrow IPC stream it arrived as) in one
transaction, and only then acks. A crash between landing and ack means redelivery; landing the same
batch id again changes nothing, so the batch is still loaded exactly once.

``ops.landed_batches`` is the queue of batches not loaded yet, so it stays as small as the backlog
and every query on it is cheap at any rate. Loading a batch moves it, in one transaction, to
``ops.loaded_batches``: an append-only ledger without payloads (published, landed and loaded times
per batch: what the freshness and backlog figures are computed from). A batch redelivered after it
was loaded is landed and loaded again; the MERGE on the record keys makes that a no-op, and the
ledger then holds its id twice (count distinct ids). All values reach SQL as parameters; table names
are constants.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import pandas as pd
import pyarrow as pa

from cryptopipe_dagster.lib.pubsub.codec import decode_batch
from cryptopipe_dagster.lib.pubsub.puller import ReceivedBatch
from cryptopipe_dagster.lib.warehouse.duckdb_connection import DuckDBConnections

LANDED_BATCHES = "ops.landed_batches"
LOADED_BATCHES = "ops.loaded_batches"
_STAGED = "staged_landing"
_IDS = "staged_batch_ids"

_CREATE_SQL = (
    "CREATE SCHEMA IF NOT EXISTS ops",
    f"""CREATE TABLE IF NOT EXISTS {LANDED_BATCHES} (
        batch_id VARCHAR PRIMARY KEY,
        message_id VARCHAR NOT NULL,
        exchange VARCHAR NOT NULL,
        symbol VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        record_count BIGINT NOT NULL,
        attributes VARCHAR NOT NULL,
        payload BLOB NOT NULL,
        published_at TIMESTAMPTZ,
        landed_at TIMESTAMPTZ NOT NULL,
        ingested_at TIMESTAMPTZ,
        source VARCHAR
    )""",
    # A landing table from before the loaded ledger existed gets the new columns.
    f"ALTER TABLE {LANDED_BATCHES} ADD COLUMN IF NOT EXISTS ingested_at TIMESTAMPTZ",
    f"ALTER TABLE {LANDED_BATCHES} ADD COLUMN IF NOT EXISTS source VARCHAR",
    f"""CREATE TABLE IF NOT EXISTS {LOADED_BATCHES} (
        batch_id VARCHAR NOT NULL,
        message_id VARCHAR NOT NULL,
        exchange VARCHAR NOT NULL,
        symbol VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        record_count BIGINT NOT NULL,
        published_at TIMESTAMPTZ,
        landed_at TIMESTAMPTZ NOT NULL,
        ingested_at TIMESTAMPTZ,
        source VARCHAR,
        loaded_at TIMESTAMPTZ NOT NULL
    )""",
)
# ingested_at (the collector's flush) and source (ws | rest) are one value per batch: with them a
# loaded row can be traced to the batch that carried it (the freshness benchmark does).
_LEDGER_COLUMNS = (
    "batch_id, message_id, exchange, symbol, kind, record_count, published_at, landed_at, ingested_at, source"
)
_LANDING_SCHEMA = pa.schema(
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


class LandingArea(DuckDBConnections):
    """The landing tables in the warehouse's DuckDB file (created on first use)."""

    @contextmanager
    def _tables(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A transaction on the landing tables, created first if this object has not yet done so.

        Once per object, in a transaction of its own: the live loader comes here several times a
        second, and DDL, even a no-op, takes the catalog lock. The pipeline never drops them."""
        if not getattr(self, "_ensured", False):
            with self._transaction() as connection:
                for statement in _CREATE_SQL:
                    connection.execute(statement)
            self._ensured = True
        with self._transaction() as connection:
            yield connection

    def land(self, batches: Sequence[ReceivedBatch], now: pd.Timestamp | None = None) -> list[str]:
        """Store decoded batches (poison ones are refused) in one transaction; returns the new batch ids.

        Batch ids waiting in the landing area, and repeats within `batches`, are left alone.
        """
        if any(batch.is_poison or not batch.batch_id for batch in batches):
            raise ValueError("only decoded batches with a batch_id can be landed")
        staged = _staged_table(batches)
        landed_at = now if now is not None else pd.Timestamp.now(tz="UTC")
        with self._tables() as connection:
            if not staged.num_rows:
                return []
            connection.register(_STAGED, staged)
            new_ids = [
                row[0]
                for row in connection.execute(
                    f"SELECT s.batch_id FROM {_STAGED} s ANTI JOIN {LANDED_BATCHES} l USING (batch_id)"
                ).fetchall()
            ]
            connection.execute(
                f"INSERT INTO {LANDED_BATCHES} (batch_id, message_id, exchange, symbol, kind, "
                "record_count, attributes, payload, published_at, landed_at, ingested_at, source) "
                "SELECT batch_id, message_id, exchange, symbol, kind, record_count, attributes, payload, "
                f"published_at, $landed_at, ingested_at, source FROM {_STAGED} "
                "ON CONFLICT (batch_id) DO NOTHING",
                {"landed_at": landed_at},
            )
            connection.unregister(_STAGED)
        order = {batch_id: i for i, batch_id in enumerate(staged["batch_id"].to_pylist())}
        return sorted(new_ids, key=order.__getitem__)

    def pending_batches(self, kind: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """Landed, not yet loaded batches (no payload), oldest first; at most `limit` of them."""
        with self._tables() as connection:
            return connection.execute(
                "SELECT batch_id, message_id, exchange, symbol, kind, record_count, published_at, "
                f"landed_at FROM {LANDED_BATCHES} WHERE ($kind IS NULL OR kind = $kind) "
                "ORDER BY landed_at, batch_id LIMIT $limit",
                {"kind": kind, "limit": limit if limit is not None else 2**62},
            ).df()

    def read_records(self, batch_ids: Sequence[str]) -> LandedRecords:
        """The records of the given landed batches, concatenated in landing order."""
        with self._tables() as connection:
            connection.register(_IDS, pa.table({"batch_id": pa.array(list(batch_ids), pa.string())}))
            rows = connection.execute(
                f"SELECT batch_id, attributes, payload, published_at FROM {LANDED_BATCHES} "
                f"SEMI JOIN {_IDS} USING (batch_id) ORDER BY landed_at, batch_id"
            ).fetchall()
            connection.unregister(_IDS)
        frames = [decode_batch(bytes(payload), json.loads(attrs)) for _, attrs, payload, _ in rows]
        published = [pd.Timestamp(r[3]) for r in rows if r[3] is not None]
        return LandedRecords(
            batch_ids=tuple(r[0] for r in rows),
            records=pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(),
            oldest_published_at=min(published).tz_convert("UTC") if published else None,
        )

    def mark_loaded(self, batch_ids: Sequence[str], now: pd.Timestamp | None = None) -> pd.DataFrame:
        """Move the given landed batches to the loaded ledger in one transaction; returns the ledger
        rows written (batch_id, published_at, loaded_at)."""
        loaded_at = now if now is not None else pd.Timestamp.now(tz="UTC")
        with self._tables() as connection:
            connection.register(_IDS, pa.table({"batch_id": pa.array(list(batch_ids), pa.string())}))
            moved = connection.execute(
                f"INSERT INTO {LOADED_BATCHES} ({_LEDGER_COLUMNS}, loaded_at) "
                f"SELECT {_LEDGER_COLUMNS}, $at FROM {LANDED_BATCHES} SEMI JOIN {_IDS} USING (batch_id) "
                "RETURNING batch_id, published_at, loaded_at",
                {"at": loaded_at},
            ).df()
            connection.execute(
                f"DELETE FROM {LANDED_BATCHES} WHERE batch_id IN (SELECT batch_id FROM {_IDS})"
            )
            connection.unregister(_IDS)
        return moved

    def loaded_batches(self, since: pd.Timestamp | None = None) -> pd.DataFrame:
        """The ledger of loaded batches (loaded_at >= `since` when given), oldest first."""
        with self._tables() as connection:
            return connection.execute(
                f"SELECT {_LEDGER_COLUMNS}, loaded_at FROM {LOADED_BATCHES} "
                "WHERE $since IS NULL OR loaded_at >= $since ORDER BY loaded_at, batch_id",
                {"since": since},
            ).df()

    def last_loaded_at(self, kind: str) -> pd.Timestamp | None:
        """When the newest batch of `kind` was loaded (None before the first)."""
        with self._tables() as connection:
            (last,) = connection.execute(
                f"SELECT max(loaded_at) FROM {LOADED_BATCHES} WHERE kind = $kind", {"kind": kind}
            ).fetchone()
        return None if last is None else pd.Timestamp(last).tz_convert("UTC")

    def prune_ledger(self, older_than: pd.Timestamp) -> int:
        """Delete ledger rows loaded before `older_than` (the ledger is for recent figures); count."""
        with self._tables() as connection:
            (deleted,) = connection.execute(
                f"DELETE FROM {LOADED_BATCHES} WHERE loaded_at < $before", {"before": older_than}
            ).fetchone()
        return int(deleted)


def _staged_table(batches: Sequence[ReceivedBatch]) -> pa.Table:
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
        schema=_LANDING_SCHEMA,
    )


def _first(records: pd.DataFrame | None, column: str):
    """The batch's value of a column that holds one value per batch (None when absent)."""
    if records is None or column not in records.columns or records.empty:
        return None
    value = records[column].iloc[0]
    return None if pd.isna(value) else (pd.Timestamp(value) if column == "ingested_at" else str(value))
