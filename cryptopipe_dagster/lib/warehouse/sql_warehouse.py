"""The Warehouse methods both backends share: the same SQL (queries.py, sql.py), run through the
backend's `query_df` with the backend's dialect and table names. A backend supplies merges,
`query_df`, `_execute_count` (a DML statement and how many rows it changed) and `_name`."""

from __future__ import annotations

import datetime as dt
import json
from abc import abstractmethod
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cryptopipe_dagster.lib.edge.schemas import Text
from cryptopipe_dagster.lib.errors import SchemaDrift
from cryptopipe_dagster.lib.warehouse import queries
from cryptopipe_dagster.lib.warehouse.base import Checkpoint, MergeStats, Warehouse
from cryptopipe_dagster.lib.warehouse.gap_sql import list_gaps_sql
from cryptopipe_dagster.lib.warehouse.sql import (
    candle_timestamps_sql,
    candles_in_window_sql,
    checkpoint_sql,
    dead_letters_sql,
    duplicate_keys_sql,
    first_candle_sql,
    mark_replayed_sql,
)
from cryptopipe_dagster.lib.warehouse.tables import (
    ANOMALIES,
    CANDLES,
    CHECKPOINTS,
    DEAD_LETTERS,
    GAP_UPDATES,
    GAPS,
    PAYLOAD_FINGERPRINTS,
    TRADES,
    Dialect,
    TableSpec,
    safe_identifier,
    table_spec,
)

PRICE_TOLERANCE = 1e-12  # reconciliation: the same decimals, read twice
VOLUME_TOLERANCE = 1e-9  # venues round their candle volume; ours is an exact decimal sum


def utc(value: pd.Timestamp | dt.datetime | str) -> pd.Timestamp:
    """`value` as a tz-aware UTC Timestamp (naive values are taken to be UTC)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def typed(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """A query result -> the schema's dtypes (Arrow strings, UTC ns timestamps)."""
    types = {c.name: c.type for c in spec.columns if c.name in frame.columns}
    conversions = {name: Text for name, kind in types.items() if kind == "string"}
    conversions |= {name: "datetime64[ns, UTC]" for name, kind in types.items() if kind == "timestamp"}
    return frame.astype(conversions)


def checkpoint_frame(checkpoint: Checkpoint) -> pd.DataFrame:
    """The checkpoint as a one-row frame in the checkpoint table's columns."""
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
        "loaded_ranges": pd.array([ranges_json(checkpoint.loaded_ranges)], dtype=Text),
    }
    return pd.DataFrame(row)


def ranges_json(ranges: Sequence[tuple[pd.Timestamp, pd.Timestamp]]) -> str | None:
    """Loaded ranges as the checkpoint column stores them (JSON [[iso, iso], ...]); None when empty."""
    if not ranges:
        return None
    return json.dumps([[utc(start).isoformat(), utc(end).isoformat()] for start, end in ranges])


def ranges_from_json(text: object) -> tuple[tuple[pd.Timestamp, pd.Timestamp], ...]:
    """The stored loaded_ranges column back as (start, end) pairs; () for NULL."""
    if text is None or (not isinstance(text, str) and pd.isna(text)) or not str(text).strip():
        return ()
    return tuple((utc(start), utc(end)) for start, end in json.loads(str(text)))


def gaps_frame(gaps: pd.DataFrame) -> pd.DataFrame:
    """A gap frame in ops.gaps' column order and dtypes (Arrow text, UTC timestamps, Int64)."""
    frame = gaps[GAPS.input_columns].copy()
    for column in GAPS.columns:
        if column.type == "string":
            frame[column.name] = frame[column.name].astype(Text)
        elif column.type == "timestamp":
            frame[column.name] = pd.to_datetime(frame[column.name], utc=True).dt.as_unit("ns")
        elif column.type == "int64":
            frame[column.name] = frame[column.name].astype("Int64")
    return frame


