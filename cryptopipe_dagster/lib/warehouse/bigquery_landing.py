"""The landing area on BigQuery: append-only tables, written by streaming appends, never by DML.

BigQuery bills and limits DML per table (two mutating statements run at a time per table, the rest
queue), so the landing area issues none: a landed batch is a streamed row in `ops.landed_batches`,
loading it appends a row to `ops.loaded_batches`, and "still waiting" is landed minus loaded within
the last LOOKBACK days. Both tables are partitioned by day and expire their partitions by themselves
(past Pub/Sub's 7-day retention, so a redelivered batch still finds its row); nothing is deleted.

A streamed append is retried by Pub/Sub redelivery, not by us: a failed insert raises, the message
is not acked, and the row id (the batch id) lets BigQuery drop a repeat; a repeat that still gets
through is read once (QUALIFY ... ROW_NUMBER() = 1).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa

from cryptopipe_dagster.lib.errors import WarehouseBusy
from cryptopipe_dagster.lib.warehouse.landing import LEDGER_COLUMNS, LandingArea
from cryptopipe_dagster.lib.warehouse.tables import LANDED_BATCHES, LOADED_BATCHES

LOOKBACK = pd.Timedelta(days=7)
_LEDGER = ", ".join(LEDGER_COLUMNS)


class BigQueryLanding(LandingArea):
    """Landed batches and the loaded ledger of a BigQueryWarehouse."""

    def __init__(self, warehouse) -> None:
        self.warehouse = warehouse
        self.landed = warehouse._table(LANDED_BATCHES)
        self.loaded = warehouse._table(LOADED_BATCHES)

    def _window(self, now: pd.Timestamp | None = None) -> dict:
        start = (now if now is not None else pd.Timestamp.now(tz="UTC")) - LOOKBACK
        return {"min_date": start.date()}

    def _waiting(self) -> str:
        """Landed rows of the window not in the loaded ledger, one per batch id."""
        return (
            f"SELECT * FROM {self.landed} AS l WHERE DATE(l.landed_at) >= @min_date "
            f"AND l.batch_id NOT IN (SELECT batch_id FROM {self.loaded} "
            "WHERE DATE(loaded_at) >= @min_date) "
            "QUALIFY ROW_NUMBER() OVER (PARTITION BY l.batch_id ORDER BY l.landed_at) = 1"
        )

    def _append(self, table_spec, rows: list[dict]) -> None:
        if not rows:
            return
        errors = self.warehouse.client.insert_rows_json(
            self.warehouse.table_id(table_spec), rows, row_ids=[row["batch_id"] for row in rows]
        )
        if errors:
            # Not acked: Pub/Sub redelivers, and the batch id makes the retry idempotent.
            raise WarehouseBusy(f"streaming append to {table_spec.qualified} failed: {errors[:3]}")

    def _insert(self, staged: pa.Table, landed_at: pd.Timestamp) -> list[str]:
        ids = staged["batch_id"].to_pylist()
        present = self.warehouse.query_df(
            f"SELECT DISTINCT batch_id FROM {self.landed} "
            "WHERE DATE(landed_at) >= @min_date AND batch_id IN UNNEST(@ids)",
            {**self._window(landed_at), "ids": ids},
        )
        known = set(present["batch_id"].astype(str))
        rows = [
            _json_row({**row, "landed_at": landed_at})
            for row in staged.to_pylist()
            if row["batch_id"] not in known
        ]
        self._append(LANDED_BATCHES, rows)
        return [row["batch_id"] for row in rows]

    def pending_batches(self, kind: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """Landed, not yet loaded batches (no payload), oldest first; at most `limit` of them."""
        return self.warehouse.query_df(
            "SELECT batch_id, message_id, exchange, symbol, kind, record_count, published_at, landed_at "
            f"FROM ({self._waiting()}) WHERE (@kind IS NULL OR kind = @kind) "
            "ORDER BY landed_at, batch_id LIMIT @limit",
            {**self._window(), "kind": kind, "limit": limit if limit is not None else 2**62},
        )

    def _payloads(self, batch_ids: Sequence[str]) -> list[tuple]:
        found = self.warehouse.query_df(
            f"SELECT batch_id, attributes, payload, published_at FROM ({self._waiting()}) "
            "WHERE batch_id IN UNNEST(@ids) ORDER BY landed_at, batch_id",
            {**self._window(), "ids": list(batch_ids)},
        )
        return list(found.itertuples(index=False, name=None))

    def mark_loaded(self, batch_ids: Sequence[str], now: pd.Timestamp | None = None) -> pd.DataFrame:
        """Append the batches to the loaded ledger; returns (batch_id, published_at, loaded_at)."""
        loaded_at = now if now is not None else pd.Timestamp.now(tz="UTC")
        ledger = self.warehouse.query_df(
            f"SELECT {_LEDGER} FROM ({self._waiting()}) WHERE batch_id IN UNNEST(@ids)",
            {**self._window(loaded_at), "ids": list(batch_ids)},
        )
        rows = [_json_row({**row, "loaded_at": loaded_at}) for row in ledger.to_dict("records")]
        self._append(LOADED_BATCHES, rows)
        ledger["loaded_at"] = loaded_at
        ledger["published_at"] = pd.to_datetime(ledger["published_at"], utc=True)
        return ledger[["batch_id", "published_at", "loaded_at"]]

    def loaded_batches(self, since: pd.Timestamp | None = None) -> pd.DataFrame:
        """The ledger of loaded batches (loaded_at >= `since`, at most LOOKBACK back), oldest first."""
        floor = pd.Timestamp.now(tz="UTC") - LOOKBACK
        since = max(since, floor) if since is not None else floor
        found = self.warehouse.query_df(
            f"SELECT {_LEDGER}, loaded_at FROM {self.loaded} "
            "WHERE DATE(loaded_at) >= @min_date AND loaded_at >= @since ORDER BY loaded_at, batch_id",
            {"min_date": since.date(), "since": since},
        )
        for column in ("published_at", "landed_at", "ingested_at", "loaded_at"):
            found[column] = pd.to_datetime(found[column], utc=True)
        return found

    def last_loaded_at(self, kind: str) -> pd.Timestamp | None:
        """When the newest batch of `kind` was loaded (within LOOKBACK; None before the first)."""
        found = self.warehouse.query_df(
            f"SELECT MAX(loaded_at) AS last FROM {self.loaded} WHERE DATE(loaded_at) >= @min_date "
            "AND kind = @kind",
            {**self._window(), "kind": kind},
        )
        last = found["last"].iloc[0]
        return None if pd.isna(last) else pd.Timestamp(last).tz_convert("UTC")

    def prune_ledger(self, older_than: pd.Timestamp) -> int:
        """Nothing to do: the tables' partition expiration drops old days for free (no DML)."""
        return 0


def _json_row(row: dict) -> dict:
    """A row for the streaming API: bytes as base64, timestamps as ISO 8601 UTC, NaN/NaT as null."""
    out = {}
    for name, value in row.items():
        if isinstance(value, (bytes, bytearray)):
            out[name] = base64.b64encode(bytes(value)).decode()
        elif value is None or (not isinstance(value, str) and pd.isna(value)):
            out[name] = None
        elif isinstance(value, pd.Timestamp) or hasattr(value, "isoformat"):
            out[name] = pd.Timestamp(value).tz_convert("UTC").isoformat()
        elif hasattr(value, "item"):
            out[name] = value.item()
        else:
            out[name] = value
    return out
