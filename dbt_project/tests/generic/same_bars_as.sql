{#- The model has exactly the (exchange, symbol, ts) keys of `bars` (indicators skip no bar). -#}
{% test same_bars_as(model, bars) %}

{%- set window = cryptopipe.run_window(86400) -%}

with

expected as (
    select
        exchange,
        symbol,
        ts
    from {{ bars }}
    where {{ cryptopipe.window_condition(window, 'ts') }}
),

actual as (
    select
        exchange,
        symbol,
        ts
    from {{ model }}
),

missing as (
    select expected.exchange, expected.symbol, expected.ts, 'missing' as problem
    from expected
    left join actual
        on
            expected.exchange = actual.exchange
            and expected.symbol = actual.symbol
            and expected.ts = actual.ts
    where actual.ts is null
),

extra as (
    select actual.exchange, actual.symbol, actual.ts, 'extra' as problem
    from actual
    left join expected
        on
            actual.exchange = expected.exchange
            and actual.symbol = expected.symbol
            and actual.ts = expected.ts
    where expected.ts is null
)

select * from missing
union all
select * from extra

{% endtest %}
