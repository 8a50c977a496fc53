"""DuckDB warehouse: one local file, same tables, keys and SQL as BigQuery.

Batches are registered with DuckDB (a zero-copy scan of the pandas/Arrow frame) and merged with
one MERGE per table, inside one transaction. Connection handling: duckdb_connection.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import duckdb
import pandas as pd
import pyarrow as pa

from cryptopipe_dagster.lib.warehouse.base import Checkpoint, MergeStats
from cryptopipe_dagster.lib.warehouse.duckdb_connection import DuckDBConnections
from cryptopipe_dagster.lib.warehouse.duckdb_landing import DuckDBLanding
from cryptopipe_dagster.lib.warehouse.sql import (
    create_table_sql,
    date_range,
    merge_sql,
    merge_stats_sql,
    staged_select,
)
from cryptopipe_dagster.lib.warehouse.sql_warehouse import (
    SqlWarehouse,
    checkpoint_frame,
    logical_type,
    merge_source,
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


class DuckDBWarehouse(DuckDBConnections, SqlWarehouse):
    """The Warehouse on a DuckDB file; parent directories are created on first use."""

    dialect = DUCKDB

    def ensure_schema(self) -> None:
        """Create the raw and ops schemas and every table if missing."""
        with self._transaction() as connection:
            for spec in TABLES.values():
                connection.execute(f"CREATE SCHEMA IF NOT EXISTS {safe_identifier(spec.dataset)}")
                connection.execute(create_table_sql(spec, self.dialect, spec.qualified))
                # Nullable columns added to a spec later (checkpoint loaded_ranges) reach old files.
                for column in (c for c in spec.columns if c.nullable):
                    connection.execute(
                        f"ALTER TABLE {spec.qualified} ADD COLUMN IF NOT EXISTS "
                        f"{safe_identifier(column.name)} {self.dialect.types[column.type]}"
                    )

    @staticmethod
    def _any_row_in(connection: duckdb.DuckDBPyConnection, spec: TableSpec, params: dict) -> bool:
        sql = f"SELECT 1 FROM {spec.qualified} AS t WHERE {date_range(spec, DUCKDB)} LIMIT 1"
        return connection.execute(sql, params).fetchone() is not None

    def _merge(
        self,
        connection: duckdb.DuckDBPyConnection,
        spec: TableSpec,
        df: pd.DataFrame | pa.Table | None,
        unique_keys: bool = False,
    ) -> MergeStats:
        if df is None or not len(df):
            return MergeStats()
        staged, params = merge_source(spec, df, unique_keys)
        # As Arrow: DuckDB scans it zero-copy; a pandas frame's Arrow-backed text columns would go
        # through Python objects (a third of a million-row load).
        if isinstance(staged, pd.DataFrame):
            staged = pa.Table.from_pandas(staged, preserve_index=False)
        connection.register(_STAGED, staged)
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

    def _merge_rows(self, spec: TableSpec, df: pd.DataFrame) -> MergeStats:
        """MERGE a frame into the spec's table in one transaction (the shared SqlWarehouse writes)."""
        with self._transaction() as connection:
            return self._merge(connection, spec, df)

    def merge_candles(self, df: pd.DataFrame, *, unique_keys: bool = False) -> MergeStats:
        """MERGE a CandleSchema frame on (exchange, symbol, timeframe, ts) in one transaction."""
        with self._transaction() as connection:
            return self._merge(connection, CANDLES, df, unique_keys)

    def merge_trades(self, df: pd.DataFrame | pa.Table, *, unique_keys: bool = False) -> MergeStats:
        """MERGE a TradeSchema frame (or its Arrow table) on (exchange, symbol, trade_id) in one transaction.

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
        self._merge(connection, CHECKPOINTS, checkpoint_frame(checkpoint))

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Insert or replace the checkpoint of its (exchange, symbol, timeframe)."""
        with self._transaction() as connection:
            self._save_checkpoint(connection, checkpoint)

    def table_ref(self, logical: str) -> str:
        dataset, table = logical.split(".")
        return f"{safe_identifier(dataset)}.{safe_identifier(table)}"

    def _execute_count(self, sql: str, params: dict) -> int:
        with self._transaction() as connection:
            (changed,) = connection.execute(sql, params).fetchone()
        return int(changed)

    def newest_partition_date(self, spec: TableSpec) -> dt.date | None:
        """MAX of the date column: DuckDB answers it from its min/max statistics per row group."""
        found = self.query_df(f"SELECT MAX({safe_identifier(spec.date_column)}) AS d FROM {spec.qualified}")
        value = found["d"].iloc[0]
        return None if pd.isna(value) else pd.Timestamp(value).date()

    def table_columns(self, logical: str) -> dict[str, str]:
        """The table's columns from DuckDB's information_schema, as {name: logical type}."""
        spec = table_spec(logical)
        found = self.query_df(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = $schema AND table_name = $table ORDER BY ordinal_position",
            {"schema": spec.dataset, "table": spec.name},
        )
        return {
            str(name): logical_type(self.dialect, str(kind))
            for name, kind in zip(found["column_name"], found["data_type"], strict=True)
        }

    def landing(self) -> DuckDBLanding:
        """The landing tables in this DuckDB file, waiting as long as this warehouse for its lock."""
        return DuckDBLanding(self.path, lock_wait_s=self.lock_wait_s)

    @property
    def display_name(self) -> str:
        return f"duckdb {self.path}"
