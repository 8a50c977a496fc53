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

    [window_start, fetched_through) is durably loaded; fetched_through is exclusive.
    """

    exchange: str
    symbol: str
    timeframe: str
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    fetched_through: pd.Timestamp
    updated_at: pd.Timestamp
    run_id: str | None = None


class Warehouse(ABC):
    """Idempotent storage of candles, trades, dead letters and ingest checkpoints."""

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
    def candle_timestamps(
        self, exchange: str, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.Series:
        """Sorted open times (UTC) of stored candles with start <= ts < end."""

    @abstractmethod
    def first_candle_ts(self, exchange: str, symbol: str, timeframe: str) -> pd.Timestamp | None:
        """Open time of the earliest stored candle (not pruned by date: use sparingly)."""

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
        """Run a parameterized read-only query and return its result."""

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
