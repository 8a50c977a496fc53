"""DuckDB warehouse: one local file, same tables, keys and SQL as BigQuery.

Batches are registered with DuckDB (a zero-copy scan of the pandas/Arrow frame) and merged with
one MERGE per table, inside one transaction. Connection handling: duckdb_connection.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

import duckdb
import pandas as pd
import pyarrow as pa

from cryptopipe_dagster.lib.edge.schemas import Text
from cryptopipe_dagster.lib.errors import SchemaDrift
from cryptopipe_dagster.lib.warehouse.base import Checkpoint, MergeStats, Warehouse
from cryptopipe_dagster.lib.warehouse.duckdb_connection import DuckDBConnections, typed, utc
from cryptopipe_dagster.lib.warehouse.sql import (
    candle_timestamps_sql,
    candles_in_window_sql,
    checkpoint_sql,
    create_table_sql,
    date_range,
    dead_letters_sql,
    duplicate_keys_sql,
    first_candle_sql,
    mark_replayed_sql,
    merge_sql,
    merge_stats_sql,
    staged_select,
)
from cryptopipe_dagster.lib.warehouse.tables import (
    CANDLES,
    CHECKPOINTS,
    DEAD_LETTERS,
    DUCKDB,
    TABLES,
    TRADES,
    TableSpec,
    safe_identifier,
    table_spec,
)

_STAGED = "staged_batch"  # name the batch frame is registered under, per connection


def _date_params(spec: TableSpec, df: pd.DataFrame) -> dict:
    if not spec.date_column:
        return {}
    stamps = df[spec.date_source]
    return {"min_date": utc(stamps.min()).date(), "max_date": utc(stamps.max()).date()}


class DuckDBWarehouse(DuckDBConnections, Warehouse):
    """The Warehouse on a DuckDB file; parent directories are created on first use."""

    dialect = DUCKDB

    def ensure_schema(self) -> None:
        """Create the raw and ops schemas and every table if missing."""
        with self._transaction() as connection:
            for spec in TABLES.values():
                connection.execute(f"CREATE SCHEMA IF NOT EXISTS {safe_identifier(spec.dataset)}")
                connection.execute(create_table_sql(spec, self.dialect, spec.qualified))

    @staticmethod
    def _any_row_in(connection: duckdb.DuckDBPyConnection, spec: TableSpec, params: dict) -> bool:
        sql = f"SELECT 1 FROM {spec.qualified} AS t WHERE {date_range(spec, DUCKDB)} LIMIT 1"
        return connection.execute(sql, params).fetchone() is not None

    def _merge(
        self,
        connection: duckdb.DuckDBPyConnection,
        spec: TableSpec,
        df: pd.DataFrame | None,
        unique_keys: bool = False,
    ) -> MergeStats:
        if df is None or df.empty:
            return MergeStats()
        missing = [column for column in spec.input_columns if column not in df.columns]
        if missing:
            raise SchemaDrift(f"{spec.qualified} batch lacks columns {missing}")
        staged = df[spec.input_columns]
        if not unique_keys:
            repeated = staged.duplicated(subset=list(spec.key), keep="last")
            if repeated.any():  # a MERGE source must hold each key once; the last row wins, as in normalize
                staged = staged.loc[~repeated]
        params = _date_params(spec, staged)
        # As Arrow: DuckDB scans it zero-copy; a pandas frame's Arrow-backed text columns would go
        # through Python objects (a third of a million-row load).
        connection.register(_STAGED, pa.Table.from_pandas(staged, preserve_index=False))
        if spec.date_column and not self._any_row_in(connection, spec, params):
            # A date range the table does not hold yet (the usual new day): no key of the batch can
            # match (the key decides the date), so the MERGE is a plain insert without any join.
            total, inserted, updated = len(staged), len(staged), 0
            connection.execute(
                f"INSERT INTO {spec.qualified} ({', '.join(safe_identifier(c) for c in spec.column_names)}) "
                f"{staged_select(spec, _STAGED)}"
            )
        else:
            total, inserted, updated = connection.execute(
                merge_stats_sql(spec, self.dialect, spec.qualified, _STAGED), params
            ).fetchone()
            connection.execute(merge_sql(spec, self.dialect, spec.qualified, _STAGED), params)
        # Not in a `finally`: after a failed statement the transaction is aborted and unregister
        # would raise over the real error; the next register of the same name replaces it anyway.
        connection.unregister(_STAGED)
        return MergeStats(
            inserted=int(inserted), updated=int(updated), unchanged=int(total - inserted - updated)
        )

    def merge_candles(self, df: pd.DataFrame, *, unique_keys: bool = False) -> MergeStats:
        """MERGE a CandleSchema frame on (exchange, symbol, timeframe, ts) in one transaction."""
        with self._transaction() as connection:
            return self._merge(connection, CANDLES, df, unique_keys)

    def merge_trades(self, df: pd.DataFrame, *, unique_keys: bool = False) -> MergeStats:
        """MERGE a TradeSchema frame on (exchange, symbol, trade_id) in one transaction.

        unique_keys: the caller guarantees one row per key (normalize's output), so the safety
        dedup is skipped."""
        with self._transaction() as connection:
            return self._merge(connection, TRADES, df, unique_keys)

    def write_dead_letters(self, df: pd.DataFrame) -> int:
        """Insert dead letters with new ids; existing ids are left untouched. Returns the new count."""
        with self._transaction() as connection:
            return self._merge(connection, DEAD_LETTERS, df).inserted

    def merge_candles_with_checkpoint(
        self, candles: pd.DataFrame | None, dead_letters: pd.DataFrame | None, checkpoint: Checkpoint | None
    ) -> MergeStats:
        """Dead letters, candles and checkpoint in one transaction; any failure rolls back all three."""
        with self._transaction() as connection:
            written = self._merge(connection, DEAD_LETTERS, dead_letters).inserted
            stats = self._merge(connection, CANDLES, candles)
            if checkpoint is not None:
                self._save_checkpoint(connection, checkpoint)
        return replace(stats, dead_letters_written=written)

    def _save_checkpoint(self, connection: duckdb.DuckDBPyConnection, checkpoint: Checkpoint) -> None:
        row = {
            "exchange": pd.array([checkpoint.exchange], dtype=Text),
            "symbol": pd.array([checkpoint.symbol], dtype=Text),
            "timeframe": pd.array([checkpoint.timeframe], dtype=Text),
            **{
                name: pd.array([None if value is None else utc(value)], dtype="datetime64[ns, UTC]")
                for name in ("window_start", "window_end", "fetched_through", "updated_at")
                for value in [getattr(checkpoint, name)]
            },
            "run_id": pd.array([checkpoint.run_id], dtype=Text),
        }
        self._merge(connection, CHECKPOINTS, pd.DataFrame(row))

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Insert or replace the checkpoint of its (exchange, symbol, timeframe)."""
        with self._transaction() as connection:
            self._save_checkpoint(connection, checkpoint)

    def get_checkpoint(self, exchange: str, symbol: str, timeframe: str) -> Checkpoint | None:
        """The stored checkpoint of a market and timeframe, if any."""
        market = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe}
        found = self.query_df(checkpoint_sql(self.dialect), market)
        if found.empty:
            return None
        row = found.iloc[0]
        stamps = {n: utc(row[n]) for n in ("window_start", "window_end", "fetched_through", "updated_at")}
        run_id = None if pd.isna(row["run_id"]) else str(row["run_id"])
        return Checkpoint(**market, run_id=run_id, **stamps)

    def candle_timestamps(
        self, exchange: str, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.Series:
        """Sorted open times (UTC, ns) of stored candles with start <= ts < end."""
        start, end = utc(start), utc(end)
        if end <= start:
            return pd.Series([], dtype="datetime64[ns, UTC]", name="ts")
        params = {
            "exchange": exchange,
            "symbol": symbol,
            "timeframe": timeframe,
            "start": start,
            "end": end,
            "min_date": start.date(),
            "max_date": (end - pd.Timedelta(1, "ns")).date(),
        }
        found = self.query_df(candle_timestamps_sql(self.dialect), params)
        return found["ts"].dt.tz_convert("UTC").dt.as_unit("ns").rename("ts").reset_index(drop=True)

    def first_candle_ts(self, exchange: str, symbol: str, timeframe: str) -> pd.Timestamp | None:
        """Open time of the earliest stored candle of the market (a scan over all its dates)."""
        market = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe}
        first = self.query_df(first_candle_sql(self.dialect), market)["first_ts"].iloc[0]
        return None if pd.isna(first) else utc(first)

    def candles_in_window(
        self, exchanges: Sequence[str] | None, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        """Stored candles with start <= ts < end (optionally only `exchanges`), CandleSchema columns."""
        start, end = utc(start), utc(end)
        params: dict = {"start": start, "end": end, "min_date": start.date(), "max_date": end.date()}
        if exchanges is not None:
            params["exchanges"] = list(exchanges)
        sql = candles_in_window_sql(self.dialect, by_exchange=exchanges is not None)
        return typed(self.query_df(sql, params), CANDLES)

    def count_duplicate_keys(self, table: str, start_date: dt.date, end_date: dt.date) -> int:
        """Rows beyond one per key in an allow-listed table, within [start_date, end_date]."""
        spec = table_spec(table)
        sql = duplicate_keys_sql(spec, self.dialect, spec.qualified)
        return int(self.query_df(sql, {"min_date": start_date, "max_date": end_date})["duplicates"].iloc[0])

    def dead_letters(
        self,
        *,
        dataset: str | None = None,
        exchange: str | None = None,
        symbol: str | None = None,
        reason_code: str | None = None,
        replayed: bool | None = None,
        since: pd.Timestamp | None = None,
        limit: int | None = 1000,
    ) -> pd.DataFrame:
        """Stored dead letters matching every given filter, oldest first."""
        filters = {"dataset": dataset, "exchange": exchange, "symbol": symbol, "reason_code": reason_code}
        params: dict = {name: value for name, value in filters.items() if value is not None}
        sql = dead_letters_sql(self.dialect, list(params), replayed, since is not None, limit is not None)
        if since is not None:
            params["since"] = utc(since)
        if limit is not None:
            params["limit"] = int(limit)
        return typed(self.query_df(sql, params), DEAD_LETTERS)

    def mark_replayed(self, dead_letter_ids: Sequence[str], at: pd.Timestamp | None = None) -> int:
        """Set replayed_at on the given dead letters that are not replayed yet; returns how many."""
        if not len(dead_letter_ids):
            return 0
        params = {
            "at": utc(at) if at is not None else pd.Timestamp.now(tz="UTC"),
            "ids": list(dead_letter_ids),
        }
        with self._transaction() as connection:
            (changed,) = connection.execute(mark_replayed_sql(self.dialect), params).fetchone()
        return int(changed)
