{#-
    The rollup neither drops nor invents bars: a bar exists exactly where the source has at least
    one candle of a timeframe that tiles it. Real outages (Bitstamp, 2019-03-20..31) are gaps in
    the source and stay gaps in the mart; a missing bar next to present candles fails.
    Checks the run's window (widened to whole bars) when window vars are set, else everything.
-#}
{% test bars_match_source_candles(model, candles, bar_seconds) %}

{%- set window = cryptopipe.run_window(bar_seconds) -%}

with

source_bars as (
    select distinct
        exchange,
        symbol,
        {{ cryptopipe.timestamp_from_epoch('ts_epoch - mod(ts_epoch, ' ~ bar_seconds ~ ')') }} as ts
    from {{ candles }}
    where
        tf_seconds <= {{ bar_seconds }}
        and mod({{ bar_seconds }}, tf_seconds) = 0
        and {{ cryptopipe.window_condition(window, 'ts', 'candle_date') }}
),

mart_bars as (
    select
        exchange,
        symbol,
        ts
    from {{ model }}
    where {{ cryptopipe.window_condition(window, 'ts') }}
),

dropped as (
    select
        source_bars.exchange,
        source_bars.symbol,
        source_bars.ts,
        'bar missing although the source has candles' as problem
    from source_bars
    left join mart_bars
        on
            source_bars.exchange = mart_bars.exchange
            and source_bars.symbol = mart_bars.symbol
            and source_bars.ts = mart_bars.ts
    where mart_bars.ts is null
),

invented as (
    select
        mart_bars.exchange,
        mart_bars.symbol,
        mart_bars.ts,
        'bar without source candles' as problem
    from mart_bars
    left join source_bars
        on
            mart_bars.exchange = source_bars.exchange
            and mart_bars.symbol = source_bars.symbol
            and mart_bars.ts = source_bars.ts
    where source_bars.ts is null
)

select * from dropped
union all
select * from invented

{% endtest %}
