{#-
    SQL that differs between DuckDB (local) and BigQuery (prod), behind adapter.dispatch.
    Everything else in the models is written in the subset both accept: mod, power, sqrt, abs,
    greatest (with non-null arguments only: BigQuery returns null if any argument is null, DuckDB
    skips nulls), min_by/max_by, left/right/length, named windows, integer "/" giving a double.
-#}

{%- macro unsupported_adapter(macro_name) -%}
    {{ exceptions.raise_compiler_error(
        "cryptopipe." ~ macro_name ~ " has no implementation for adapter " ~ adapter.type()) }}
{%- endmacro -%}


{#- Whole seconds since the Unix epoch of a UTC timestamp, as a 64-bit integer. -#}
{% macro epoch_seconds(timestamp_sql) -%}
    {{ return(adapter.dispatch('epoch_seconds', 'cryptopipe')(timestamp_sql)) }}
{%- endmacro %}

{% macro default__epoch_seconds(timestamp_sql) -%}
    {{ cryptopipe.unsupported_adapter('epoch_seconds') }}
{%- endmacro %}

{% macro duckdb__epoch_seconds(timestamp_sql) -%}
    cast(floor(epoch({{ timestamp_sql }})) as bigint)
{%- endmacro %}

{% macro bigquery__epoch_seconds(timestamp_sql) -%}
    unix_seconds({{ timestamp_sql }})
{%- endmacro %}


{#- The UTC timestamp of an integer number of epoch seconds (DuckDB: TIMESTAMPTZ, like raw.candles.ts). -#}
{% macro timestamp_from_epoch(seconds_sql) -%}
    {{ return(adapter.dispatch('timestamp_from_epoch', 'cryptopipe')(seconds_sql)) }}
{%- endmacro %}

{% macro default__timestamp_from_epoch(seconds_sql) -%}
    {{ cryptopipe.unsupported_adapter('timestamp_from_epoch') }}
{%- endmacro %}

{% macro duckdb__timestamp_from_epoch(seconds_sql) -%}
    to_timestamp({{ seconds_sql }})
{%- endmacro %}

{% macro bigquery__timestamp_from_epoch(seconds_sql) -%}
    timestamp_seconds({{ seconds_sql }})
{%- endmacro %}


{#- A constant UTC timestamp from epoch seconds known at compile time (lets both engines prune). -#}
{% macro timestamp_literal(epoch) -%}
    {%- set text = modules.datetime.datetime.fromtimestamp(epoch, modules.pytz.utc).strftime('%Y-%m-%d %H:%M:%S') -%}
    {{ return(adapter.dispatch('timestamp_literal', 'cryptopipe')(text)) }}
{%- endmacro %}

{% macro default__timestamp_literal(text) -%}
    {{ cryptopipe.unsupported_adapter('timestamp_literal') }}
{%- endmacro %}

{% macro duckdb__timestamp_literal(text) -%}
    cast('{{ text }}+00' as timestamptz)
{%- endmacro %}

{% macro bigquery__timestamp_literal(text) -%}
    timestamp('{{ text }}+00')
{%- endmacro %}


{#- A constant DATE (the UTC date of epoch seconds); same syntax on both engines. -#}
{% macro date_literal(epoch) -%}
    cast('{{ modules.datetime.datetime.fromtimestamp(epoch, modules.pytz.utc).strftime("%Y-%m-%d") }}' as date)
{%- endmacro %}


{#-
    The first partition date of "all history" (the Unix epoch): the explicit lower bound a full
    build puts on raw partition columns, because BigQuery tables with require_partition_filter
    refuse a query without a filter on them. Prunes nothing; no candle or trade predates it.
-#}
{% macro all_history_start_date() -%}
    cast('1970-01-01' as date)
{%- endmacro %}


{#- IEEE double (DuckDB's FLOAT is single precision, so dbt.type_float() is not usable here). -#}
{% macro double_type() -%}
    {{ return(adapter.dispatch('double_type', 'cryptopipe')()) }}
{%- endmacro %}

{% macro default__double_type() -%}
    {{ cryptopipe.unsupported_adapter('double_type') }}
{%- endmacro %}

{% macro duckdb__double_type() -%}
    double
{%- endmacro %}

{% macro bigquery__double_type() -%}
    float64
{%- endmacro %}


{#-
    Order-independent sum of double terms, returned as a double.

    Each term (already rounded to double) is converted to fixed point and summed exactly, so the
    result does not depend on the order rows reach the aggregate (thread scheduling, join order,
    which rows a run read): a full refresh and an incremental run give the same bits, and re-running
    a window changes nothing. DuckDB: DECIMAL(38, scale), i.e. terms are rounded to `scale` decimal
    places and must stay below 10^(38 - scale) in magnitude (callers normalise: see the indicator
    marts). BigQuery: BIGNUMERIC (38 decimal places, about 38 integer digits).
-#}
{% macro exact_sum(term_sql, scale=28) -%}
    {{ return(adapter.dispatch('exact_sum', 'cryptopipe')(term_sql, scale)) }}
{%- endmacro %}

{% macro default__exact_sum(term_sql, scale) -%}
    {{ cryptopipe.unsupported_adapter('exact_sum') }}
{%- endmacro %}

{% macro duckdb__exact_sum(term_sql, scale) -%}
    cast(sum(cast({{ term_sql }} as decimal(38, {{ scale }}))) as double)
{%- endmacro %}

{% macro bigquery__exact_sum(term_sql, scale) -%}
    cast(sum(cast({{ term_sql }} as bignumeric)) as float64)
{%- endmacro %}


{#-
    Exact sum of stored decimal quantities (candle volumes), returned as a double.

    A stored volume is the double nearest to the exchange's decimal text (lib/schemas.py), and its
    shortest round-trip text is that decimal again. Summing those decimals exactly and rounding once
    makes a rollup's volume the double nearest to the exact total: 60 derived minutes add up to
    their recorded hour bit for bit. Exact for volumes below 1e20 with at most 18 decimals (DuckDB
    DECIMAL(38, 18)); BigQuery BIGNUMERIC keeps 38 decimals.
-#}
{% macro decimal_sum(value_sql) -%}
    {{ return(adapter.dispatch('decimal_sum', 'cryptopipe')(value_sql)) }}
{%- endmacro %}

{% macro default__decimal_sum(value_sql) -%}
    {{ cryptopipe.unsupported_adapter('decimal_sum') }}
{%- endmacro %}

{% macro duckdb__decimal_sum(value_sql) -%}
    cast(sum(cast(cast({{ value_sql }} as varchar) as decimal(38, 18))) as double)
{%- endmacro %}

{% macro bigquery__decimal_sum(value_sql) -%}
    cast(sum(cast(cast({{ value_sql }} as string) as bignumeric)) as float64)
{%- endmacro %}


{#- Length in seconds of a timeframe string such as '1m', '4h', '1d', '1w' (null if unknown). -#}
{% macro timeframe_seconds(timeframe_sql) -%}
    cast(left({{ timeframe_sql }}, length({{ timeframe_sql }}) - 1) as {{ dbt.type_bigint() }})
    * case right({{ timeframe_sql }}, 1)
        when 's' then 1
        when 'm' then 60
        when 'h' then 3600
        when 'd' then 86400
        when 'w' then 604800
    end
{%- endmacro %}


{#- BigQuery: day partitions on ts; dbt-duckdb would reject the spec, so none there. -#}
{% macro mart_partition_by() -%}
    {%- if target.type == 'bigquery' -%}
        {{ return({'field': 'ts', 'data_type': 'timestamp', 'granularity': 'day'}) }}
    {%- else -%}
        {{ return(none) }}
    {%- endif -%}
{%- endmacro %}
