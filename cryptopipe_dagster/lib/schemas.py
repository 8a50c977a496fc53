"""Pandera models of the canonical tables: the one definition of what a stored record looks like.

Precision policy: prices and volumes are float64. Exchanges send decimal strings or floats with at
most 15 significant digits, and float64 round-trips every such value exactly (its shortest repr is
the exchange's decimal text), so the pipeline never changes a value. A value with more significant
digits, or with a magnitude of 1e15 or more, is not silently rounded: it goes to the dead letters
with reason ``precision_exceeded`` (see ``lib/coerce.py``). Decimal text is parsed with a correctly
rounded parser; ``pd.to_numeric`` is not one (it mis-rounds about a third of 17-digit strings).

Dataframe-level check names (``ohlc_consistent``, ``ts_aligned_to_timeframe``,
``ts_not_in_future``) appear verbatim in ``SchemaErrors.failure_cases`` and are mapped to stable
dead-letter reason codes by ``lib/validation.py``.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from cryptopipe_dagster.lib.errors import InvalidTimeframe
from cryptopipe_dagster.lib.timeframes import timeframe_seconds

# Low-cardinality text columns use Arrow-backed strings: pandera's check of a plain `str` column
# calls isinstance() once per element, and Arrow runs the regex/isin checks in C++ instead.
Text = pd.StringDtype("pyarrow")
UtcTimestamp = Annotated[pd.DatetimeTZDtype, "ns", "UTC"]

SYMBOL_PATTERN = r"^[A-Z0-9]+/[A-Z0-9]+$"
TIMEFRAME_PATTERN = r"^[1-9][0-9]*[smhdw]$"
EXCHANGE_PATTERN = r"^[a-z0-9_]+$"
SOURCES = ("rest", "ws", "trades", "replay", "recording")
SIDES = ("buy", "sell", "unknown")
DATASETS = ("candles", "trades")


def _now_utc() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


class CandleSchema(pa.DataFrameModel):
    """Table ``raw.candles``: one closed OHLCV candle per (exchange, symbol, timeframe, ts)."""

    exchange: Series[Text] = pa.Field(str_matches=EXCHANGE_PATTERN, description="ccxt exchange id, lowercase")
    symbol: Series[Text] = pa.Field(str_matches=SYMBOL_PATTERN, description="canonical pair BASE/QUOTE")
    timeframe: Series[Text] = pa.Field(str_matches=TIMEFRAME_PATTERN, description="candle length, e.g. 1m")
    ts: Series[UtcTimestamp] = pa.Field(description="candle open time, UTC")
    open: Series[np.float64] = pa.Field(gt=0, description="first trade price in the candle")
    high: Series[np.float64] = pa.Field(gt=0, description="highest trade price in the candle")
    low: Series[np.float64] = pa.Field(gt=0, description="lowest trade price in the candle")
    close: Series[np.float64] = pa.Field(gt=0, description="last trade price in the candle")
    volume: Series[np.float64] = pa.Field(ge=0, description="traded base-currency amount")
    source: Series[Text] = pa.Field(isin=SOURCES, description="path the candle arrived by")
    ingested_at: Series[UtcTimestamp] = pa.Field(description="when the pipeline received the batch, UTC")

    class Config:
        strict = True
        coerce = True

    @pa.dataframe_check
    def ohlc_consistent(cls, df: pd.DataFrame) -> Series[bool]:
        """low <= min(open, close), high >= max(open, close) and low <= high."""
        low, high = df["low"].to_numpy(), df["high"].to_numpy()
        open_, close = df["open"].to_numpy(), df["close"].to_numpy()
        ok = (low <= np.minimum(open_, close)) & (high >= np.maximum(open_, close)) & (low <= high)
        return pd.Series(ok, index=df.index)

    @pa.dataframe_check
    def ts_aligned_to_timeframe(cls, df: pd.DataFrame) -> Series[bool]:
        """ts (epoch seconds) is a whole multiple of the timeframe length."""
        step_ns = timeframe_lengths_ns(df["timeframe"])
        ts_ns = df["ts"].array.asi8
        # An unknown timeframe cannot be aligned; step 0 marks it failed (its own check names it).
        ok = (step_ns > 0) & (ts_ns % np.where(step_ns > 0, step_ns, 1) == 0)
        return pd.Series(ok, index=df.index)

    @pa.dataframe_check
    def ts_not_in_future(cls, df: pd.DataFrame) -> Series[bool]:
        """ts is not later than the validation wall clock."""
        return df["ts"] <= _now_utc()


class TradeSchema(pa.DataFrameModel):
    """Table ``raw.trades``: one public trade per (exchange, symbol, trade_id)."""

    exchange: Series[Text] = pa.Field(str_matches=EXCHANGE_PATTERN, description="ccxt exchange id, lowercase")
    symbol: Series[Text] = pa.Field(str_matches=SYMBOL_PATTERN, description="canonical pair BASE/QUOTE")
    trade_id: Series[Text] = pa.Field(str_length={"min_value": 1}, description="exchange trade id")
    ts: Series[UtcTimestamp] = pa.Field(description="trade time, UTC")
    price: Series[np.float64] = pa.Field(gt=0, description="trade price in quote currency")
    amount: Series[np.float64] = pa.Field(gt=0, description="traded base-currency amount")
    side: Series[Text] = pa.Field(isin=SIDES, description="taker side, or unknown")
    source: Series[Text] = pa.Field(isin=SOURCES, description="path the trade arrived by")
    ingested_at: Series[UtcTimestamp] = pa.Field(description="when the pipeline received the batch, UTC")

    class Config:
        strict = True
        coerce = True

    @pa.dataframe_check
    def ts_not_in_future(cls, df: pd.DataFrame) -> Series[bool]:
        """ts is not later than the validation wall clock."""
        return df["ts"] <= _now_utc()


class DeadLetterSchema(pa.DataFrameModel):
    """Table ``ops.dead_letters``: a rejected record, exactly as received, with why it was rejected."""

    dead_letter_id: Series[Text] = pa.Field(
        str_matches=r"^[0-9a-f]{64}$", description="sha256 of dataset|exchange|reason_code|raw_payload"
    )
    dataset: Series[Text] = pa.Field(isin=DATASETS, description="which canonical table it was meant for")
    exchange: Series[Text] = pa.Field(description="ccxt exchange id")
    symbol: Series[Text] = pa.Field(nullable=True, description="canonical pair, when known")
    timeframe: Series[Text] = pa.Field(nullable=True, description="candle timeframe, candles only")
    source: Series[Text] = pa.Field(description="path the record arrived by")
    reason_code: Series[Text] = pa.Field(str_matches=r"^[a-z][a-z0-9_]*$", description="stable snake_case code")
    check_name: Series[Text] = pa.Field(description="the check that rejected the record")
    error_detail: Series[Text] = pa.Field(description="short human explanation; never secrets")
    raw_payload: Series[Text] = pa.Field(description="JSON text of the record as received")
    first_seen_at: Series[UtcTimestamp] = pa.Field(description="when the record was first rejected, UTC")
    replayed_at: Series[UtcTimestamp] = pa.Field(nullable=True, description="when it was replayed, UTC")

    class Config:
        strict = True
        coerce = True


def timeframe_lengths_ns(timeframes: pd.Series) -> np.ndarray:
    """Candle length in ns per row (0 where the timeframe is not understood), parsing each value once."""
    codes, uniques = pd.factorize(timeframes)
    lengths = np.zeros(len(uniques) + 1, dtype=np.int64)  # last slot: factorize's -1 for nulls
    for i, timeframe in enumerate(uniques):
        try:
            lengths[i] = timeframe_seconds(timeframe) * 1_000_000_000
        except InvalidTimeframe:
            lengths[i] = 0
    return lengths[codes]


def schema_columns(schema: type[pa.DataFrameModel]) -> list[str]:
    """Column names of `schema` in declaration order (the stored column order)."""
    return list(schema.to_schema().columns)