def merge_source(
    spec: TableSpec, df: pd.DataFrame | pa.Table, unique_keys: bool
) -> tuple[pd.DataFrame | pa.Table, dict]:
    """The batch as a MERGE source: the spec's input columns, one row per key (the last wins, as in
    normalize; skipped when the caller guarantees unique keys), and the date-range parameters that
    prune the MERGE to the batch's partitions. A batch lacking a column is SchemaDrift.

    Arrow stays Arrow (DuckDB scans it without a copy); pandas stays pandas."""
    names = df.column_names if isinstance(df, pa.Table) else list(df.columns)
    missing = [column for column in spec.input_columns if column not in names]
    if missing:
        raise SchemaDrift(f"{spec.qualified} batch lacks columns {missing}")
    if isinstance(df, pa.Table):
        staged = df.select(spec.input_columns)
        if not unique_keys:
            import polars as pl  # only here: the collector's and loader's batches come deduplicated

            frame = pl.from_arrow(staged)
            last = frame.select(pl.struct(list(spec.key)).is_last_distinct()).to_series()
            if not last.all():  # a MERGE source must hold each key once
                staged = staged.filter(pa.array(last.to_numpy()))
        if not spec.date_column:
            return staged, {}
        bounds = pc.min_max(staged[spec.date_source])
        return staged, {
            "min_date": utc(bounds["min"].as_py()).date(),
            "max_date": utc(bounds["max"].as_py()).date(),
        }
    staged = df[spec.input_columns]
    if not unique_keys:
        repeated = staged.duplicated(subset=list(spec.key), keep="last")
        if repeated.any():  # a MERGE source must hold each key once
            staged = staged.loc[~repeated]
    if not spec.date_column:
        return staged, {}
    stamps = staged[spec.date_source]
    return staged, {"min_date": utc(stamps.min()).date(), "max_date": utc(stamps.max()).date()}


# Catalog type names that are not the dialect's own spelling (DuckDB's information_schema spells
# TIMESTAMPTZ out; BigQuery's tables.get still says FLOAT and INTEGER).
_TYPE_ALIASES = {"TIMESTAMP WITH TIME ZONE": "timestamp", "FLOAT": "float64", "INTEGER": "int64"}


def logical_type(dialect: Dialect, native: str) -> str:
    """A catalog column type as the specs' logical type; the native name when it maps to none."""
    by_native = {name.upper(): logical for logical, name in dialect.types.items()}
    upper = native.upper()
    return by_native.get(upper) or _TYPE_ALIASES.get(upper) or native


