"""Trade-built 1m candles (dbt: intermediate.int_trade_candles_1m) vs the exchanges' own 1m candles.

Only minutes both sides can speak for are compared: per market, the minutes strictly inside the
span of collected trades (the first and last minute may hold only part of their trades: the
collector started, or the minute is still open) and inside the span of stored 1m candles. There,
a minute present on one side only, or whose values differ beyond the tolerance, is a mismatch.

Tolerance: prices relative 1e-12 (the same decimals, read twice); volume relative 1e-9 (venues
round their candle volume; ours is an exact decimal sum).
"""

from __future__ import annotations

import pandas as pd

from cryptopipe_dagster.lib.warehouse import Warehouse

PRICE_TOLERANCE = 1e-12
VOLUME_TOLERANCE = 1e-9
TRADE_CANDLES = "intermediate.int_trade_candles_1m"

_SQL = f"""
with trade_candles as (
    select * from {TRADE_CANDLES} where ts >= $since
),
trade_span as (
    select exchange, symbol, min(ts) + interval 1 minute as lo, max(ts) as hi
    from trade_candles group by all
),
rest_candles as (
    select c.exchange, c.symbol, c.ts, c.open, c.high, c.low, c.close, c.volume
    from raw.candles c join trade_span s using (exchange, symbol)
    where c.timeframe = '1m' and c.ts >= s.lo - interval 1 minute and c.ts <= s.hi
),
rest_span as (
    select exchange, symbol, min(ts) as lo, max(ts) + interval 1 minute as hi from rest_candles group by all
),
compared as (
    select
        coalesce(t.exchange, r.exchange) as exchange,
        coalesce(t.symbol, r.symbol) as symbol,
        coalesce(t.ts, r.ts) as minute,
        t.open as trade_open, r.open as rest_open,
        t.high as trade_high, r.high as rest_high,
        t.low as trade_low, r.low as rest_low,
        t.close as trade_close, r.close as rest_close,
        t.volume as trade_volume, r.volume as rest_volume,
        t.trade_count
    from trade_candles t full outer join rest_candles r using (exchange, symbol, ts)
)
select
    c.*,
    case
        when c.trade_open is null then 'missing_from_trades'
        when c.rest_open is null then 'missing_rest_candle'
        when abs(c.trade_open - c.rest_open) > $price_tol * abs(c.rest_open)
          or abs(c.trade_high - c.rest_high) > $price_tol * abs(c.rest_high)
          or abs(c.trade_low - c.rest_low) > $price_tol * abs(c.rest_low)
          or abs(c.trade_close - c.rest_close) > $price_tol * abs(c.rest_close) then 'price_mismatch'
        when abs(c.trade_volume - c.rest_volume) > $volume_tol * abs(c.rest_volume) then 'volume_mismatch'
    end as mismatch
from compared c
join trade_span t using (exchange, symbol)
join rest_span r using (exchange, symbol)
where c.minute >= greatest(t.lo, r.lo) and c.minute < least(t.hi, r.hi)
order by exchange, symbol, minute
"""


def reconcile_trade_candles(warehouse: Warehouse, since: pd.Timestamp) -> pd.DataFrame:
    """Every comparable minute since `since`, with a `mismatch` reason (None when they agree)."""
    return warehouse.query_df(
        _SQL, {"since": since, "price_tol": PRICE_TOLERANCE, "volume_tol": VOLUME_TOLERANCE}
    )


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
