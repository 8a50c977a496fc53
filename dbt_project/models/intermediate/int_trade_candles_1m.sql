-- 1m OHLCV candles built from the collected trades (raw.trades), one row per market and minute
-- with at least one trade. Reconciled against the exchanges' own 1m candles by the Dagster check
-- trade_candles_match_rest_candles. Open/close are the first/last trade by (time, trade id), with
-- numeric ids compared as numbers; the volume is an exact decimal sum, as in the rollups.
-- trade_date (the UTC date of the minute, raw.trades' partition column) is carried through every
-- window partition and the grouping, although the minute alone determines it: BigQuery pushes a
-- filter on a view's column below a window function only when the column is in its PARTITION BY,
-- so a reader's "trade_date >= ..." reaches the raw.trades scan and prunes its partitions (which
-- BigQuery requires: raw.trades has require_partition_filter).
with

trades as (

    select * from {{ ref('stg_exchanges__trades') }}

),

with_minute as (

    select
        exchange,
        symbol,
        trade_id,
        trade_date,
        ts as trade_ts,
        price,
        amount,
        {{ cryptopipe.epoch_seconds('ts') }} - mod({{ cryptopipe.epoch_seconds('ts') }}, 60) as minute_epoch

    from trades

),

ranked as (

    select
        *,
        row_number() over (
            partition by exchange, symbol, trade_date, minute_epoch
            order by trade_ts, length(trade_id), trade_id
        ) as first_rank,
        row_number() over (
            partition by exchange, symbol, trade_date, minute_epoch
            order by trade_ts desc, length(trade_id) desc, trade_id desc
        ) as last_rank

    from with_minute

),

candles as (

    select
        exchange,
        symbol,
        {{ cryptopipe.timestamp_from_epoch('minute_epoch') }} as ts,
        max(case when first_rank = 1 then price end) as open,
        max(price) as high,
        min(price) as low,
        max(case when last_rank = 1 then price end) as close,
        {{ cryptopipe.decimal_sum('amount') }} as volume,
        count(*) as trade_count,
        trade_date

    from ranked
    group by exchange, symbol, trade_date, minute_epoch

)

select * from candles
