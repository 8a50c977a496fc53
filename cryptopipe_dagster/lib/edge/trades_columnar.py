"""The columnar fast path of the trade edge: Arrow in, Arrow out, on Polars (no pandas per row).

It splits a batch in two. Rows that pass every rule of ``normalize_trades`` as they stand (typed
numbers in range, a readable symbol, a usable id, a known side) are normalized here and checked by
the Pandera Polars model of ``TradeSchema``. Every other row (typically well under 1%) is declined:
its position goes to the exact path in ``normalize_trades.py``, which gives it its reason code, a
synthetic id, or its way into the table. The fast path only ever accepts rows the exact path would
accept with the same values, so the outcome is the exact path's, just faster (a property test holds
the two equal).

Per-row string work is done on distinct values only (symbols, sides): a batch of a million trades
has a handful of them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.polars as pap
import polars as pl
import pyarrow as pa
from pandera.errors import SchemaError, SchemaErrors

from cryptopipe_dagster.lib.edge.coerce import MAX_EPOCH_MS, MAX_MAGNITUDE, MIN_EPOCH_MS
from cryptopipe_dagster.lib.edge.normalize_common import CLOCK_SKEW
from cryptopipe_dagster.lib.edge.schemas import TradeSchema, schema_columns
from cryptopipe_dagster.lib.edge.trade_rules import (
    NUMERIC_ID_PATTERN,
    TRADE_ARROW_SCHEMA,
    canonical_or_none,
    side_or_none,
)

ROW = "__row"  # input position of each row: dedup keeps the last one, dead letters name it
_NUMERIC_ID = f"^{NUMERIC_ID_PATTERN}$"


@dataclass(frozen=True)
class ColumnarSplit:
    """Rows the fast path accepted (canonical columns plus ROW) and the positions it declined."""

    clean: pl.DataFrame
    declined: np.ndarray


def fast_path_applies(table: pa.Table) -> bool:
    """Whether every field has a type the fast path reads (numbers typed, text as text).

    Anything else (object columns, booleans, nested values, decimal text prices) is the exact path's."""
    types = {name: table.schema.field(name).type for name in table.column_names}
    text = (pa.types.is_string, pa.types.is_large_string, pa.types.is_null)
    number = (pa.types.is_integer, pa.types.is_floating)
    return (
        _is_any(types["symbol"], text)
        and _is_any(types["side"], text)
        and _is_any(types["id"], (*text, pa.types.is_integer))
        and all(_is_any(types[column], number) for column in ("timestamp", "price", "amount"))
    )


def _is_any(arrow_type: pa.DataType, predicates) -> bool:
    return any(predicate(arrow_type) for predicate in predicates)


def split_clean_rows(
    table: pa.Table,
    *,
    exchange: str,
    source: str,
    now: pd.Timestamp,
    ingested_at: pd.Timestamp,
    numeric_ids: bool,
    model_check: bool = True,
) -> ColumnarSplit:
    """Normalize the rows that pass every edge rule; decline the rest (see the module docstring).

    model_check: also run the Pandera Polars model over the accepted rows (see normalize_trades)."""
    frame = pl.from_arrow(table.select(["id", "timestamp", "symbol", "price", "amount", "side"]))
    assert isinstance(frame, pl.DataFrame)
    latest_ns = min((now + CLOCK_SKEW).value, pd.Timestamp.now(tz="UTC").value)
    ms = pl.col("timestamp").cast(pl.Float64)
    canonical = frame.with_row_index(ROW).select(
        pl.col(ROW),
        pl.lit(exchange).alias("exchange"),
        _map_distinct(frame["symbol"], canonical_or_none).alias("symbol"),
        _trade_id(frame["id"]).alias("trade_id"),
        # Whole ms only (checked below), so the int64 product is exact where it is kept.
        (pl.col("timestamp").cast(pl.Int64, strict=False) * 1_000_000).alias("ts_ns"),
        (
            ms.is_not_null()
            & ms.is_finite()
            & (ms >= MIN_EPOCH_MS)
            & (ms < MAX_EPOCH_MS)
            & (ms.floor() == ms)
        ).alias("ts_ok"),
        pl.col("price").cast(pl.Float64),
        pl.col("amount").cast(pl.Float64),
        _map_distinct(frame["side"], side_or_none).alias("side"),
    )
    accepted = canonical.select(_accepted(latest_ns, numeric_ids)).to_series()
    clean = canonical.filter(accepted).select(
        ROW,
        "exchange",
        "symbol",
        "trade_id",
        pl.col("ts_ns").cast(pl.Datetime("ns", "UTC")).alias("ts"),
        "price",
        "amount",
        "side",
        pl.lit(source).alias("source"),
        pl.lit(ingested_at.value).cast(pl.Datetime("ns", "UTC")).alias("ingested_at"),
    )
    declined = canonical[ROW].filter(~accepted).to_numpy().astype(np.int64)
    if not model_check:
        return ColumnarSplit(clean=clean, declined=declined)
    try:
        trade_model().validate(clean, lazy=True)
    except (SchemaError, SchemaErrors):  # never expected: the rules above are stricter than the model
        return ColumnarSplit(clean=clean.clear(), declined=np.arange(table.num_rows, dtype=np.int64))
    return ColumnarSplit(clean=clean, declined=declined)


