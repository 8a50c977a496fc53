"""Pandera models of the canonical tables: the one definition of what a stored record looks like.

Precision policy: prices and volumes are float64. Exchanges send decimal strings or floats with at
most 15 significant digits, and float64 round-trips every such value exactly (its shortest repr is
the exchange's decimal text), so the pipeline never changes a value. A value with more significant
digits, or with a magnitude of 1e15 or more, is not silently rounded: it goes to the dead letters
with reason ``precision_exceeded`` (see ``lib/edge/coerce.py``). Decimal text is parsed with a correctly
rounded parser; ``pd.to_numeric`` is not one (it mis-rounds ~1/3 of 16-17-digit strings).

Dataframe-level check names (``ohlc_consistent``, ``ts_aligned_to_timeframe``,
``ts_not_in_future``) appear verbatim in ``SchemaErrors.failure_cases`` and are mapped to stable
dead-letter reason codes by ``lib/edge/validation.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.typing import Series

from cryptopipe_dagster.lib.errors import InvalidTimeframe
from cryptopipe_dagster.lib.timeframes import timeframe_seconds

# Low-cardinality text columns use Arrow-backed strings: pandera's check of a plain `str` column
# calls isinstance() once per element, and Arrow runs the regex/isin checks in C++ instead.
Text = pd.StringDtype("pyarrow")
UtcTimestamp = Annotated[pd.DatetimeTZDtype, "ns", "UTC"]


def frame_from_arrow(table: pyarrow.Table) -> pd.DataFrame:
    """A canonical frame of an Arrow table: text as Text (either Arrow width), numbers zero-copy."""
    return table.to_pandas(types_mapper={pyarrow.string(): Text, pyarrow.large_string(): Text}.get)


SYMBOL_PATTERN = r"^[A-Z0-9]+/[A-Z0-9]+$"
TIMEFRAME_PATTERN = r"^[1-9][0-9]*[smhdw]$"
EXCHANGE_PATTERN = r"^[a-z0-9_]+$"
SOURCES = ("rest", "ws", "trades", "replay", "recording")
SIDES = ("buy", "sell", "unknown")
DATASETS = ("candles", "trades")


def check_ohlc_consistent(df: pd.DataFrame) -> pd.Series:
    """Row-wise: low <= min(open, close), high >= max(open, close) and low <= high."""
    low, high = df["low"].to_numpy(), df["high"].to_numpy()
    open_, close = df["open"].to_numpy(), df["close"].to_numpy()
    ok = (low <= np.minimum(open_, close)) & (high >= np.maximum(open_, close)) & (low <= high)
    return pd.Series(ok, index=df.index)


def check_ts_aligned_to_timeframe(df: pd.DataFrame) -> pd.Series:
    """Row-wise: ts (epoch) is a whole multiple of its timeframe; weekly candles may open on Mondays.

    Most exchanges (Binance, OKX, ...) open weekly candles on Monday 00:00 UTC, which is 4 days off
    the epoch grid (1970-01-01 was a Thursday), so for `w` timeframes that phase is accepted too.
    """
    step_ns, monday_phase_ns = timeframe_grid_ns(df["timeframe"])
    ts_ns = df["ts"].dt.as_unit("ns").array.asi8
    # An unknown timeframe cannot be aligned; step 0 marks it failed (its own check names it).
    phase = ts_ns % np.where(step_ns > 0, step_ns, 1)
    ok = (step_ns > 0) & ((phase == 0) | (phase == monday_phase_ns))
    return pd.Series(ok, index=df.index)


def check_ts_not_in_future(df: pd.DataFrame) -> pd.Series:
    """Row-wise: ts is not later than the wall clock at validation time."""
    return df["ts"] <= pd.Timestamp.now(tz="UTC")


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
        return check_ohlc_consistent(df)

    @pa.dataframe_check
    def ts_aligned_to_timeframe(cls, df: pd.DataFrame) -> Series[bool]:
        """ts (epoch seconds) is a whole multiple of the timeframe length."""
        return check_ts_aligned_to_timeframe(df)

    @pa.dataframe_check
    def ts_not_in_future(cls, df: pd.DataFrame) -> Series[bool]:
        """ts is not later than the validation wall clock."""
        return check_ts_not_in_future(df)


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
        return check_ts_not_in_future(df)


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
    reason_code: Series[Text] = pa.Field(
        str_matches=r"^[a-z][a-z0-9_]*$", description="stable snake_case code"
    )
    check_name: Series[Text] = pa.Field(description="the check that rejected the record")
    error_detail: Series[Text] = pa.Field(description="short human explanation; never secrets")
    raw_payload: Series[Text] = pa.Field(description="JSON text of the record as received")
    first_seen_at: Series[UtcTimestamp] = pa.Field(description="when the record was first rejected, UTC")
    replayed_at: Series[UtcTimestamp] = pa.Field(nullable=True, description="when it was replayed, UTC")

    class Config:
        strict = True
        coerce = True


_MONDAY_OFFSET_NS = 4 * 86_400 * 1_000_000_000  # 1970-01-05 was the first Monday after the epoch


def timeframe_grid_ns(timeframes: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per row: candle length in ns (0 where not understood) and the Monday grid phase (0 unless weekly).

    Each distinct timeframe is parsed once.
    """
    codes, uniques = pd.factorize(timeframes)
    # One extra slot at the end for factorize's -1 (null timeframe): length 0, i.e. not aligned.
    lengths = np.zeros(len(uniques) + 1, dtype=np.int64)
    monday = np.zeros(len(uniques) + 1, dtype=np.int64)
    for i, timeframe in enumerate(uniques):
        try:
            lengths[i] = timeframe_seconds(timeframe) * 1_000_000_000
        except InvalidTimeframe:
            continue
        if timeframe.endswith("w"):
            monday[i] = _MONDAY_OFFSET_NS % lengths[i]
    return lengths[codes], monday[codes]


# The dataframe-level checks of each schema as plain vectorized functions, by check name.
# lib/edge/validation.py runs them before Pandera: Pandera builds failure cases of a dataframe-level
# check by stacking every column of every failing row, which takes seconds per 10k failing rows.
ROW_CHECKS: dict[type[pa.DataFrameModel], dict[str, Callable[[pd.DataFrame], pd.Series]]] = {
    CandleSchema: {
        "ohlc_consistent": check_ohlc_consistent,
        "ts_aligned_to_timeframe": check_ts_aligned_to_timeframe,
        "ts_not_in_future": check_ts_not_in_future,
    },
    TradeSchema: {"ts_not_in_future": check_ts_not_in_future},
}


def schema_columns(schema: type[pa.DataFrameModel]) -> list[str]:
    """Column names of `schema` in declaration order (the stored column order)."""
    return list(schema.to_schema().columns)
