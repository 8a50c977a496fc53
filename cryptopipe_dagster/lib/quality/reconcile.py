"""Trade-built 1m candles (dbt: intermediate.int_trade_candles_1m) vs the exchanges' own 1m candles.

Only minutes both sides can speak for are compared: per market, the minutes strictly inside the
span of collected trades (the first and last minute may hold only part of their trades: the
collector started, or the minute is still open) and inside the span of stored 1m candles. There,
a minute present on one side only, or whose values differ beyond the tolerance, is a mismatch.
The query is the warehouse's (lib/warehouse/queries.py), the same on DuckDB and BigQuery.

Tolerance: prices relative 1e-12 (the same decimals, read twice); volume relative 1e-9 (venues
round their candle volume; ours is an exact decimal sum).
"""

from __future__ import annotations

import pandas as pd

from cryptopipe_dagster.lib.warehouse import Warehouse
from cryptopipe_dagster.lib.warehouse.queries import TRADE_CANDLES
from cryptopipe_dagster.lib.warehouse.sql_warehouse import PRICE_TOLERANCE, VOLUME_TOLERANCE

__all__ = ["PRICE_TOLERANCE", "TRADE_CANDLES", "VOLUME_TOLERANCE", "reconcile_trade_candles", "summarize"]


def reconcile_trade_candles(warehouse: Warehouse, since: pd.Timestamp) -> pd.DataFrame:
    """Every comparable minute since `since`, with a `mismatch` reason (None when they agree)."""
    return warehouse.reconcile_trade_candles(since)


def summarize(compared: pd.DataFrame) -> pd.DataFrame:
    """Per market: minutes compared, matched, and mismatches by reason."""
    if compared.empty:
        return pd.DataFrame(columns=["exchange", "symbol", "minutes", "matched", "mismatched"])
    grouped = compared.groupby(["exchange", "symbol"], observed=True)
    return (
        grouped.agg(minutes=("minute", "size"), mismatched=("mismatch", lambda s: int(s.notna().sum())))
        .assign(matched=lambda f: f.minutes - f.mismatched)
        .reset_index()
    )