def _utc_column(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    if column in frame.columns:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


class SqlWarehouse(Warehouse):
    """Reads, checkpoints and dead-letter bookkeeping in SQL shared by DuckDB and BigQuery."""

    dialect: Dialect

    @abstractmethod
    def table_ref(self, logical: str) -> str:
        """The SQL reference of a logical table ("raw.candles"): as is in DuckDB,
        `project.<prefix>raw.candles` in BigQuery."""

    @abstractmethod
    def _execute_count(self, sql: str, params: dict) -> int:
        """Run one DML statement; how many rows it changed."""

    @abstractmethod
    def _merge_rows(self, spec: TableSpec, df: pd.DataFrame) -> MergeStats:
        """MERGE a frame into the spec's table on its key (one statement or transaction)."""

    def _table(self, spec: TableSpec) -> str:
        return self.table_ref(spec.qualified)

    def record_gaps(self, gaps: pd.DataFrame) -> int:
        """Insert gaps with a new key; a known gap (same market, timeframe, span_start) is left alone."""
        if gaps.empty:
            return 0
        return self._merge_rows(GAPS, gaps_frame(gaps)).inserted

    def update_gaps(self, gaps: pd.DataFrame) -> None:
        """Upsert gaps: attempts, last/next attempt, state, evidence and span end are rewritten."""
        if not gaps.empty:
            self._merge_rows(GAP_UPDATES, gaps_frame(gaps))

    def list_gaps(
        self,
        *,
        state: str | None = None,
        exchange: str | None = None,
        symbol: str | None = None,
        timeframe: str | None = None,
        kind: str | None = None,
        due_at: pd.Timestamp | None = None,
        overlapping: tuple[pd.Timestamp, pd.Timestamp] | None = None,
    ) -> pd.DataFrame:
        """Gaps matching every given filter, ordered by market and span start."""
        filters = {"state": state, "exchange": exchange, "symbol": symbol, "timeframe": timeframe}
        params: dict = {name: value for name, value in {**filters, "kind": kind}.items() if value is not None}
        sql = list_gaps_sql(
            self.dialect, self._table(GAPS), list(params), due_at is not None, overlapping is not None
        )
        if due_at is not None:
            params["due_at"] = utc(due_at)
        if overlapping is not None:
            params["window_start"], params["window_end"] = utc(overlapping[0]), utc(overlapping[1])
        found = typed(self.query_df(sql, params), GAPS)
        for column in ("missing", "attempts"):
            found[column] = found[column].astype("Int64")
        return found.reset_index(drop=True)

    def record_anomalies(self, anomalies: pd.DataFrame) -> MergeStats:
        """MERGE anomalies on (exchange, symbol, timeframe, ts, kind); detected_at defaults to now."""
        if anomalies.empty:
            return MergeStats()
        frame = anomalies.copy()
        if "detected_at" not in frame.columns:
            frame["detected_at"] = pd.Timestamp.now(tz="UTC")
        frame = frame[ANOMALIES.input_columns].astype({"value": "float64", "threshold": "float64"})
        for column in ("ts", "detected_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True).dt.as_unit("ns")
        text = {c: Text for c in ("exchange", "symbol", "timeframe", "kind", "detail")}
        return self._merge_rows(ANOMALIES, frame.astype(text))

    def anomalies(
        self, *, kind: str | None = None, exchange: str | None = None, symbol: str | None = None
    ) -> pd.DataFrame:
        """Stored anomalies matching every given filter, by kind, market and time."""
        filters = {"kind": kind, "exchange": exchange, "symbol": symbol}
        params = {name: value for name, value in filters.items() if value is not None}
        found = self.query_df(queries.anomalies_sql(self.dialect, self.table_ref, list(params)), params)
        return typed(found, ANOMALIES).reset_index(drop=True)

    def candles_of_timeframe(self, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Stored candles of one timeframe (every market) with start <= ts < end, CandleSchema columns."""
        start, end = utc(start), utc(end)
        params = {
            "timeframe": timeframe,
            "start": start,
            "end": end,
            "min_date": start.date(),
            "max_date": (end - pd.Timedelta(1, "ns")).date(),
        }
        sql = queries.candles_of_timeframe_sql(self.dialect, self.table_ref)
        return typed(self.query_df(sql, params), CANDLES)

    def get_checkpoint(self, exchange: str, symbol: str, timeframe: str) -> Checkpoint | None:
        """The stored checkpoint of a market and timeframe, if any."""
        market = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe}
        found = self.query_df(checkpoint_sql(self.dialect, self._table(CHECKPOINTS)), market)
        if found.empty:
            return None
        row = found.iloc[0]
        stamps = {n: utc(row[n]) for n in ("window_start", "window_end", "fetched_through", "updated_at")}
        run_id = None if pd.isna(row["run_id"]) else str(row["run_id"])
        ranges = ranges_from_json(row.get("loaded_ranges"))
        return Checkpoint(**market, run_id=run_id, loaded_ranges=ranges, **stamps)

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
        found = self.query_df(candle_timestamps_sql(self.dialect, self._table(CANDLES)), params)
        stamps = pd.to_datetime(found["ts"], utc=True).dt.as_unit("ns")
        return stamps.rename("ts").reset_index(drop=True)

    def first_candle_ts(
        self, exchange: str, symbol: str, timeframe: str, since: pd.Timestamp
    ) -> pd.Timestamp | None:
        """Open time of the earliest stored candle of the market at or after `since`."""
        since = utc(since)
        params = {
            "exchange": exchange,
            "symbol": symbol,
            "timeframe": timeframe,
            "since": since,
            "min_date": since.date(),
        }
        first = self.query_df(first_candle_sql(self.dialect, self._table(CANDLES)), params)["first_ts"].iloc[
            0
        ]
        return None if pd.isna(first) else utc(first)

    def candles_in_window(
        self, exchanges: Sequence[str] | None, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        """Stored candles with start <= ts < end (optionally only `exchanges`), CandleSchema columns."""
        start, end = utc(start), utc(end)
        params: dict = {"start": start, "end": end, "min_date": start.date(), "max_date": end.date()}
        if exchanges is not None:
            params["exchanges"] = list(exchanges)
        sql = candles_in_window_sql(self.dialect, self._table(CANDLES), by_exchange=exchanges is not None)
        return typed(self.query_df(sql, params), CANDLES)

    def count_duplicate_keys(self, table: str, start_date: dt.date, end_date: dt.date) -> int:
        """Rows beyond one per key in an allow-listed table, within [start_date, end_date]."""
        spec = table_spec(table)
        sql = duplicate_keys_sql(spec, self.dialect, self._table(spec))
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
        sql = dead_letters_sql(
            self.dialect,
            list(params),
            replayed,
            since is not None,
            limit is not None,
            self._table(DEAD_LETTERS),
        )
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
            "ids": [str(i) for i in dead_letter_ids],
        }
        return self._execute_count(mark_replayed_sql(self.dialect, self._table(DEAD_LETTERS)), params)

    def market_summary(self, table: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Per market of raw.candles / raw.trades in [start, end]: rows, first and last ts (UTC)."""
        spec = table_spec(table)
        if spec not in (CANDLES, TRADES):
            raise ValueError(f"no market summary for {table}")
        params = {"min_date": utc(start).date(), "max_date": utc(end).date()}
        found = self.query_df(
            queries.market_summary_sql(self.dialect, self.table_ref, spec.qualified), params
        )
        return _utc_column(_utc_column(found, "first_ts"), "last_ts")

    @abstractmethod
    def newest_partition_date(self, spec: TableSpec) -> dt.date | None:
        """The newest date holding rows of a date-partitioned table (from metadata where it can)."""

    def newest_trade_ts(self) -> pd.Timestamp | None:
        """Time of the newest trade: the newest partition, then the newest row in it."""
        day = self.newest_partition_date(TRADES)
        if day is None:
            return None
        newest = self.query_df(queries.newest_trade_sql(self.dialect, self.table_ref), {"min_date": day})
        value = newest["newest"].iloc[0]
        return None if pd.isna(value) else utc(value)

    def trade_counts(self, since: pd.Timestamp) -> dict[str, int]:
        """Stored trades with ts >= since per "exchange:symbol"."""
        since = utc(since)
        params = {"since": since, "min_date": since.date()}
        counts = self.query_df(queries.trade_counts_sql(self.dialect, self.table_ref), params)
        return {
            f"{e}:{s}": int(n)
            for e, s, n in zip(counts["exchange"], counts["symbol"], counts["n"], strict=True)
        }

    def reconcile_trade_candles(self, since: pd.Timestamp) -> pd.DataFrame:
        """Every comparable minute since `since`, with a `mismatch` reason (None when they agree)."""
        since = utc(since)
        params = {
            "since": since,
            "min_date": since.date(),
            "price_tol": PRICE_TOLERANCE,
            "volume_tol": VOLUME_TOLERANCE,
        }
        found = self.query_df(queries.reconcile_sql(self.dialect, self.table_ref), params)
        found = _utc_column(found, "minute")
        if "mismatch" in found.columns:
            found["mismatch"] = found["mismatch"].astype(object).where(found["mismatch"].notna(), None)
        return found

    def stored_candle_volumes(self, candles: pd.DataFrame) -> pd.DataFrame:
        """Stored volumes of the candles' keys (exchange, symbol, timeframe, ts, stored_volume)."""
        columns = ["exchange", "symbol", "timeframe", "ts", "stored_volume"]
        if candles.empty:
            return pd.DataFrame(columns=columns)
        first, last = utc(candles["ts"].min()), utc(candles["ts"].max())
        params = {
            "first": first,
            "last": last,
            "min_date": first.date(),
            "max_date": last.date(),
            "exchanges": sorted(candles["exchange"].astype(str).unique()),
        }
        stored = self.query_df(queries.stored_volumes_sql(self.dialect, self.table_ref), params)
        stored = _utc_column(stored.astype({"exchange": str, "symbol": str, "timeframe": str}), "ts")
        keys = candles[["exchange", "symbol", "timeframe", "ts"]].astype(
            {"exchange": str, "symbol": str, "timeframe": str}
        )
        keys["ts"] = pd.to_datetime(keys["ts"], utc=True)
        return keys.merge(stored, on=["exchange", "symbol", "timeframe", "ts"], how="inner")[columns]

    def latest_indicators(self, since: pd.Timestamp) -> pd.DataFrame:
        """The newest marts.indicators_1h / _1d row per market and timeframe since `since`."""
        found = self.query_df(
            queries.latest_indicators_sql(self.dialect, self.table_ref), {"since": utc(since)}
        )
        return _utc_column(found, "ts")

    def record_payload_fingerprints(self, fingerprints: pd.DataFrame) -> int:
        """New shapes are inserted with their diff; known ones only get last_seen moved."""
        if fingerprints.empty:
            return 0
        return self._merge_rows(PAYLOAD_FINGERPRINTS, fingerprints).inserted

    def payload_fingerprints(
        self, *, exchange: str | None = None, endpoint: str | None = None, since: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        """Stored fingerprints matching the filters, ordered by last_seen (newest last)."""
        filters = {"exchange": exchange, "endpoint": endpoint}
        params: dict = {name: value for name, value in filters.items() if value}
        conditions = [f"{safe_identifier(name)} = {self.dialect.param(name)}" for name in params]
        if since is not None:
            params["since"] = utc(since)
            conditions.append(f"first_seen >= {self.dialect.param('since')}")
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        columns = ", ".join(safe_identifier(c) for c in PAYLOAD_FINGERPRINTS.column_names)
        sql = (
            f"SELECT {columns} FROM {self._table(PAYLOAD_FINGERPRINTS)} {where}"
            "ORDER BY exchange, endpoint, last_seen, first_seen"
        )
        return typed(self.query_df(sql, params), PAYLOAD_FINGERPRINTS).reset_index(drop=True)
