"""The warehouse interface every backend implements (DuckDB locally, BigQuery in prod).

Callers depend only on this class. Frames passed in are the normalizers' output (CandleSchema,
TradeSchema, DeadLetterSchema columns); timestamps come back as tz-aware UTC.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from cryptopipe_dagster.lib.warehouse.landing import LandingArea


@dataclass(frozen=True)
class MergeStats:
    """What one MERGE did: rows inserted, rows updated because values differed, rows already equal."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    dead_letters_written: int = 0

    def __add__(self, other: MergeStats) -> MergeStats:
        return MergeStats(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.dead_letters_written + other.dead_letters_written,
        )


@dataclass(frozen=True)
class Checkpoint:
    """Ingest progress of one (exchange, symbol, timeframe).

    `loaded_ranges` is every durably loaded [start, end) (sorted, disjoint, not adjacent), so
    disjoint backfills and resumes compose; [window_start, fetched_through) is the range the last
    write extended (fetched_through exclusive). A checkpoint stored before range sets has no
    loaded_ranges: `ranges` then falls back to that one range.
    """

    exchange: str
    symbol: str
    timeframe: str
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    fetched_through: pd.Timestamp
    updated_at: pd.Timestamp
    run_id: str | None = None
    loaded_ranges: tuple[tuple[pd.Timestamp, pd.Timestamp], ...] = ()

    @property
    def ranges(self) -> tuple[tuple[pd.Timestamp, pd.Timestamp], ...]:
        """The loaded ranges (the legacy single range when none were stored)."""
        if self.loaded_ranges:
            return self.loaded_ranges
        if self.fetched_through > self.window_start:
            return ((self.window_start, self.fetched_through),)
        return ()


