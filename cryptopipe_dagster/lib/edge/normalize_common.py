"""Building blocks shared by the candle and trade normalizers: config checks, column coercion
with rejection reasons, and cheap construction of typed columns."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa

from cryptopipe_dagster.lib.edge.coerce import coerce_epoch_ms, coerce_numeric
from cryptopipe_dagster.lib.edge.schemas import EXCHANGE_PATTERN, SOURCES
from cryptopipe_dagster.lib.edge.validation import RowRejections
from cryptopipe_dagster.lib.errors import ConfigError

# Exchange and local clocks disagree by up to a second or so; a candle opening within this margin
# after `now` is the just-opened candle (incomplete), not a bogus future one.
CLOCK_SKEW = pd.Timedelta(seconds=5)


def utc_now() -> pd.Timestamp:
    """The current time as a UTC nanosecond Timestamp."""
    return pd.Timestamp.now(tz="UTC")


def as_utc(value: pd.Timestamp | str | None) -> pd.Timestamp:
    """`value` as a UTC Timestamp (naive values are taken to be UTC); None means now."""
    if value is None:
        return utc_now()
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def check_exchange_and_source(exchange: str, source: str) -> None:
    """Raise ConfigError for an exchange id or source the schemas would reject on every row."""
    if not isinstance(exchange, str) or not re.fullmatch(EXCHANGE_PATTERN, exchange):
        raise ConfigError(f"invalid exchange id {exchange!r}: expected a lowercase ccxt id")
    if source not in SOURCES:
        raise ConfigError(f"invalid source {source!r}: expected one of {', '.join(SOURCES)}")


def check_numeric_columns(raw: pd.DataFrame, columns: tuple[str, ...], rejections: RowRejections) -> dict:
    """Coerce `columns` to float64, rejecting null, non-numeric and over-precise values."""
    values = {}
    for column in columns:
        parsed = coerce_numeric(raw[column])
        rejections.add(parsed.null, "null_value", f"{column}:not_nullable", f"{column} is missing")
        rejections.add(
            parsed.non_numeric,
            "non_numeric_value",
            f"{column}:finite_number",
            f"{column} is not a finite number",
            raw[column],
        )
        rejections.add(
            parsed.imprecise,
            "precision_exceeded",
            f"{column}:max_15_significant_digits",
            f"{column} would be rounded by float64",
            raw[column],
        )
        values[column] = parsed.values
    return values


def check_timestamps(raw_ts: pd.Series, now: pd.Timestamp, rejections: RowRejections) -> np.ndarray:
    """Coerce ms epochs to UTC ns, rejecting null, out-of-range and future (beyond CLOCK_SKEW) ones."""
    ts = coerce_epoch_ms(raw_ts)
    rejections.add(ts.null, "null_value", "ts:not_nullable", "ts is missing")
    rejections.add(ts.non_numeric, "non_numeric_value", "ts:finite_number", "ts is not a number", raw_ts)
    rejections.add(
        ts.out_of_range,
        "ts_out_of_range",
        "ts:ms_epoch_2009_to_2100",
        "ts is not a whole-ms epoch in [2009-01-03, 2100-01-01)",
        raw_ts,
    )
    future = ~rejections.rejected & (ts.ns > (now + CLOCK_SKEW).value)
    rejections.add(future, "ts_in_future", "ts_not_in_future", f"ts is after now={now.isoformat()}", raw_ts)
    return ts.ns


def constant_text(value: str, n: int) -> pd.arrays.ArrowStringArray:
    """An Arrow-backed string column repeating `value` (built in C, no per-row Python object)."""
    return pd.arrays.ArrowStringArray(pa.chunked_array([pa.repeat(pa.scalar(value, pa.string()), n)]))


def utc_timestamps(ns: np.ndarray) -> pd.DatetimeIndex:
    """int64 epoch nanoseconds -> tz-aware UTC timestamps (no copy of the values)."""
    return pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("M8[ns]")).tz_localize("UTC")
