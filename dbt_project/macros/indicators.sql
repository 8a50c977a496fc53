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
    Bars an incremental run must see before the first bar it writes to reproduce a full refresh bit
    for bit: the signal needs 200 MACD values, each needing 500 bars, plus the 33 bars before MACD's
    first value. The lookback is read as a span of time (indicator_lookback_bars x bar length, so
    BigQuery prunes partitions); the default of 1000 leaves room for 266 missing bars in it.
-#}
{% macro indicator_lookback_seconds(bar_seconds) -%}
    {%- set bars = var('indicator_lookback_bars') | int -%}
    {%- set needed = cryptopipe.ema_horizon() + cryptopipe.signal_horizon() + 34 -%}
    {%- if bars < needed -%}
        {{ exceptions.raise_compiler_error(
            "var indicator_lookback_bars must be at least " ~ needed ~ ", got " ~ bars) }}
    {%- endif -%}
    {{ return(bars * bar_seconds) }}
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
