{#-
    Building blocks of the indicator marts (definitions: models/marts/_marts__docs.md).

    Recursive indicators (EMA, Wilder's RSI/ATR smoothing, MACD) are computed in closed form, which
    is plain SQL on both engines (BigQuery caps recursive CTEs at 500 iterations). For smoothing
    factor alpha, r = 1 - alpha, seeded at bar q with value S:
        v_t = alpha * sum_{i=q+1..t} r^(t-i) * x_i + r^(t-q) * S        (t >= q)
    The sum is truncated to the last `ema_horizon()` bars by a self-join on the per-series bar
    index; r^500 < 1e-16 for every alpha used (the slowest is Wilder's 13/14: 8.6e-17), so the
    truncation is below double rounding. The seed term is kept while t - q <= horizon.

    Conventions of the self-joins: the bar being computed (t in the formula) is aliased `bar_t`, the
    bars it reads (i) `bar_i`; both carry bar_index (0-based position in the series) and close.
    Every term is divided by bar_t.close and the exact (order-independent) sum multiplied back,
    which keeps terms near 1 for the fixed-point sum (cryptopipe.exact_sum) whatever the price.
-#}

{#- K: bars of the truncated exponential sums. -#}
{% macro ema_horizon() -%}
    {{ return(500) }}
{%- endmacro %}

{#- Bars of the truncated MACD signal sum: 0.8^200 = 4e-20. -#}
{% macro signal_horizon() -%}
    {{ return(200) }}
{%- endmacro %}

{#-
    Bars of the market's own series an incremental run reads before the first bar it writes (and
    rewrites after the last one), to reproduce a full refresh bit for bit: the signal needs 200 MACD
    values, each needing 500 bars, plus the 33 bars before MACD's first value. Counted in bars, not
    in time, so a hole in the history (an exchange outage) cannot shorten it.
-#}
{% macro indicator_lookback_bars() -%}
    {%- set bars = var('indicator_lookback_bars') | int -%}
    {%- set needed = cryptopipe.ema_horizon() + cryptopipe.signal_horizon() + 34 -%}
    {%- if bars < needed -%}
        {{ exceptions.raise_compiler_error(
            "var indicator_lookback_bars must be at least " ~ needed ~ ", got " ~ bars) }}
    {%- endif -%}
    {{ return(bars) }}
{%- endmacro %}



{#-
    What an incremental run with a time window reads (none without one): a dict like run_window's
    (start, end epoch seconds, exchanges) plus written_start, the first bar it writes. It writes the
    window and every bar up to the indicator_lookback_bars()-th bar after the window (their values
    read the window's bars, which may be new: an out-of-order or late window stays exact), and reads
    indicator_lookback_bars() bars of each market's own series before the window. Both bounds are
    found by one query of the mart's ts column at run time and inlined as literals, so the model's
    scan of every column stays bounded (and BigQuery prunes the mart's partitions) while a hole in
    the history of any length cannot shorten the lookback.
-#}
{% macro indicator_read_range(relation, window) -%}
    {%- if window is none or window.start is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set range = {'start': window.start, 'end': window.end, 'exchanges': window.exchanges,
        'written_start': window.start} -%}
    {%- if not execute -%}
        {{ return(range) }}
    {%- endif -%}
    {%- set lookback = cryptopipe.indicator_lookback_bars() -%}
    {%- set markets = cryptopipe.window_condition({'start': none, 'exchanges': window.exchanges}) -%}
    {%- set bounds_sql -%}
        with

        before_window as (
            select
                ts,
                row_number() over (partition by exchange, symbol order by ts desc) as bars_back
            from {{ relation }}
            where ts < {{ cryptopipe.timestamp_literal(window.start) }} and {{ markets }}
        ),

        after_window as (
            select
                ts,
                row_number() over (partition by exchange, symbol order by ts) as bars_ahead
            from {{ relation }}
            where ts >= {{ cryptopipe.timestamp_literal(window.end) }} and {{ markets }}
        )

        select
            (select {{ cryptopipe.epoch_seconds('min(ts)') }} from before_window
             where bars_back <= {{ lookback }}) as first_read,
            (select {{ cryptopipe.epoch_seconds('max(ts)') }} from after_window
             where bars_ahead <= {{ lookback }}) as last_written
    {%- endset -%}
    {%- set row = run_query(bounds_sql).rows[0] -%}
    {%- if row[0] is not none -%}
        {%- do range.update({'start': [row[0] | int, window.start] | min}) -%}
    {%- endif -%}
    {%- if row[1] is not none -%}
        {%- do range.update({'end': [(row[1] | int) + 1, window.end] | max}) -%}
    {%- endif -%}
    {{ return(range) }}
{%- endmacro %}

{#- alpha * r^(t - i) * bar_i.<column> / bar_t.close over bars from first_bar on, summed. -#}
{% macro smoothed_tail(column, alpha_numerator, alpha_denominator, first_bar) -%}
    {%- set ratio_numerator = alpha_denominator - alpha_numerator -%}
    {{ cryptopipe.exact_sum(
        "case when bar_i.bar_index >= " ~ first_bar
        ~ " then (" ~ alpha_numerator ~ " / " ~ alpha_denominator ~ ")"
        ~ " * power(" ~ ratio_numerator ~ " / " ~ alpha_denominator ~ ", bar_t.bar_index - bar_i.bar_index)"
        ~ " * bar_i." ~ column ~ " / bar_t.close end") }}
{%- endmacro %}


{#- sum of bar_i.<column> / bar_t.close over the last `bars` bars (nulls skipped). -#}
{% macro trailing_sum(column, bars) -%}
    {{ cryptopipe.exact_sum(
        "case when bar_t.bar_index - bar_i.bar_index < " ~ bars
        ~ " then bar_i." ~ column ~ " / bar_t.close end") }}
{%- endmacro %}


{#-
    close * tail + r^(t - q) * seed while t - q <= horizon: the closed form above, from the tail
    (smoothed_tail) and the seed of the series. Null before the seed bar.
-#}
{% macro smoothed_value(tail, seed, alpha_numerator, alpha_denominator, seed_bar, horizon=none, bar_index='bar_index', close='close') -%}
    {%- set horizon = cryptopipe.ema_horizon() if horizon is none else horizon -%}
    case
        when {{ bar_index }} >= {{ seed_bar }}
            then {{ close }} * coalesce({{ tail }}, 0)
            + case
                when {{ bar_index }} - {{ seed_bar }} <= {{ horizon }}
                    then power({{ alpha_denominator - alpha_numerator }} / {{ alpha_denominator }}, {{ bar_index }} - {{ seed_bar }}) * {{ seed }}
                else 0
            end
    end
{%- endmacro %}
