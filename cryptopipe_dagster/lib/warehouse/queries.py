"""The read queries the defs and CLI need, as SQL both warehouses run (DuckDB and BigQuery).

Each builder takes the dialect (parameter markers) and a `name` function that turns a logical
table ("raw.candles", "marts.indicators_1h") into the physical one (DuckDB: unchanged; BigQuery:
`project.<prefix>raw.candles`). Every query on a date-partitioned table carries a predicate on
its partition column, so BigQuery prunes it (and a table with require_partition_filter accepts it).
"""

from __future__ import annotations

from collections.abc import Callable

from cryptopipe_dagster.lib.warehouse.tables import ANOMALIES, CANDLES, TRADES, Dialect, safe_identifier

Namer = Callable[[str], str]
TRADE_CANDLES = "intermediate.int_trade_candles_1m"


def market_summary_sql(dialect: Dialect, name: Namer, table: str) -> str:
    """Per market of raw.candles / raw.trades between min_date and max_date: rows, first, last."""
    p = dialect.param
    spec = CANDLES if table == CANDLES.qualified else TRADES
    prune = f"{spec.date_column} BETWEEN {p('min_date')} AND {p('max_date')}"
    if spec is CANDLES:
        return (
            f"SELECT exchange, symbol, timeframe, COUNT(*) AS candles, MIN(ts) AS first_ts, "
            f"MAX(ts) AS last_ts FROM {name(CANDLES.qualified)} WHERE {prune} "
            "GROUP BY exchange, symbol, timeframe ORDER BY exchange, symbol, timeframe"
        )
    return (
        "SELECT exchange, symbol, COUNT(*) AS trades, "
        "SUM(CASE WHEN source = 'rest' THEN 1 ELSE 0 END) AS via_rest, MIN(ts) AS first_ts, "
        f"MAX(ts) AS last_ts FROM {name(TRADES.qualified)} WHERE {prune} "
        "GROUP BY exchange, symbol ORDER BY exchange, symbol"
    )


def newest_trade_sql(dialect: Dialect, name: Namer) -> str:
    """Newest trade time on or after min_date."""
    trades, since = name(TRADES.qualified), dialect.param("min_date")
    return f"SELECT MAX(ts) AS newest FROM {trades} WHERE trade_date >= {since}"


def trade_counts_sql(dialect: Dialect, name: Namer) -> str:
    """Trades per market with ts >= since (pruned from since's date)."""
    p = dialect.param
    return (
        f"SELECT exchange, symbol, COUNT(*) AS n FROM {name(TRADES.qualified)} "
        f"WHERE trade_date >= {p('min_date')} AND ts >= {p('since')} GROUP BY exchange, symbol"
    )


def stored_volumes_sql(dialect: Dialect, name: Namer) -> str:
    """Stored candle volumes of some exchanges between two open times (pruned to their dates)."""
    p = dialect.param
    return (
        f"SELECT exchange, symbol, timeframe, ts, volume AS stored_volume FROM {name(CANDLES.qualified)} "
        f"WHERE candle_date BETWEEN {p('min_date')} AND {p('max_date')} "
        f"AND ts BETWEEN {p('first')} AND {p('last')} "
        f"AND exchange IN (SELECT * FROM UNNEST({p('exchanges')}))"
    )


_INDICATOR_COLUMNS = (
    "exchange, symbol, ts, close, sma_20, ema_20, rsi_14, macd, bb_upper, bb_lower, atr_14, vwap_24"
)


def latest_indicators_sql(dialect: Dialect, name: Namer) -> str:
    """The newest indicator row per market and timeframe since `since` (marts.indicators_1h, _1d)."""
    p = dialect.param
    union = " UNION ALL ".join(
        f"SELECT '{tf}' AS timeframe, {_INDICATOR_COLUMNS} FROM {name(f'marts.indicators_{tf}')} "
        f"WHERE ts >= {p('since')}"
        for tf in ("1h", "1d")
    )
    # BigQuery accepts QUALIFY only beside a WHERE, GROUP BY or HAVING: hence WHERE TRUE.
    return (
        f"SELECT * FROM ({union}) AS i WHERE TRUE "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY exchange, symbol, timeframe ORDER BY ts DESC) = 1 "
        "ORDER BY exchange, symbol, timeframe"
    )


def reconcile_sql(dialect: Dialect, name: Namer) -> str:
    """Trade-built 1m candles vs stored 1m candles, minute by minute, where both sides can speak.

    Only minutes strictly inside the span of collected trades (the first and last minute may hold
    part of their trades) and inside the span of stored 1m candles are compared."""
    p = dialect.param
    return f"""
with trade_candles as (
    select * from {name(TRADE_CANDLES)} where trade_date >= {p("min_date")} and ts >= {p("since")}
),
trade_span as (
    select exchange, symbol, min(ts) + interval 1 minute as lo, max(ts) as hi
    from trade_candles group by exchange, symbol
),
rest_candles as (
    select c.exchange, c.symbol, c.ts, c.open, c.high, c.low, c.close, c.volume
    from {name(CANDLES.qualified)} c join trade_span s using (exchange, symbol)
    where c.candle_date >= {p("min_date")} and c.timeframe = '1m'
      and c.ts >= s.lo - interval 1 minute and c.ts <= s.hi
),
rest_span as (
    select exchange, symbol, min(ts) as lo, max(ts) + interval 1 minute as hi
    from rest_candles group by exchange, symbol
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
        when abs(c.trade_open - c.rest_open) > {p("price_tol")} * abs(c.rest_open)
          or abs(c.trade_high - c.rest_high) > {p("price_tol")} * abs(c.rest_high)
          or abs(c.trade_low - c.rest_low) > {p("price_tol")} * abs(c.rest_low)
          or abs(c.trade_close - c.rest_close) > {p("price_tol")} * abs(c.rest_close) then 'price_mismatch'
        when abs(c.trade_volume - c.rest_volume) > {p("volume_tol")} * abs(c.rest_volume)
          then 'volume_mismatch'
    end as mismatch
from compared c
join trade_span t using (exchange, symbol)
join rest_span r using (exchange, symbol)
where c.minute >= greatest(t.lo, r.lo) and c.minute < least(t.hi, r.hi)
order by exchange, symbol, minute
"""


ANOMALY_FILTERS = ("kind", "exchange", "symbol")


def anomalies_sql(dialect: Dialect, name: Namer, filters: list[str]) -> str:
    """Stored anomalies matching equality `filters` (names from ANOMALY_FILTERS), by kind, market, ts."""
    clauses = [f"{safe_identifier(f)} = {dialect.param(f)}" for f in filters if f in ANOMALY_FILTERS]
    return (
        f"SELECT * FROM {name(ANOMALIES.qualified)} WHERE {' AND '.join(clauses) or 'TRUE'} "
        "ORDER BY kind, exchange, symbol, timeframe, ts"
    )


def candles_of_timeframe_sql(dialect: Dialect, name: Namer) -> str:
    """Candles of one timeframe (every market) in [start, end), pruned to [min_date, max_date]."""
    p = dialect.param
    return (
        f"SELECT {', '.join(CANDLES.input_columns)} FROM {name(CANDLES.qualified)} "
        f"WHERE candle_date BETWEEN {p('min_date')} AND {p('max_date')} AND timeframe = {p('timeframe')} "
        f"AND ts >= {p('start')} AND ts < {p('end')} ORDER BY exchange, symbol, ts"
    )
