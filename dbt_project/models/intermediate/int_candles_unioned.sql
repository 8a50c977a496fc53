-- Candles of every source timeframe of every market in one relation, with their length in seconds.
-- The place where further candle sources (e.g. candles built from raw.trades) get unioned in.
with

candles as (

    select * from {{ ref('stg_exchanges__candles') }}

),

with_lengths as (

    select
        exchange,
        symbol,
        timeframe,
        {{ cryptopipe.timeframe_seconds('timeframe') }} as tf_seconds,
        ts,
        {{ cryptopipe.epoch_seconds('ts') }} as ts_epoch,
        candle_date,
        open,
        high,
        low,
        close,
        volume

    from candles

)

select * from with_lengths
