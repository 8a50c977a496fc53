"""The warehouse tables (columns, keys, partitioning) and what differs per SQL dialect.

Columns are derived from the Pandera models, so a table and its schema cannot drift apart.
Identifiers reach SQL text only through ``safe_identifier`` and the TABLES allow-list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import pandera.pandas as pa

from cryptopipe_dagster.lib.edge.schemas import CandleSchema, DeadLetterSchema, TradeSchema
from cryptopipe_dagster.lib.errors import UnsafeIdentifier

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def safe_identifier(name: object) -> str:
    """`name` if it is a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*), else UnsafeIdentifier."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise UnsafeIdentifier(name)
    return name


@dataclass(frozen=True)
class Column:
    """A stored column: logical type (string, float64, timestamp, date) and nullability."""

    name: str
    type: str
    nullable: bool = False
    description: str = ""


@dataclass(frozen=True)
class TableSpec:
    """One warehouse table: columns, deterministic key, partition and clustering."""

    dataset: str
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    compare: tuple[str, ...] = ()  # a differing value in one of these makes a MERGE update the row
    update: tuple[str, ...] = ()  # columns a MERGE update writes
    date_column: str | None = None  # the stored partition column (DATE)
    date_source: str | None = None  # timestamp column the partition date is derived from
    cluster_by: tuple[str, ...] = ()
    # BigQuery refuses queries that do not prune this table by date (the large, growing tables).
    require_partition_filter: bool = False
    partition_expiration_days: int | None = None  # BigQuery drops older partitions by itself
    description: str = ""

    @property
    def partition_source(self) -> str | None:
        """The column BigQuery partitions on by DAY: the stored date column, else (for the large
        tables that require a partition filter) the timestamp. Small tables (dead letters,
        checkpoints) are clustered, not partitioned: their lookups are by key, not by date."""
        return self.date_column or (self.date_source if self.require_partition_filter else None)

    @property
    def qualified(self) -> str:
        return f"{safe_identifier(self.dataset)}.{safe_identifier(self.name)}"

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def input_columns(self) -> list[str]:
        """Columns a caller supplies (the derived partition column is computed in SQL)."""
        return [c.name for c in self.columns if c.name != self.date_column]

    def date_expression(self, alias: str) -> str:
        """SQL for the row's partition date: the stored column, or the date of its source timestamp."""
        if self.date_column:
            return f"{alias}.{safe_identifier(self.date_column)}"
        return f"CAST({alias}.{safe_identifier(self.date_source)} AS DATE)"


_LOGICAL_TYPES = {"STRING": "string", "Float64": "float64", "DateTime": "timestamp"}


def columns_of(schema: type[pa.DataFrameModel]) -> tuple[Column, ...]:
    """Stored columns of a Pandera model, so table and schema cannot drift apart."""
    return tuple(
        Column(
            name,
            _LOGICAL_TYPES[type(column.dtype).__name__],
            bool(column.nullable),
            column.description or "",
        )
        for name, column in schema.to_schema().columns.items()
    )


