"""The landing area in the warehouse's DuckDB file.

``ops.landed_batches`` is the queue of batches not loaded yet, so it stays as small as the backlog
and every query on it is cheap at any rate. Loading a batch moves it, in one transaction, to
``ops.loaded_batches`` (the ledger, without payloads). Values reach SQL as parameters; table names
are constants.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import duckdb
import pandas as pd
import pyarrow as pa

from cryptopipe_dagster.lib.warehouse.duckdb_connection import DuckDBConnections
from cryptopipe_dagster.lib.warehouse.landing import LEDGER_COLUMNS, LandingArea

LANDED_BATCHES = "ops.landed_batches"
LOADED_BATCHES = "ops.loaded_batches"
_STAGED = "staged_landing"
_IDS = "staged_batch_ids"
_LEDGER = ", ".join(LEDGER_COLUMNS)

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


class DuckDBLanding(DuckDBConnections, LandingArea):
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

    def _insert(self, staged: pa.Table, landed_at: pd.Timestamp) -> list[str]:
        with self._tables() as connection:
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
        return new_ids

    def pending_batches(self, kind: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """Landed, not yet loaded batches (no payload), oldest first; at most `limit` of them."""
        with self._tables() as connection:
            return connection.execute(
                "SELECT batch_id, message_id, exchange, symbol, kind, record_count, published_at, "
                f"landed_at FROM {LANDED_BATCHES} WHERE ($kind IS NULL OR kind = $kind) "
                "ORDER BY landed_at, batch_id LIMIT $limit",
                {"kind": kind, "limit": limit if limit is not None else 2**62},
            ).df()

    def _payloads(self, batch_ids: Sequence[str]) -> list[tuple]:
        with self._tables() as connection:
            connection.register(_IDS, pa.table({"batch_id": pa.array(list(batch_ids), pa.string())}))
            rows = connection.execute(
                f"SELECT batch_id, attributes, payload, published_at FROM {LANDED_BATCHES} "
                f"SEMI JOIN {_IDS} USING (batch_id) ORDER BY landed_at, batch_id"
            ).fetchall()
            connection.unregister(_IDS)
        return rows

    def mark_loaded(self, batch_ids: Sequence[str], now: pd.Timestamp | None = None) -> pd.DataFrame:
        """Move the given landed batches to the loaded ledger in one transaction; returns the ledger
        rows written (batch_id, published_at, loaded_at)."""
        loaded_at = now if now is not None else pd.Timestamp.now(tz="UTC")
        with self._tables() as connection:
            connection.register(_IDS, pa.table({"batch_id": pa.array(list(batch_ids), pa.string())}))
            moved = connection.execute(
                f"INSERT INTO {LOADED_BATCHES} ({_LEDGER}, loaded_at) "
                f"SELECT {_LEDGER}, $at FROM {LANDED_BATCHES} SEMI JOIN {_IDS} USING (batch_id) "
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
                f"SELECT {_LEDGER}, loaded_at FROM {LOADED_BATCHES} "
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
        """Delete ledger rows loaded before `older_than`; returns how many."""
        with self._tables() as connection:
            (deleted,) = connection.execute(
                f"DELETE FROM {LOADED_BATCHES} WHERE loaded_at < $before", {"before": older_than}
            ).fetchone()
        return int(deleted)
