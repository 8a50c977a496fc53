"""The durable landing area: pulled Pub/Sub batches are stored here before their message is acked.

Ack after durable (STYLE.md): a sensor tick lands every decoded batch in ``ops.landed_batches``
(one row per batch id, the payload kept verbatim as the Arrow IPC stream it arrived as) in one
transaction, and only then acks. A crash between landing and ack means redelivery; landing the same
batch id again changes nothing, so the batch is still loaded exactly once.

Landed batches are grouped into micro-batch runs once (``ops.microbatch_groups``): a group's id is
derived from its sorted batch ids, and a batch belongs to one group for good, so a sensor that
restarts (cursor lost) asks for the same groups under the same run keys instead of re-slicing.
All values reach SQL as parameters; table names are constants.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from cryptopipe_dagster.lib.pubsub.codec import decode_batch
from cryptopipe_dagster.lib.pubsub.puller import ReceivedBatch
from cryptopipe_dagster.lib.warehouse.duckdb_connection import DuckDBConnections

LANDED_BATCHES = "ops.landed_batches"
MICROBATCH_GROUPS = "ops.microbatch_groups"
_STAGED = "staged_landing"

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
        group_id VARCHAR,
        loaded_at TIMESTAMPTZ
    )""",
    f"""CREATE TABLE IF NOT EXISTS {MICROBATCH_GROUPS} (
        group_seq BIGINT PRIMARY KEY,
        group_id VARCHAR NOT NULL UNIQUE,
        kind VARCHAR NOT NULL,
        batch_count BIGINT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL
    )""",
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
    ]
)


@dataclass(frozen=True)
class MicrobatchGroup:
    """Landed batches that one run loads; `group_id` doubles as the run key."""

    group_seq: int
    group_id: str
    kind: str
    batch_ids: tuple[str, ...]