CANDLES = TableSpec(
    dataset="raw",
    name="candles",
    columns=(
        *columns_of(CandleSchema),
        Column("candle_date", "date", description="UTC date of ts (partition)"),
    ),
    key=("exchange", "symbol", "timeframe", "ts"),
    compare=("open", "high", "low", "close", "volume"),
    update=("open", "high", "low", "close", "volume", "source", "ingested_at"),
    date_column="candle_date",
    date_source="ts",
    cluster_by=("exchange", "symbol", "timeframe"),
    require_partition_filter=True,
    description="OHLCV candles of every exchange, market and timeframe (REST backfill and live), UTC.",
)
TRADES = TableSpec(
    dataset="raw",
    name="trades",
    columns=(
        *columns_of(TradeSchema),
        Column("trade_date", "date", description="UTC date of ts (partition)"),
    ),
    key=("exchange", "symbol", "trade_id"),
    compare=("ts", "price", "amount", "side"),
    update=("ts", "price", "amount", "side", "source", "ingested_at"),
    date_column="trade_date",
    date_source="ts",
    cluster_by=("exchange", "symbol"),
    require_partition_filter=True,
    description="Trades of every exchange and market (WebSocket and REST), UTC, one row per trade id.",
)
DEAD_LETTERS = TableSpec(
    dataset="ops",
    name="dead_letters",
    columns=columns_of(DeadLetterSchema),
    key=("dead_letter_id",),
    date_source="first_seen_at",
    cluster_by=("dataset", "exchange", "reason_code"),
    description="Records that failed validation, with a reason code; replayable (cryptopipe dlq).",
)
CHECKPOINTS = TableSpec(
    dataset="ops",
    name="ingest_checkpoints",
    columns=(
        Column("exchange", "string"),
        Column("symbol", "string"),
        Column("timeframe", "string"),
        Column("window_start", "timestamp"),
        Column("window_end", "timestamp"),
        Column("fetched_through", "timestamp"),
        Column("updated_at", "timestamp"),
        Column("run_id", "string", nullable=True),
        Column(
            "loaded_ranges",
            "string",
            nullable=True,
            description='every durably loaded [start, end) as JSON [["iso", "iso"], ...]; NULL in rows '
            "written before range sets: then [window_start, fetched_through) is the one range",
        ),
    ),
    key=("exchange", "symbol", "timeframe"),
    update=("window_start", "window_end", "fetched_through", "updated_at", "run_id", "loaded_ranges"),
    date_source="updated_at",
    description="Ingest progress per (exchange, symbol, timeframe): where a backfill resumes.",
)
# The gap ledger (lib/historical/gap_ledger.py): one row per missing span, keyed by where it starts.
# Recording is insert-only (re-finding a known gap changes nothing); GAP_UPDATES is the same table
# as the repair's upsert, which rewrites a gap's attempts, backoff, state and evidence.
GAPS = TableSpec(
    dataset="ops",
    name="gaps",
    columns=(
        Column("exchange", "string"),
        Column("symbol", "string"),
        Column("timeframe", "string", description="candle timeframe, or 'trades'"),
        Column("span_start", "timestamp", description="first missing open time (or trade time)"),
        Column("span_end", "timestamp", description="end of the missing span, exclusive"),
        Column("kind", "string", description="candles | trades"),
        Column("source", "string", description="who found it: backfill | gap_fill | reconcile"),
        Column("missing", "int64", nullable=True, description="candles missing when found"),
        Column("first_seen", "timestamp"),
        Column("attempts", "int64", description="repair attempts so far"),
        Column("last_attempt", "timestamp", nullable=True),
        Column("next_attempt", "timestamp", nullable=True, description="due for repair from (backoff)"),
        Column("state", "string", description="open | repaired | confirmed_exchange_gap"),
        Column("evidence", "string", description="JSON list: per attempt its time and the answer"),
        Column("updated_at", "timestamp"),
    ),
    key=("exchange", "symbol", "timeframe", "span_start"),
    date_source="first_seen",
    cluster_by=("state", "exchange", "symbol"),
    description="Missing spans (gap ledger): found, re-fetched with backoff, repaired or confirmed.",
)
GAP_UPDATES = replace(
    GAPS,
    update=("span_end", "attempts", "last_attempt", "next_attempt", "state", "evidence", "updated_at"),
)
# Payload shapes per exchange endpoint (lib/edge/fingerprint.py): one row per distinct shape seen.
PAYLOAD_FINGERPRINTS = TableSpec(
    dataset="ops",
    name="payload_fingerprints",
    columns=(
        Column("exchange", "string"),
        Column("endpoint", "string", description="ccxt call: fetch_ohlcv, fetch_trades, watch_trades, ..."),
        Column("fingerprint", "string", description="sha256 of the shape"),
        Column("fields", "string", description='the shape: JSON [["field.path", "json type"], ...]'),
        Column("previous_fingerprint", "string", nullable=True, description="the endpoint's shape before"),
        Column(
            "diff",
            "string",
            nullable=True,
            description='vs the previous shape: JSON [{"change", "field", "was", "now"}]; NULL for the first',
        ),
        Column("first_seen", "timestamp"),
        Column("last_seen", "timestamp"),
    ),
    key=("exchange", "endpoint", "fingerprint"),
    compare=("last_seen",),
    update=("last_seen",),
    date_source="first_seen",
    cluster_by=("exchange", "endpoint"),
    description="Every payload shape each exchange endpoint sent, with its diff: schema drift history.",
)
# Anomalies flagged by lib/quality/anomalies.py (price jumps, volume spikes, stuck, stale and
# diverging feeds): flagged, never dropped; re-running a detection over the same bars re-MERGEs the
# same keys, so the table holds each finding once, with its latest value.
ANOMALIES = TableSpec(
    dataset="ops",
    name="anomalies",
    columns=(
        Column("exchange", "string", description="exchange (divergence: the first of the pair)"),
        Column("symbol", "string"),
        Column("timeframe", "string"),
        Column("ts", "timestamp", description="open time of the offending bar (a run: its first bar)"),
        Column("kind", "string", description="price_jump, volume_spike, stuck_feed, stale_feed, divergence"),
        Column("value", "float64", description="robust z, run length, age in hours or basis points"),
        Column("threshold", "float64", description="the configured limit the value exceeded"),
        Column("detail", "string", description="the bar's figures, for people"),
        Column("detected_at", "timestamp"),
    ),
    key=("exchange", "symbol", "timeframe", "ts", "kind"),
    compare=("value", "threshold", "detail"),
    update=("value", "threshold", "detail", "detected_at"),
    date_source="ts",
    cluster_by=("kind", "exchange", "symbol"),
    description="Anomalies per market and timeframe (config/anomalies.yaml): flagged, the data kept.",
)
TABLES: dict[str, TableSpec] = {
    spec.qualified: spec
    for spec in (CANDLES, TRADES, DEAD_LETTERS, CHECKPOINTS, GAPS, PAYLOAD_FINGERPRINTS, ANOMALIES)
}


