{#-
    Custom schemas are used as they are: staging, intermediate, marts (DuckDB schemas locally,
    BigQuery datasets in prod), not dbt's default "<target schema>_<custom schema>". Models without a
    custom schema land in the target's schema (already prefixed by profiles.yml). The logical names
    are the same on both adapters (Dagster asset keys and downstream readers use them); on BigQuery
    only, every dataset gets CRYPTOPIPE_BQ_DATASET_PREFIX in front (dataset_prefix()), the same
    prefix the pipeline's BigQuery client applies (lib/warehouse/bigquery_client.dataset_name), so
    several environments or test runs share one project.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ cryptopipe.dataset_prefix() ~ (custom_schema_name | trim) }}
    {%- endif -%}
{%- endmacro %}


{#- CRYPTOPIPE_BQ_DATASET_PREFIX on BigQuery (validated as identifier characters), '' elsewhere. -#}
{% macro dataset_prefix() -%}
    {%- if target.type != 'bigquery' -%}
        {{ return('') }}
    {%- endif -%}
    {%- set prefix = env_var('CRYPTOPIPE_BQ_DATASET_PREFIX', '') | trim -%}
    {%- if not modules.re.match('^[A-Za-z0-9_]{0,100}$', prefix) -%}
        {{ exceptions.raise_compiler_error(
            "CRYPTOPIPE_BQ_DATASET_PREFIX may hold only letters, digits and underscores, got '"
            ~ prefix ~ "'") }}
    {%- endif -%}
    {{ return(prefix) }}
{%- endmacro %}