def _accepted(latest_ns: int, numeric_ids: bool) -> pl.Expr:
    """True where the row passes every rule of the exact path as it stands."""
    rules = [
        pl.col("symbol").is_not_null(),
        pl.col("side").is_not_null(),
        pl.col("trade_id").is_not_null(),
        pl.col("ts_ok"),
        pl.col("ts_ns") <= latest_ns,
        *(_positive_number(pl.col(column)) for column in ("price", "amount")),
    ]
    if numeric_ids:
        rules.append(pl.col("trade_id").str.contains(_NUMERIC_ID))
    return pl.all_horizontal(rules).fill_null(False)


def _positive_number(value: pl.Expr) -> pl.Expr:
    return value.is_not_null() & value.is_finite() & (value > 0) & (value.abs() < MAX_MAGNITUDE)


def _trade_id(ids: pl.Series) -> pl.Expr:
    """Ids as text; missing or empty ones are null (the exact path synthesizes those)."""
    text = pl.col("id").cast(pl.String)
    return pl.when(text == "").then(None).otherwise(text) if ids.dtype == pl.String else text


def _map_distinct(values: pl.Series, function: Callable[[str | None], str | None]) -> pl.Expr:
    """`function` applied to each distinct value once, then mapped over the column."""
    distinct = values.unique().to_list()
    mapping = {value: function(value) for value in distinct if value is not None}
    if not mapping:  # every value is missing (or there is none)
        return pl.lit(function(None) if distinct else None, dtype=pl.String)
    mapped = pl.col(values.name).replace_strict(mapping, default=None, return_dtype=pl.String)
    if None in distinct and function(None) is not None:  # only the missing values, not the refused ones
        return pl.when(pl.col(values.name).is_null()).then(pl.lit(function(None))).otherwise(mapped)
    return mapped


def last_per_key_sorted_by_ts(candidates: pl.DataFrame, *, digit_ids: bool) -> pl.DataFrame:
    """The last row (by input position) per (symbol, trade_id), then ordered by ts (stable).

    digit_ids: every trade_id is known to be decimal digits (a numeric venue's clean rows).
    The order is worked out on integer arrays with Polars' multi-threaded sorts and the rows are
    gathered once: on ten million rows a gather of the string columns costs as much as the dedup."""
    if not len(candidates):
        return candidates
    # Usually sorted already, or two sorted runs (the fast path's rows, then the exact path's):
    # timsort ("stable") merges those in linear time.
    by_position = None
    if not candidates[ROW].is_sorted():
        by_position = np.argsort(candidates[ROW].to_numpy(), kind="stable")
    last = _is_last_per_key(candidates, by_position, digit_ids=digit_ids)
    kept = np.flatnonzero(last)  # input order
    ts = candidates["ts"].to_physical().to_numpy()
    ts = ts[kept] if by_position is None else ts[by_position[kept]]
    if not (np.diff(ts) >= 0).all():
        kept = kept[_stable_order(ts)]
    if by_position is not None:
        kept = by_position[kept]
    if len(kept) == len(candidates) and (kept == np.arange(len(kept))).all():
        return candidates
    return _take(candidates, kept)


