-- 1m OHLCV candles built from the collected trades (raw.trades), one row per market and minute
-- with at least one trade. Reconciled against the exchanges' own 1m candles by the Dagster check
-- trade_candles_match_rest_candles. Open/close are the first/last trade by (time, trade id), with
-- numeric ids compared as numbers; the volume is an exact decimal sum, as in the rollups.
with

trades as (

    select * from {{ ref('stg_exchanges__trades') }}

),

with_minute as (

    select
        exchange,
        symbol,
        trade_id,
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
            partition by exchange, symbol, minute_epoch
            order by trade_ts, length(trade_id), trade_id
        ) as first_rank,
        row_number() over (
            partition by exchange, symbol, minute_epoch
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
        count(*) as trade_count

    from ranked
    group by exchange, symbol, minute_epoch

)

select * from candles
