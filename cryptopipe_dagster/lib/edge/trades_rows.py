"""The micro-batch path of the trade edge: the columnar path's rules, record by record, in plain Python.

A collector flushes a few dozen trades per market several times a second. For such batches any
columnar engine's fixed cost per call (Polars ~5 ms, pandas + Pandera more) dwarfs the work, so
below ROWS_MAX records the accept rules of ``trades_columnar`` run per record (~10 us each) and the
accepted rows become one Arrow table. As on the columnar path, every record a rule does not accept
as it stands is declined to the exact path in ``normalize_trades.py``, which gives it its reason
code or its way into the table; the property test holds all three paths equal.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from cryptopipe_dagster.lib.edge.coerce import MAX_EPOCH_MS, MAX_MAGNITUDE, MIN_EPOCH_MS
from cryptopipe_dagster.lib.edge.normalize_common import CLOCK_SKEW
from cryptopipe_dagster.lib.edge.trade_rules import (
    NUMERIC_ID_PATTERN,
    TRADE_ARROW_SCHEMA,
    canonical_or_none,
    side_or_none,
)

ROWS_MAX = 512  # above this the columnar path's fixed cost is paid back
_NUMERIC_ID = re.compile(NUMERIC_ID_PATTERN)


@dataclass(frozen=True)
class AcceptedRow:
    """One record's canonical values, with its input position."""

    position: int
    symbol: str
    trade_id: str
    ts_ns: int
    price: float
    amount: float
    side: str


def accept_rows(
    records: list[dict], *, now: pd.Timestamp, numeric_ids: bool
) -> tuple[list[AcceptedRow], np.ndarray]:
    """The records every rule accepts as they stand, and the positions of the others (declined)."""
    latest_ns = min((now + CLOCK_SKEW).value, pd.Timestamp.now(tz="UTC").value)
    accepted, declined = [], []
    for position, record in enumerate(records):
        row = _accept(position, record, latest_ns, numeric_ids)
        if row is None:
            declined.append(position)
        else:
            accepted.append(row)
    return accepted, np.array(declined, dtype=np.int64)


def _accept(position: int, record: dict, latest_ns: int, numeric_ids: bool) -> AcceptedRow | None:
    symbol, side = record.get("symbol"), record.get("side")
    if type(symbol) is not str or (side is not None and type(side) is not str):
        return None
    canonical, side = _canonical(symbol), _side(side)
    trade_id = _trade_id(record.get("id"), numeric_ids)
    ts_ns = _ts_ns(record.get("timestamp"), latest_ns)
    price, amount = _positive(record.get("price")), _positive(record.get("amount"))
    if None in (canonical, side, trade_id, ts_ns, price, amount):
        return None
    return AcceptedRow(position, canonical, trade_id, ts_ns, price, amount, side)


@functools.lru_cache(maxsize=4096)
def _canonical(symbol: str) -> str | None:
    return canonical_or_none(symbol)


@functools.lru_cache(maxsize=64)
def _side(side: str | None) -> str | None:
    return side_or_none(side)


def _trade_id(value: object, numeric_ids: bool) -> str | None:
    if type(value) is int:
        value = str(value)
    elif type(value) is not str or not value:
        return None  # missing (synthesized by the exact path) or not text
    return value if not numeric_ids or _NUMERIC_ID.fullmatch(value) else None


def _ts_ns(value: object, latest_ns: int) -> int | None:
    if type(value) is not int and type(value) is not float:
        return None
    ms = float(value)
    if not (math.isfinite(ms) and MIN_EPOCH_MS <= ms < MAX_EPOCH_MS and ms == math.floor(ms)):
        return None
    ns = int(ms) * 1_000_000
    return ns if ns <= latest_ns else None


def _positive(value: object) -> float | None:
    if type(value) is not int and type(value) is not float:
        return None
    number = float(value)
    return number if math.isfinite(number) and 0 < number < MAX_MAGNITUDE else None


def last_per_key_sorted_by_ts(rows: list[AcceptedRow]) -> list[AcceptedRow]:
    """The last row (by position) per (symbol, trade_id), then ordered by ts (stable)."""
    last: dict[tuple[str, str], AcceptedRow] = {}
    for row in rows:  # not in position order: the exact path's rows come after the accepted ones
        key = (row.symbol, row.trade_id)
        if key not in last or row.position > last[key].position:
            last[key] = row
    return sorted(last.values(), key=lambda row: (row.ts_ns, row.position))


def to_trade_table(
    rows: list[AcceptedRow], *, exchange: str, source: str, ingested_at: pd.Timestamp
) -> pa.Table:
    """The rows as the stored columns with the columnar path's Arrow types."""
    n = len(rows)
    columns = {
        "exchange": [exchange] * n,
        "symbol": [row.symbol for row in rows],
        "trade_id": [row.trade_id for row in rows],
        "ts": [row.ts_ns for row in rows],
        "price": [row.price for row in rows],
        "amount": [row.amount for row in rows],
        "side": [row.side for row in rows],
        "source": [source] * n,
        "ingested_at": [ingested_at.value] * n,
    }
    arrays = [
        pa.array(columns[field.name], pa.int64()).cast(field.type)
        if pa.types.is_timestamp(field.type)
        else pa.array(columns[field.name], field.type)
        for field in TRADE_ARROW_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=TRADE_ARROW_SCHEMA)


def from_checked_frame(frame: pd.DataFrame) -> list[AcceptedRow]:
    """The exact path's passing rows (indexed by input position) as rows."""
    ts = frame["ts"].array.asi8
    return [
        AcceptedRow(int(position), symbol, trade_id, int(ns), float(price), float(amount), side)
        for position, symbol, trade_id, ns, price, amount, side in zip(
            frame.index,
            frame["symbol"],
            frame["trade_id"],
            ts,
            frame["price"],
            frame["amount"],
            frame["side"],
            strict=True,
        )
    ]
