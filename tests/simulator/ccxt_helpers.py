"""Helpers for the ccxt-over-loopback tests: paging, exact decimal comparison with the recordings."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pandas as pd

from cryptopipe_dagster.simulator.recordings import load_recordings
from tests.simulator.conftest import DATA_DIR

FIELDS = ("open", "high", "low", "close", "volume")


def recorded(exchange: str, symbol: str) -> pd.DataFrame:
    frame = load_recordings(DATA_DIR)
    return frame[(frame["exchange"] == exchange) & (frame["symbol"] == symbol)].reset_index(drop=True)


def as_decimal_rows(ohlcv: list[list]) -> list[tuple]:
    """ccxt rows -> (ms, Decimal...) using the float's shortest repr, which must be the exact decimal."""
    return [(row[0], *(Decimal(repr(value)) for value in row[1:])) for row in ohlcv]


def recorded_rows(frame: pd.DataFrame) -> list[tuple]:
    millis = (frame["ts"].astype("int64") // 10**6).tolist()
    texts = zip(*(frame[f"{field}_str"] for field in FIELDS), strict=True)
    return [(ms, *(Decimal(t) for t in row)) for ms, row in zip(millis, texts, strict=True)]


def fetch_all(
    exchange: ccxt.Exchange, symbol: str, timeframe: str, since: int, until: int, limit: int
) -> list:
    """Page forward with `since` until `until` (ms, exclusive), as a backfill does."""
    step = exchange.parse_timeframe(timeframe) * 1000
    rows: list[list] = []
    while since < until:
        page = exchange.fetch_ohlcv(symbol, timeframe, since, limit)
        rows.extend(row for row in page if row[0] < until)
        since = page[-1][0] + step if page else since + limit * step
    return rows


def rollup(rows: list[tuple]) -> tuple:
    """One bar from ascending decimal rows: (open, high, low, close, volume)."""
    return (
        rows[0][1],
        max(r[2] for r in rows),
        min(r[3] for r in rows),
        rows[-1][4],
        sum(r[5] for r in rows),
    )
