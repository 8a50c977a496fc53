{#- The body of marts.indicators_<bar>: one definition for every bar length.
    source_model: the OHLCV mart of that bar length; bar_seconds: its length; incremental: the
    model's is_incremental(), passed in because dbt unit tests override it in the model's context. -#}
{% macro indicators_mart(source_model, bar_seconds, incremental) %}
{#- Definitions, precision, gap rule and incremental contract: _marts__docs.md. -#}
{%- set window = cryptopipe.run_window(bar_seconds) if incremental else none -%}
{%- set horizon = cryptopipe.ema_horizon() -%}
{%- set signal_horizon = cryptopipe.signal_horizon() -%}

with

bars as (

    -- a full build (or a run of whole exchanges) computes and writes every bar it reads; a run
    -- with a time window reads the range indicator_read_range() found: the window, the bars it
    -- changes after it and the lookback before them, counted in bars of each market's history
    {%- set read = cryptopipe.indicator_read_range(ref(source_model), window) %}
    {%- set written = {'start': read.written_start, 'end': read.end} if read else none %}
    select
        exchange,
        symbol,
        ts,
        high,
        low,
        close,
        volume,
        is_complete,
        {{ cryptopipe.in_output_window(written) }} as is_output
    from {{ ref(source_model) }}
    where {{ cryptopipe.window_condition(read or window, 'ts') }}

),

numbered as (

    select
        exchange,
        symbol,
        ts,
        high,
        low,
        close,
        volume,
        is_complete,
        row_number() over series_order - 1 as bar_index,
        lag(close) over series_order as previous_close,
        (high + low + close) / 3 as typical_price,
        is_output
    from bars
    window series_order as (partition by exchange, symbol order by ts)

),

moves as (

    -- TA-Lib: gain/loss from bar 1 on; true range of bar 0 is undefined
    select
        exchange,
        symbol,
        ts,
        close,
        volume,
        is_complete,
        bar_index,
        typical_price,
        is_output,
        case when bar_index >= 1 then greatest(close - previous_close, 0) end as gain,
        case when bar_index >= 1 then greatest(previous_close - close, 0) end as loss,
        case
            when bar_index >= 1
                then greatest(high - low, abs(high - previous_close), abs(low - previous_close))
        end as true_range,
        min(case when is_output then bar_index end)
            over (partition by exchange, symbol)
            as first_output_index
    from numbered

),

targets as (

    -- bars whose values are computed: the output bars, the MACD values the signal of the
    -- output bars reads, and the first 34 bars that hold the seeds
    select *
    from moves
    where
        first_output_index is not null
        and (bar_index >= first_output_index - {{ signal_horizon }} or bar_index <= 33)

),

trailing_sums as (

    select
        bar_t.exchange,
        bar_t.symbol,
        bar_t.bar_index,
        {{ cryptopipe.trailing_sum('close', 20) }} as close_sum_20,
        {{ cryptopipe.exact_sum(
            'case when bar_t.bar_index - bar_i.bar_index < 20'
            ~ ' then (bar_i.close / bar_t.close) * (bar_i.close / bar_t.close) end') }}
            as close_square_sum_20,
        {{ cryptopipe.trailing_sum('close', 12) }} as close_sum_12,
        {{ cryptopipe.trailing_sum('close', 26) }} as close_sum_26,
        {{ cryptopipe.trailing_sum('gain', 14) }} as gain_sum_14,
        {{ cryptopipe.trailing_sum('loss', 14) }} as loss_sum_14,
        {{ cryptopipe.trailing_sum('true_range', 14) }} as true_range_sum_14,
        {{ cryptopipe.exact_sum(
            'case when bar_t.bar_index - bar_i.bar_index < 24 then bar_i.volume end', scale=18) }}
            as volume_sum_24,
        {{ cryptopipe.exact_sum(
            'case when bar_t.bar_index - bar_i.bar_index < 24'
            ~ ' then bar_i.typical_price / bar_t.close * bar_i.volume end', scale=18) }}
            as price_volume_sum_24
    from targets as bar_t
    inner join moves as bar_i
        on
            bar_t.exchange = bar_i.exchange
            and bar_t.symbol = bar_i.symbol
            and bar_i.bar_index between bar_t.bar_index - 25 and bar_t.bar_index
    group by bar_t.exchange, bar_t.symbol, bar_t.bar_index

),

smoothed_sums as (

    -- exponentially weighted tails over the last {{ horizon }} bars
    select
        bar_t.exchange,
        bar_t.symbol,
        bar_t.bar_index,
        {{ cryptopipe.smoothed_tail('close', 2, 21, first_bar=20) }} as ema_20_tail,
        {{ cryptopipe.smoothed_tail('close', 2, 13, first_bar=26) }} as ema_12_tail,
        {{ cryptopipe.smoothed_tail('close', 2, 27, first_bar=26) }} as ema_26_tail,
        {{ cryptopipe.smoothed_tail('gain', 1, 14, first_bar=15) }} as gain_tail,
        {{ cryptopipe.smoothed_tail('loss', 1, 14, first_bar=15) }} as loss_tail,
        {{ cryptopipe.smoothed_tail('true_range', 1, 14, first_bar=15) }} as true_range_tail
    from targets as bar_t
    inner join moves as bar_i
        on
            bar_t.exchange = bar_i.exchange
            and bar_t.symbol = bar_i.symbol
            and bar_i.bar_index between bar_t.bar_index - {{ horizon }} and bar_t.bar_index
    group by bar_t.exchange, bar_t.symbol, bar_t.bar_index

),

sums as (

    select
        targets.exchange,
        targets.symbol,
        targets.ts,
        targets.close,
        targets.is_complete,
        targets.bar_index,
        targets.is_output,
        trailing_sums.close_sum_20,
        trailing_sums.close_square_sum_20 / 20
        - (trailing_sums.close_sum_20 / 20) * (trailing_sums.close_sum_20 / 20)
            as close_variance_ratio_20,
        trailing_sums.close_sum_12,
        trailing_sums.close_sum_26,
        trailing_sums.gain_sum_14,
        trailing_sums.loss_sum_14,
        trailing_sums.true_range_sum_14,
        trailing_sums.volume_sum_24,
        trailing_sums.price_volume_sum_24,
        smoothed_sums.ema_20_tail,
        smoothed_sums.ema_12_tail,
        smoothed_sums.ema_26_tail,
        smoothed_sums.gain_tail,
        smoothed_sums.loss_tail,
        smoothed_sums.true_range_tail
    from targets
    inner join trailing_sums
        on
            targets.exchange = trailing_sums.exchange
            and targets.symbol = trailing_sums.symbol
            and targets.bar_index = trailing_sums.bar_index
    inner join smoothed_sums
        on
            targets.exchange = smoothed_sums.exchange
            and targets.symbol = smoothed_sums.symbol
            and targets.bar_index = smoothed_sums.bar_index

),

seeds as (

    -- TA-Lib's seeds: simple averages ending at the bar before a smoothing's first update
    select
        exchange,
        symbol,
        max(case when bar_index = 19 then close * close_sum_20 / 20 end) as ema_20_seed,
        max(case when bar_index = 25 then close * close_sum_12 / 12 end) as ema_12_seed,
        max(case when bar_index = 25 then close * close_sum_26 / 26 end) as ema_26_seed,
        max(case when bar_index = 14 then close * gain_sum_14 / 14 end) as gain_seed,
        max(case when bar_index = 14 then close * loss_sum_14 / 14 end) as loss_seed,
        max(case when bar_index = 14 then close * true_range_sum_14 / 14 end) as true_range_seed
    from sums
    where bar_index <= 25
    group by exchange, symbol

),

averages as (

    select
        sums.exchange,
        sums.symbol,
        sums.ts,
        sums.close,
        sums.is_complete,
        sums.bar_index,
        sums.is_output,
        case when sums.bar_index >= 19 then sums.close * sums.close_sum_20 / 20 end as sma_20,
        -- population standard deviation: sqrt(mean of squares - square of mean), in units of close
        case
            when sums.bar_index >= 19 then sums.close * sqrt(greatest(sums.close_variance_ratio_20, 0))
        end as stddev_20,
        {{ cryptopipe.smoothed_value('sums.ema_20_tail', 'seeds.ema_20_seed', 2, 21, seed_bar=19,
            bar_index='sums.bar_index', close='sums.close') }} as ema_20,
        {{ cryptopipe.smoothed_value('sums.ema_12_tail', 'seeds.ema_12_seed', 2, 13, seed_bar=25,
            bar_index='sums.bar_index', close='sums.close') }}
        - {{ cryptopipe.smoothed_value('sums.ema_26_tail', 'seeds.ema_26_seed', 2, 27, seed_bar=25,
            bar_index='sums.bar_index', close='sums.close') }} as macd_line,
        {{ cryptopipe.smoothed_value('sums.gain_tail', 'seeds.gain_seed', 1, 14, seed_bar=14,
            bar_index='sums.bar_index', close='sums.close') }} as average_gain,
        {{ cryptopipe.smoothed_value('sums.loss_tail', 'seeds.loss_seed', 1, 14, seed_bar=14,
            bar_index='sums.bar_index', close='sums.close') }} as average_loss,
        {{ cryptopipe.smoothed_value('sums.true_range_tail', 'seeds.true_range_seed', 1, 14,
            seed_bar=14, bar_index='sums.bar_index', close='sums.close') }} as atr_14,
        case
            when sums.bar_index >= 23 and sums.volume_sum_24 > 0
                then sums.close * sums.price_volume_sum_24 / sums.volume_sum_24
        end as vwap_24
    from sums
    inner join seeds
        on
            sums.exchange = seeds.exchange
            and sums.symbol = seeds.symbol

),

macd_points as (

    select
        exchange,
        symbol,
        bar_index,
        close,
        is_output,
        macd_line
    from averages
    where bar_index >= 25

),

signal_sums as (

    -- EMA(9) of the MACD line, seeded with the average of its first 9 values (bars 25..33)
    select
        bar_t.exchange,
        bar_t.symbol,
        bar_t.bar_index,
        {{ cryptopipe.smoothed_tail('macd_line', 2, 10, first_bar=34) }} as signal_tail,
        {{ cryptopipe.trailing_sum('macd_line', 9) }} as macd_sum_9,
        max(bar_t.close) as close
    from macd_points as bar_t
    inner join macd_points as bar_i
        on
            bar_t.exchange = bar_i.exchange
            and bar_t.symbol = bar_i.symbol
            and bar_i.bar_index between bar_t.bar_index - {{ signal_horizon }} and bar_t.bar_index
    where bar_t.is_output or bar_t.bar_index = 33
    group by bar_t.exchange, bar_t.symbol, bar_t.bar_index

),

signal_seeds as (

    select
        exchange,
        symbol,
        max(close * macd_sum_9 / 9) as signal_seed
    from signal_sums
    where bar_index = 33
    group by exchange, symbol

),

signals as (

    select
        signal_sums.exchange,
        signal_sums.symbol,
        signal_sums.bar_index,
        {{ cryptopipe.smoothed_value('signal_sums.signal_tail', 'signal_seeds.signal_seed', 2, 10,
            seed_bar=33, horizon=signal_horizon, bar_index='signal_sums.bar_index',
            close='signal_sums.close') }} as macd_signal
    from signal_sums
    inner join signal_seeds
        on
            signal_sums.exchange = signal_seeds.exchange
            and signal_sums.symbol = signal_seeds.symbol

),

indicators as (

    select
        averages.exchange,
        averages.symbol,
        averages.ts,
        averages.close,
        averages.sma_20,
        averages.ema_20,
        case
            when averages.average_gain + averages.average_loss = 0 then 0
            else 100 * averages.average_gain / (averages.average_gain + averages.average_loss)
        end as rsi_14,
        case when averages.bar_index >= 33 then averages.macd_line end as macd,
        signals.macd_signal,
        case when averages.bar_index >= 33 then averages.macd_line - signals.macd_signal end as macd_hist,
        averages.sma_20 + 2 * averages.stddev_20 as bb_upper,
        averages.sma_20 as bb_middle,
        averages.sma_20 - 2 * averages.stddev_20 as bb_lower,
        averages.atr_14,
        averages.vwap_24,
        averages.is_complete
    from averages
    left join signals
        on
            averages.exchange = signals.exchange
            and averages.symbol = signals.symbol
            and averages.bar_index = signals.bar_index
    where averages.is_output

)

select * from indicators
{% endmacro %}
