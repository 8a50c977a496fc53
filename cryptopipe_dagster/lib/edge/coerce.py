"""Hostile payload values -> float64 / UTC nanoseconds, with a reason code for every value refused.

Every function works on a whole column. A fast path covers the normal case (a column that is
already numeric); the per-value type inspection (`Series.map(type)`) runs only for columns that
actually hold mixed objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

# float64 holds every decimal of up to 15 significant digits exactly; from 1e15 on, whole numbers
# stop having room for a fractional digit and integers above 2**53 are rounded.
MAX_SIGNIFICANT_DIGITS = 15
MAX_MAGNITUDE = 1e15
# Plausible millisecond epochs: Bitcoin's genesis block .. 2100. A seconds epoch (1.7e9) or a
# microseconds epoch (1.7e15) falls outside, so a unit mix-up is refused instead of misread.
MIN_EPOCH_MS = 1_230_940_800_000  # 2009-01-03T00:00:00Z
MAX_EPOCH_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z

_NUMERIC_KINDS = frozenset({"floating", "integer", "mixed-integer-float", "empty"})
_NUMBER_TYPES = frozenset(
    {int, float, np.float64, np.float32, np.int64, np.int32, np.int16, np.int8, np.uint64, np.uint32}
)
_TEXT_TYPES = frozenset({str, np.str_, Decimal})
_DECIMAL_TEXT = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


@dataclass(frozen=True)
class NumericColumn:
    """A column as float64 plus masks of the values that must be refused, by reason."""

    values: np.ndarray
    null: np.ndarray
    non_numeric: np.ndarray
    imprecise: np.ndarray


def coerce_numeric(raw: pd.Series) -> NumericColumn:
    """Parse a column of numbers/decimal text to float64 without rounding anything silently.

    null: None/NaN/NaT. non_numeric: bool, unparsable text, containers, +-inf. imprecise: more
    than 15 significant digits in decimal text, or |x| >= 1e15.
    """
    null = raw.isna().to_numpy()
    if pd.api.types.is_bool_dtype(raw.dtype):
        values = np.full(len(raw), np.nan)
        text_digits_exceeded = np.zeros(len(raw), dtype=bool)
    elif pd.api.types.is_numeric_dtype(raw.dtype):
        values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
        text_digits_exceeded = np.zeros(len(raw), dtype=bool)
    elif raw.dtype == object and pd.api.types.infer_dtype(raw, skipna=True) in _NUMERIC_KINDS:
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        text_digits_exceeded = np.zeros(len(raw), dtype=bool)
    else:
        values, text_digits_exceeded = _parse_mixed(raw)
    finite = np.isfinite(values)
    non_numeric = ~null & ~finite
    imprecise = finite & ((np.abs(values) >= MAX_MAGNITUDE) | text_digits_exceeded)
    return NumericColumn(values=values, null=null, non_numeric=non_numeric, imprecise=imprecise)


def _parse_mixed(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Slow path for object/text columns: numbers pass through, decimal text is parsed exactly."""
    values = np.full(len(raw), np.nan)
    digits_exceeded = np.zeros(len(raw), dtype=bool)
    types = raw.map(type, na_action="ignore")
    is_number = types.isin(_NUMBER_TYPES).to_numpy()
    if is_number.any():
        values[is_number] = pd.to_numeric(raw[is_number], errors="coerce").to_numpy(
            np.float64, na_value=np.nan
        )
    is_text = types.isin(_TEXT_TYPES).to_numpy()
    if is_text.any():
        text = raw[is_text].astype(str)
        parsable = text.str.fullmatch(_DECIMAL_TEXT).to_numpy(dtype=bool)
        positions = np.flatnonzero(is_text)[parsable]
        # float() on a Python str is correctly rounded; pd.to_numeric's string parser is not.
        values[positions] = text[parsable].to_numpy(dtype=object).astype(np.float64)
        digits_exceeded[positions] = significant_digits(text[parsable]).to_numpy() > MAX_SIGNIFICANT_DIGITS
    return values, digits_exceeded


def significant_digits(decimal_text: pd.Series) -> pd.Series:
    """Significant digits of each decimal string (leading and trailing zeros do not count)."""
    mantissa = decimal_text.str.replace(r"[eE].*$|[+\-.]", "", regex=True)
    return mantissa.str.lstrip("0").str.rstrip("0").str.len()


@dataclass(frozen=True)
class EpochColumn:
    """A timestamp column as int64 UTC nanoseconds (0 where refused) plus refusal masks."""

    ns: np.ndarray
    null: np.ndarray
    non_numeric: np.ndarray
    out_of_range: np.ndarray


def coerce_epoch_ms(raw: pd.Series) -> EpochColumn:
    """Millisecond epochs (numbers or digit text) or datetimes -> UTC ns; naive datetimes are UTC.

    Numbers must be whole milliseconds; datetimes keep their full precision.
    """
    if isinstance(raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(raw.dtype):
        stamps = raw.dt.tz_localize("UTC") if raw.dt.tz is None else raw.dt.tz_convert("UTC")
        null = stamps.isna().to_numpy()
        ns = stamps.astype("datetime64[ns, UTC]").array.asi8
        in_range = ~null & (ns >= MIN_EPOCH_MS * 1_000_000) & (ns < MAX_EPOCH_MS * 1_000_000)
        return EpochColumn(
            ns=np.where(in_range, ns, 0),
            null=null,
            non_numeric=np.zeros(len(raw), dtype=bool),
            out_of_range=~null & ~in_range,
        )
    column = coerce_numeric(raw)
    ms, null, non_numeric = column.values, column.null, column.non_numeric
    in_range = (ms >= MIN_EPOCH_MS) & (ms < MAX_EPOCH_MS) & (np.floor(ms) == ms)
    # Multiply in int64: a float product of 1.7e12 * 1e6 is past 2**53 and would be rounded.
    ns = np.where(in_range, ms, 0).astype(np.int64) * 1_000_000
    return EpochColumn(
        ns=ns, null=null, non_numeric=non_numeric, out_of_range=~null & ~non_numeric & ~in_range
    )
