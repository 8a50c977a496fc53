{#-
    The run window: vars window_start / window_end / exchanges (see dbt_project.yml), parsed once.

    run_window(bar_seconds) returns none when no var is set, else a dict:
      start, end      epoch seconds widened outward to whole bars of bar_seconds (end exclusive),
                      or none when only `exchanges` is set;
      exchanges       list of validated exchange ids, or none for all.
    The models apply it only when is_incremental() (an existing mart, no --full-refresh): a mart
    that is (re)built processes everything. Models call is_incremental() themselves and pass
    none on a full build (dbt unit tests override is_incremental in the model's context only).
-#}

{% macro parse_utc_epoch(value, var_name) -%}
    {%- set text = value | string | trim -%}
    {%- set iso = '^\\d{4}-\\d{2}-\\d{2}([T ]\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,6})?)?)?(Z|[+-]\\d{2}:?\\d{2})?$' -%}
    {%- if not modules.re.match(iso, text) -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ var_name ~ " must be an ISO-8601 timestamp such as '2019-03-20 00:00:00' "
            ~ "(UTC when it has no offset), got '" ~ text ~ "'") }}
    {%- endif -%}
    {%- set parsed = modules.datetime.datetime.fromisoformat(text.replace('Z', '+00:00')) -%}
    {%- if parsed.tzinfo is none -%}
        {%- set parsed = parsed.replace(tzinfo=modules.pytz.utc) -%}
    {%- endif -%}
    {{ return((parsed.timestamp() // 1) | int) }}
{%- endmacro %}


{% macro exchanges_var() -%}
    {%- set raw = var('exchanges', none) -%}
    {%- if raw is none or raw == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set names = raw.split(',') if raw is string else raw -%}
    {%- set exchanges = [] -%}
    {%- for name in names -%}
        {%- set name = name | string | trim -%}
        {%- if not modules.re.match('^[a-z0-9_]+$', name) -%}
            {{ exceptions.raise_compiler_error(
                "var exchanges must list ccxt exchange ids ([a-z0-9_]+), got '" ~ name ~ "'") }}
        {%- endif -%}
        {%- do exchanges.append(name) -%}
    {%- endfor -%}
    {%- if exchanges | length == 0 -%}
        {{ exceptions.raise_compiler_error("var exchanges is an empty list") }}
    {%- endif -%}
    {{ return(exchanges | unique | sort) }}
{%- endmacro %}


{% macro run_window(bar_seconds) -%}
    {%- set start_var = var('window_start', none) -%}
    {%- set end_var = var('window_end', none) -%}
    {%- set exchanges = cryptopipe.exchanges_var() -%}
    {%- if (start_var is none) != (end_var is none) -%}
        {{ exceptions.raise_compiler_error("vars window_start and window_end go together: set both or neither") }}
    {%- endif -%}
    {%- if start_var is none and exchanges is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set window = {'start': none, 'end': none, 'exchanges': exchanges} -%}
    {%- if start_var is not none -%}
        {%- set start = cryptopipe.parse_utc_epoch(start_var, 'window_start') -%}
        {%- set end = cryptopipe.parse_utc_epoch(end_var, 'window_end') -%}
        {%- if end <= start -%}
            {{ exceptions.raise_compiler_error(
                "window_end (" ~ end_var ~ ") must be later than window_start (" ~ start_var ~ ")") }}
        {%- endif -%}
        {%- do window.update({
            'start': (start // bar_seconds) * bar_seconds,
            'end': -((-end) // bar_seconds) * bar_seconds}) -%}
    {%- endif -%}
    {{ return(window) }}
{%- endmacro %}


{#-
    A boolean SQL expression restricting a read to [start, end) and the run's
    exchanges; "true" when there is no window (a full build). date_column, when given, is the raw
    table's partition column (reached through views that pass filters down): the time range is
    repeated on it so BigQuery prunes partitions. Without a time range the read covers all history
    on purpose, and says so with date_column >= all_history_start_date(): raw.candles and
    raw.trades require a partition filter on BigQuery (require_partition_filter), which refuses a
    query without one even when every partition is wanted.
-#}
{% macro window_condition(window, ts_column='ts', date_column=none) -%}
    {%- set conditions = [] -%}
    {%- if window is not none and window.start is not none -%}
        {%- set first = window.start -%}
        {%- do conditions.append(ts_column ~ " >= " ~ cryptopipe.timestamp_literal(first)) -%}
        {%- do conditions.append(ts_column ~ " < " ~ cryptopipe.timestamp_literal(window.end)) -%}
        {%- if date_column is not none -%}
            {%- do conditions.append(date_column ~ " between " ~ cryptopipe.date_literal(first)
                ~ " and " ~ cryptopipe.date_literal(window.end - 1)) -%}
        {%- endif -%}
    {%- elif date_column is not none -%}
        {%- do conditions.append(date_column ~ " >= " ~ cryptopipe.all_history_start_date()) -%}
    {%- endif -%}
    {%- if window is not none and window.exchanges is not none -%}
        {%- do conditions.append("exchange in ('" ~ window.exchanges | join("', '") ~ "')") -%}
    {%- endif -%}
    {%- if conditions -%}
        ({{ conditions | join(' and ') }})
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}


{#- A boolean SQL expression: the row lies in the window the run writes ("true" on a full build). -#}
{% macro in_output_window(window, ts_column='ts') -%}
    {%- if window is not none and window.start is not none -%}
        ({{ ts_column }} >= {{ cryptopipe.timestamp_literal(window.start) }}
        and {{ ts_column }} < {{ cryptopipe.timestamp_literal(window.end) }})
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}


{#-
    incremental_predicates for the MERGE: the destination side is restricted to the window too, so
    BigQuery prunes the mart's partitions and DuckDB matches against the window only. Safe because
    every source row of the run lies in that window, or from its start on when open_ended (the
    indicator marts also rewrite the bars after the window that read it). Evaluated at parse time
    (vars are known then).
-#}
{% macro window_merge_predicates(bar_seconds, open_ended=false) -%}
    {%- set window = cryptopipe.run_window(bar_seconds) -%}
    {%- if window is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set predicates = [] -%}
    {%- if window.start is not none -%}
        {%- do predicates.append("DBT_INTERNAL_DEST.ts >= " ~ cryptopipe.timestamp_literal(window.start)) -%}
        {%- if not open_ended -%}
            {%- do predicates.append("DBT_INTERNAL_DEST.ts < " ~ cryptopipe.timestamp_literal(window.end)) -%}
        {%- endif -%}
    {%- endif -%}
    {%- if window.exchanges is not none -%}
        {%- do predicates.append("DBT_INTERNAL_DEST.exchange in ('" ~ window.exchanges | join("', '") ~ "')") -%}
    {%- endif -%}
    {{ return(predicates) }}
{%- endmacro %}


{#-
    Data tests run with where: "__window__" (dbt_project.yml): a partition run tests the days it
    wrote (window widened to whole UTC days, so daily bars are covered) and its exchanges; a run
    without window vars tests every row.
-#}
{% macro window_test_condition(ts_column='ts', date_column=none) -%}
    {{ return(cryptopipe.window_condition(cryptopipe.run_window(86400), ts_column, date_column)) }}
{%- endmacro %}


{#-
    A test of a view over raw.candles / raw.trades names the raw partition column it exposes in
    `meta: {partition_date_column: ...}`, so "__window__" filters on it too (BigQuery requires a
    partition filter on those tables, also through views).
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where -%}
        {%- if '__window__' in where -%}
            {%- set date_column = (config.get('meta') or {}).get('partition_date_column') -%}
            {%- set where = where | replace(
                '__window__', cryptopipe.window_test_condition('ts', date_column)) -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- else -%}
        {{ return(relation) }}
    {%- endif -%}
{%- endmacro %}