def table_spec(table: object) -> TableSpec:
    """The allow-listed spec of `table` ('raw.candles', ...); anything else is UnsafeIdentifier."""
    if not isinstance(table, str) or table not in TABLES:
        raise UnsafeIdentifier(table)
    return TABLES[table]


@dataclass(frozen=True)
class Dialect:
    """What differs between backends: parameter marker, type names, partition DDL."""

    name: str
    param_prefix: str
    types: dict[str, str]
    partitions: bool = False

    def param(self, name: str) -> str:
        return self.param_prefix + safe_identifier(name)


# Logical types beyond the record tables' (the landing tables hold counts and payloads).
DUCKDB = Dialect(
    "duckdb",
    "$",
    {
        "string": "VARCHAR",
        "float64": "DOUBLE",
        "timestamp": "TIMESTAMPTZ",
        "date": "DATE",
        "int64": "BIGINT",
        "bytes": "BLOB",
    },
)
BIGQUERY = Dialect(
    "bigquery",
    "@",
    {
        "string": "STRING",
        "float64": "FLOAT64",
        "timestamp": "TIMESTAMP",
        "date": "DATE",
        "int64": "INT64",
        "bytes": "BYTES",
    },
    True,
)


# The live landing area on BigQuery: append-only tables (rows arrive by streaming append, never by
# DML), pruned by day; which batches still wait is "landed and not in the loaded ledger".
LANDED_BATCHES = TableSpec(
    dataset="ops",
    name="landed_batches",
    columns=(
        Column("batch_id", "string", description="deterministic id of the micro-batch"),
        Column("message_id", "string", description="Pub/Sub message id"),
        Column("exchange", "string"),
        Column("symbol", "string"),
        Column("kind", "string", description="trades | candles"),
        Column("record_count", "int64"),
        Column("attributes", "string", description="the message attributes as JSON"),
        Column("payload", "bytes", description="the batch as published (Arrow IPC stream)"),
        Column("published_at", "timestamp", nullable=True),
        Column("landed_at", "timestamp"),
        Column("ingested_at", "timestamp", nullable=True),
        Column("source", "string", nullable=True),
    ),
    key=("batch_id",),
    date_source="landed_at",
    cluster_by=("kind", "batch_id"),
    require_partition_filter=True,
    partition_expiration_days=8,  # past Pub/Sub's 7-day retention: a redelivery still finds its row
    description="Pulled Pub/Sub micro-batches, stored before their ack; loaded ones are in loaded_batches.",
)
LOADED_BATCHES = TableSpec(
    dataset="ops",
    name="loaded_batches",
    columns=(
        *(c for c in LANDED_BATCHES.columns if c.name not in ("attributes", "payload")),
        Column("loaded_at", "timestamp"),
    ),
    key=("batch_id",),
    date_source="loaded_at",
    cluster_by=("kind", "batch_id"),
    require_partition_filter=True,
    partition_expiration_days=8,
    description="Ledger of loaded micro-batches (publish, land, load times): freshness and backlog.",
)
LANDING_TABLES: dict[str, TableSpec] = {spec.qualified: spec for spec in (LANDED_BATCHES, LOADED_BATCHES)}