class LandingArea(DuckDBConnections):
    """The landing tables in the warehouse's DuckDB file (created on first use)."""

    def _ensure(self, connection: duckdb.DuckDBPyConnection) -> None:
        for statement in _CREATE_SQL:
            connection.execute(statement)

    def land(self, batches: Sequence[ReceivedBatch], now: pd.Timestamp | None = None) -> list[str]:
        """Store decoded batches (poison ones are refused) in one transaction; returns the new batch ids.

        Batch ids already landed, and repeats within `batches`, are left alone.
        """
        if any(batch.is_poison or not batch.batch_id for batch in batches):
            raise ValueError("only decoded batches with a batch_id can be landed")
        staged = _staged_table(batches)
        landed_at = now if now is not None else pd.Timestamp.now(tz="UTC")
        with self._transaction() as connection:
            self._ensure(connection)
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
                "record_count, attributes, payload, published_at, landed_at) "
                "SELECT batch_id, message_id, exchange, symbol, kind, record_count, attributes, payload, "
                f"published_at, $landed_at FROM {_STAGED} ON CONFLICT (batch_id) DO NOTHING",
                {"landed_at": landed_at},
            )
            connection.unregister(_STAGED)
        order = {batch_id: i for i, batch_id in enumerate(staged["batch_id"].to_pylist())}
        return sorted(new_ids, key=order.__getitem__)

    def assign_groups(
        self, kind: str, max_batches_per_group: int, now: pd.Timestamp | None = None
    ) -> list[MicrobatchGroup]:
        """Put every unloaded, ungrouped batch of `kind` into new groups (oldest first); returns them."""
        created_at = now if now is not None else pd.Timestamp.now(tz="UTC")
        created: list[MicrobatchGroup] = []
        with self._transaction() as connection:
            self._ensure(connection)
            ungrouped = [
                row[0]
                for row in connection.execute(
                    f"SELECT batch_id FROM {LANDED_BATCHES} WHERE kind = $kind AND group_id IS NULL "
                    "AND loaded_at IS NULL ORDER BY landed_at, batch_id",
                    {"kind": kind},
                ).fetchall()
            ]
            (last_seq,) = connection.execute(
                f"SELECT coalesce(max(group_seq), 0) FROM {MICROBATCH_GROUPS}"
            ).fetchone()
            for start in range(0, len(ungrouped), max_batches_per_group):
                ids = tuple(sorted(ungrouped[start : start + max_batches_per_group]))
                group = MicrobatchGroup(int(last_seq) + 1 + len(created), group_id(kind, ids), kind, ids)
                connection.execute(
                    f"INSERT INTO {MICROBATCH_GROUPS} VALUES ($seq, $group_id, $kind, $count, $at)",
                    {
                        "seq": group.group_seq,
                        "group_id": group.group_id,
                        "kind": kind,
                        "count": len(ids),
                        "at": created_at,
                    },
                )
                connection.execute(
                    f"UPDATE {LANDED_BATCHES} SET group_id = $group_id WHERE list_contains($ids, batch_id)",
                    {"group_id": group.group_id, "ids": list(ids)},
                )
                created.append(group)
        return created

    def pending_groups(self, kind: str | None = None, after_seq: int = 0) -> list[MicrobatchGroup]:
        """Groups with at least one batch not loaded yet and `group_seq` > `after_seq`, oldest first."""
        with self._transaction() as connection:
            self._ensure(connection)
            rows = connection.execute(
                f"SELECT g.group_seq, g.group_id, g.kind, list(l.batch_id ORDER BY l.batch_id) "
                f"FROM {MICROBATCH_GROUPS} g JOIN {LANDED_BATCHES} l USING (group_id) "
                "WHERE g.group_seq > $after AND ($kind IS NULL OR g.kind = $kind) "
                "GROUP BY ALL HAVING count(*) FILTER (WHERE l.loaded_at IS NULL) > 0 ORDER BY g.group_seq",
                {"after": after_seq, "kind": kind},
            ).fetchall()
        return [MicrobatchGroup(int(seq), gid, k, tuple(ids)) for seq, gid, k, ids in rows]

    def pending_batches(self, kind: str | None = None) -> pd.DataFrame:
        """Landed, not yet loaded batches (no payload), oldest first."""
        with self._transaction() as connection:
            self._ensure(connection)
            return connection.execute(
                "SELECT batch_id, message_id, exchange, symbol, kind, record_count, published_at, "
                f"landed_at, group_id FROM {LANDED_BATCHES} WHERE loaded_at IS NULL "
                "AND ($kind IS NULL OR kind = $kind) ORDER BY landed_at, batch_id",
                {"kind": kind},
            ).df()

    def read_records(self, batch_ids: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(records of the given landed batches concatenated, one row per batch found: id, published_at)."""
        with self._transaction() as connection:
            self._ensure(connection)
            rows = connection.execute(
                f"SELECT batch_id, attributes, payload, published_at FROM {LANDED_BATCHES} "
                "WHERE list_contains($ids, batch_id) ORDER BY landed_at, batch_id",
                {"ids": list(batch_ids)},
            ).fetchall()
        frames = [decode_batch(bytes(payload), json.loads(attrs)) for _, attrs, payload, _ in rows]
        found = pd.DataFrame(
            {"batch_id": [r[0] for r in rows], "published_at": pd.to_datetime([r[3] for r in rows], utc=True)}
        )
        records = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return records, found

    def mark_loaded(self, batch_ids: Sequence[str], now: pd.Timestamp | None = None) -> int:
        """Set loaded_at on the given batches that are not loaded yet; returns how many changed."""
        if not len(batch_ids):
            return 0
        loaded_at = now if now is not None else pd.Timestamp.now(tz="UTC")
        with self._transaction() as connection:
            self._ensure(connection)
            (changed,) = connection.execute(
                f"UPDATE {LANDED_BATCHES} SET loaded_at = $at "
                "WHERE loaded_at IS NULL AND list_contains($ids, batch_id)",
                {"at": loaded_at, "ids": list(batch_ids)},
            ).fetchone()
        return int(changed)


def group_id(kind: str, batch_ids: Sequence[str]) -> str:
    """Deterministic group id (and run key): ``microbatch-<kind>-<sha256 of sorted ids, 20 hex>``."""
    digest = hashlib.sha256("\n".join(sorted(batch_ids)).encode()).hexdigest()[:20]
    return f"microbatch-{kind}-{digest}"


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
        },
        schema=_LANDING_SCHEMA,
    )


def land_batches(
    warehouse_path: str | Path, batches: Sequence[ReceivedBatch], now: pd.Timestamp | None = None
) -> list[str]:
    """Land decoded batches durably in one transaction (idempotent per batch_id); returns the new ids."""
    return LandingArea(warehouse_path).land(batches, now)


def pending_batches(warehouse_path: str | Path, kind: str | None = None) -> pd.DataFrame:
    """Landed batches not loaded yet."""
    return LandingArea(warehouse_path).pending_batches(kind)


def mark_loaded(warehouse_path: str | Path, batch_ids: Sequence[str]) -> int:
    """Mark batches loaded; returns how many were not loaded before."""
    return LandingArea(warehouse_path).mark_loaded(batch_ids)
