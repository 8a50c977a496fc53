{#-
    Custom schemas are used as they are: staging, intermediate, marts (DuckDB schemas locally,
    BigQuery datasets in prod), not dbt's default "<target schema>_<custom schema>". Models without a
    custom schema land in the target's schema. Deliberately not adapter-dispatched: the names must
    be identical on both adapters, because Dagster asset keys and downstream readers use them.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
