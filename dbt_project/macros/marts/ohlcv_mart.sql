{#- The body of marts.ohlcv_<bar>: one definition for every bar length (bar_seconds);
    incremental: the model's is_incremental(), passed in because dbt unit tests override it in the
    model's context only. -#}
{% macro ohlcv_mart(bar_seconds, incremental) %}
{%- set window = cryptopipe.run_window(bar_seconds) if incremental else none -%}

with

candles as (

    -- source timeframes that tile the bar; an incremental run reads its window only
    select * from {{ ref('int_candles_unioned') }}
    where
        tf_seconds <= {{ bar_seconds }}
        and mod({{ bar_seconds }}, tf_seconds) = 0
        and {{ cryptopipe.window_condition(window, 'ts', 'candle_date') }}

),

bucketed as (

    select
        exchange,
        symbol,
        timeframe,
        tf_seconds,
        ts,
        ts_epoch - mod(ts_epoch, {{ bar_seconds }}) as bar_epoch,
        open,
        high,
        low,
        close,
        volume
    from candles

),

per_source_timeframe as (

    select
        exchange,
        symbol,
        bar_epoch,
        timeframe,
        tf_seconds,
        min_by(open, ts) as open,
        max(high) as high,
        min(low) as low,
        max_by(close, ts) as close,
        {{ cryptopipe.decimal_sum('volume') }} as volume,
        count(*) as source_candles
    from bucketed
    group by exchange, symbol, bar_epoch, timeframe, tf_seconds

),

ranked as (

    -- the finest source timeframe with any candle in the bar wins
    select
        *,
        row_number() over (
            partition by exchange, symbol, bar_epoch
            order by tf_seconds asc, source_candles desc, timeframe asc
        ) as preference
    from per_source_timeframe

),

bars as (

    select
        exchange,
        symbol,
        {{ cryptopipe.timestamp_from_epoch('bar_epoch') }} as ts,
        open,
        high,
        low,
        close,
        volume,
        timeframe as source_timeframe,
        source_candles,
        source_candles * tf_seconds = {{ bar_seconds }} as is_complete
    from ranked
    where preference = 1

)

select * from bars
{% endmacro %}
