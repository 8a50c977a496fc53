"""Building blocks shared by the candle and trade normalizers: config checks, column coercion
with rejection reasons, and cheap construction of typed columns."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa

from cryptopipe_dagster.lib.edge.coerce import coerce_epoch_ms, coerce_numeric
from cryptopipe_dagster.lib.edge.schemas import EXCHANGE_PATTERN, SOURCES, Text
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


def arrow_column(values: list) -> pa.Array | list:
    """One field of every record as Arrow when it is uniformly typed (the usual case), else as is."""
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return values
    if pa.types.is_string(array.type) or pa.types.is_null(array.type):
        return array  # Arrow refuses to mix text with anything but None: no bool hides in there
    types = set(map(type, values))
    if bool in types and len(types - {type(None)}) > 1:  # Arrow would read True as 1.0 among floats
        return values
    return array


def exact_frame(arrays: dict[str, pa.Array | list], index=None) -> pd.DataFrame:
    """The exact path's input frame of fields read column by column (arrow_column)."""
    return pd.DataFrame({name: typed_column(array) for name, array in arrays.items()}, index=index)


def typed_column(values: pa.Array | list) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """A field for the exact path: typed when Arrow could type it (the vectorized checks apply),
    else Python objects (the hostile-input path)."""
    if not isinstance(values, pa.Array):
        return object_column(values)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return pd.array(values, dtype=Text)
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return values.to_numpy(zero_copy_only=False)
    return object_column(values.to_pylist())


def object_column(values: list) -> np.ndarray:
    """Python objects as a 1-D object array (the hostile-input path's column)."""
    # Not np.array(values, dtype=object): a list of equal-length lists would become a 2-D array.
    out = np.empty(len(values), dtype=object)
    out[:] = pd.Series(values, dtype=object).to_numpy()
    return out