def _take(frame: pl.DataFrame, rows: np.ndarray) -> pl.DataFrame:
    """frame[rows], column by column: a column holding one value (exchange, source, ingested_at,
    a one-market batch's symbol) is repeated instead of gathered, and the others are made
    contiguous first (Polars gathers strings spread over many chunks ~4x slower)."""
    columns = []
    for column in frame.iter_columns():
        if column.null_count() == 0 and (column == column[0]).all():
            columns.append(pl.repeat(column[0], len(rows), dtype=column.dtype, eager=True).alias(column.name))
        else:
            columns.append(column.rechunk()[rows])
    return pl.DataFrame(columns)


def _is_last_per_key(frame: pl.DataFrame, by_position: np.ndarray | None, *, digit_ids: bool) -> np.ndarray:
    """Whether each row, taken in input order (`by_position`, or as it stands), is its key's last."""
    ids = frame["trade_id"]
    # One market with plain integer ids (the usual batch): the ids as int64 are the key.
    # "007" and "7" are different ids as text, so no leading zeros.
    if (
        digit_ids
        and (frame["symbol"] == frame["symbol"][0]).all()
        and ids.str.len_bytes().max() <= 18
        and not ids.str.starts_with("0").any()
    ):
        keys = ids.cast(pl.Int64).to_numpy()
        return _is_last_of_int_key(keys if by_position is None else keys[by_position])
    key_frame = frame.select("symbol", "trade_id")
    if by_position is not None:
        key_frame = key_frame[by_position]
    return key_frame.select(pl.struct("symbol", "trade_id").is_last_distinct()).to_series().to_numpy()


def _is_last_of_int_key(keys: np.ndarray) -> np.ndarray:
    """By sorting, not hashing: a stable sort groups each key's rows in input order, so a row is
    its key's last where the next sorted key differs. Polars sorts on every core; a hash table of
    ten million keys stops fitting in cache (pandas' duplicated was 2x slower at 1e7)."""
    order = _stable_order(keys)
    sorted_keys = keys[order]
    last_in_run = np.empty(len(keys), dtype=bool)
    last_in_run[-1] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=last_in_run[:-1])
    last = np.zeros(len(keys), dtype=bool)
    last[order[last_in_run]] = True
    return last


def _stable_order(values: np.ndarray) -> np.ndarray:
    """The permutation that sorts int64 `values`, ties kept in their order (Polars, multi-threaded;
    numpy's stable sort is timsort, ~3x slower on a half-shuffled column)."""
    frame = pl.DataFrame({"value": values}).with_row_index("at")
    return frame.sort("value", maintain_order=True)["at"].to_numpy()


def ids_are_digits(ids: pl.Series) -> bool:
    """Whether every id is decimal digits (a regex over the column: use on small frames)."""
    return bool(ids.str.contains(_NUMERIC_ID).all())


def to_trade_table(frame: pl.DataFrame) -> pa.Table:
    """The stored columns, in order, with the exact path's Arrow types."""
    # Polars' oldest Arrow level gives large_string, not string_view: the cast below copies nothing.
    arrow = frame.select(TRADE_ARROW_SCHEMA.names).to_arrow(compat_level=pl.CompatLevel.oldest())
    return arrow.cast(TRADE_ARROW_SCHEMA)


def from_trade_frame(frame: pd.DataFrame) -> pl.DataFrame:
    """A TradeSchema pandas frame (the exact path's rows, indexed by input position) as Polars + ROW."""
    table = pa.Table.from_pandas(frame[TRADE_ARROW_SCHEMA.names], preserve_index=False)
    rows = pl.Series(ROW, frame.index.to_numpy(dtype=np.int64)).cast(pl.UInt32)
    return pl.from_arrow(table.cast(TRADE_ARROW_SCHEMA)).with_columns(rows)


@functools.cache
def trade_model() -> pap.DataFrameSchema:
    """TradeSchema's column checks on the Polars backend (same checks, dtypes in Polars' terms)."""
    dtypes = {
        "ts": pl.Datetime("ns", "UTC"),
        "ingested_at": pl.Datetime("ns", "UTC"),
        "price": pl.Float64,
        "amount": pl.Float64,
    }
    columns = TradeSchema.to_schema().columns
    return pap.DataFrameSchema(
        {
            name: pap.Column(dtypes.get(name, pl.String), checks=columns[name].checks, nullable=False)
            for name in schema_columns(TradeSchema)
        },
        strict="filter",  # ROW rides along; the model only names the stored columns
    )