class Warehouse(ABC):
    """Idempotent storage of candles, trades, dead letters and ingest checkpoints."""

    # How long the live loader groups landed batches before one MERGE per kind (0: every pull).
    live_load_interval_s: float = 0.0

    @abstractmethod
    def ensure_schema(self) -> None:
        """Create datasets/schemas and tables if they do not exist (safe to call every run)."""

    @abstractmethod
    def merge_candles(self, df: pd.DataFrame, *, unique_keys: bool = False) -> MergeStats:
        """MERGE a CandleSchema frame on (exchange, symbol, timeframe, ts); update only changed values.

        unique_keys: the caller guarantees one row per key, so the safety dedup can be skipped."""

    @abstractmethod
    def merge_trades(self, df: pd.DataFrame, *, unique_keys: bool = False) -> MergeStats:
        """MERGE a TradeSchema frame on (exchange, symbol, trade_id) (unique_keys as for candles)."""

    @abstractmethod
    def write_dead_letters(self, df: pd.DataFrame) -> int:
        """Insert dead letters whose id is new; returns how many were new."""

    @abstractmethod
    def merge_candles_with_checkpoint(
        self, candles: pd.DataFrame | None, dead_letters: pd.DataFrame | None, checkpoint: Checkpoint | None
    ) -> MergeStats:
        """Candles, dead letters and the checkpoint in ONE transaction: all of them or none."""

    @abstractmethod
    def get_checkpoint(self, exchange: str, symbol: str, timeframe: str) -> Checkpoint | None:
        """The stored checkpoint of a market and timeframe, if any."""

    @abstractmethod
    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Insert or replace the checkpoint of its (exchange, symbol, timeframe)."""

    @abstractmethod
    def record_gaps(self, gaps: pd.DataFrame) -> int:
        """Insert gaps (ops.gaps columns) whose key (exchange, symbol, timeframe, span_start) is new;
        a known gap is left as it is. Returns how many were new."""

    @abstractmethod
    def update_gaps(self, gaps: pd.DataFrame) -> None:
        """Upsert gaps with their attempts, backoff, state and evidence (the repair's write)."""

    @abstractmethod
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
        """Gaps matching every given filter, by market and span: `due_at` keeps those with
        next_attempt <= due_at, `overlapping` those whose span meets [start, end)."""

    @abstractmethod
    def record_anomalies(self, anomalies: pd.DataFrame) -> MergeStats:
        """MERGE ops.anomalies rows on (exchange, symbol, timeframe, ts, kind): a finding seen again
        is updated in place (value, threshold, detail, detected_at), never duplicated."""

    @abstractmethod
    def anomalies(
        self, *, kind: str | None = None, exchange: str | None = None, symbol: str | None = None
    ) -> pd.DataFrame:
        """Stored anomalies matching every given filter, by kind, market and time."""

    @abstractmethod
    def candles_of_timeframe(self, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Stored candles of one timeframe (every market) with start <= ts < end, CandleSchema columns."""

    @abstractmethod
    def candle_timestamps(
        self, exchange: str, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.Series:
        """Sorted open times (UTC) of stored candles with start <= ts < end."""

    @abstractmethod
    def first_candle_ts(
        self, exchange: str, symbol: str, timeframe: str, since: pd.Timestamp
    ) -> pd.Timestamp | None:
        """Open time of the earliest stored candle at or after `since` (None when there is none)."""

    @abstractmethod
    def candles_in_window(
        self, exchanges: Sequence[str] | None, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        """Stored candles with start <= ts < end (all exchanges when None), in CandleSchema columns."""

    @abstractmethod
    def count_duplicate_keys(self, table: str, start_date: dt.date, end_date: dt.date) -> int:
        """Rows beyond one per key in `table` with partition date in [start_date, end_date]."""

    @abstractmethod
    def query_df(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        """Run a parameterized read-only query written in this warehouse's dialect (warehouse code only)."""

    @abstractmethod
    def market_summary(self, table: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Per market of raw.candles or raw.trades in [start, end): rows, first and last ts (and
        timeframe for candles, rows that came by REST for trades)."""

    @abstractmethod
    def newest_trade_ts(self) -> pd.Timestamp | None:
        """Time of the newest stored trade (None if there is none), read from its newest partition."""

    @abstractmethod
    def trade_counts(self, since: pd.Timestamp) -> dict[str, int]:
        """Stored trades with ts >= since per market, keyed "exchange:symbol"."""

    @abstractmethod
    def reconcile_trade_candles(self, since: pd.Timestamp) -> pd.DataFrame:
        """Trade-built 1m candles (dbt) vs stored 1m candles since `since`, a `mismatch` per minute."""

    @abstractmethod
    def stored_candle_volumes(self, candles: pd.DataFrame) -> pd.DataFrame:
        """Stored (exchange, symbol, timeframe, ts, stored_volume) for the keys of `candles`."""

    @abstractmethod
    def latest_indicators(self, since: pd.Timestamp) -> pd.DataFrame:
        """The newest row per market and timeframe of marts.indicators_1h / _1d with ts >= since."""

    @abstractmethod
    def landing(self) -> LandingArea:
        """The live path's landing area (landed batches and the loaded ledger) in this warehouse."""

    def __enter__(self) -> Warehouse:
        """Hold one session for several calls where the backend has one (DuckDB); else a no-op."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def is_busy(self) -> bool:
        """Whether another process holds the warehouse (DuckDB's single writer); never on BigQuery."""
        return False

    @property
    def display_name(self) -> str:
        """Where the data lives, for people (a file path, a project and dataset prefix)."""
        return type(self).__name__

    @abstractmethod
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

    @abstractmethod
    def mark_replayed(self, dead_letter_ids: Sequence[str], at: pd.Timestamp | None = None) -> int:
        """Set replayed_at on dead letters not yet replayed; returns how many changed."""

    @abstractmethod
    def record_payload_fingerprints(self, fingerprints: pd.DataFrame) -> int:
        """MERGE ops.payload_fingerprints rows on (exchange, endpoint, fingerprint): a new shape is
        inserted with its diff, a known one gets its last_seen moved. Returns how many were new."""

    @abstractmethod
    def payload_fingerprints(
        self, *, exchange: str | None = None, endpoint: str | None = None, since: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        """Stored fingerprints (optionally of one exchange / endpoint, first seen at or after
        `since`), newest last_seen last."""

    @abstractmethod
    def table_columns(self, logical: str) -> dict[str, str]:
        """The stored columns of an allow-listed table ("raw.candles") as {name: logical type}
        (string, float64, timestamp, date, int64, bytes; the warehouse's own name when unknown),
        read from the warehouse's catalog, not from the spec. Empty when the table does not exist."""
