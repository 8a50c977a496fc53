"""BigQuery table definitions from the table specs: the one source of DDL for the API and the doctor.

Tables are created through the API (not DDL text) so partitioning, clustering, column
descriptions and require_partition_filter are set exactly and can be read back and compared.
"""

from __future__ import annotations

from google.cloud import bigquery

from cryptopipe_dagster.lib.warehouse.tables import BIGQUERY, TableSpec


def schema_fields(spec: TableSpec, columns: list[str] | None = None) -> list[bigquery.SchemaField]:
    """The spec's columns (or the named subset, in that order) as BigQuery schema fields."""
    by_name = {column.name: column for column in spec.columns}
    return [
        bigquery.SchemaField(
            name,
            BIGQUERY.types[by_name[name].type],
            mode="NULLABLE" if by_name[name].nullable else "REQUIRED",
            description=by_name[name].description or None,
        )
        for name in (columns or spec.column_names)
    ]


def bigquery_table(spec: TableSpec, table_id: str) -> bigquery.Table:
    """The table as production has it: DAY partitioned on the spec's date, clustered, described."""
    table = bigquery.Table(table_id, schema=schema_fields(spec))
    if spec.partition_source:
        expiration = spec.partition_expiration_days
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY,
            field=spec.partition_source,
            expiration_ms=expiration * 86_400_000 if expiration else None,
        )
        table.require_partition_filter = spec.require_partition_filter or None
    if spec.cluster_by:
        table.clustering_fields = list(spec.cluster_by)
    table.description = spec.description or None
    return table


def expected_layout(spec: TableSpec) -> dict:
    """What `cryptopipe doctor` compares a live table with: columns, partitioning, clustering."""
    return {
        "columns": {f.name: (f.field_type, f.mode) for f in schema_fields(spec)},
        "partition_field": spec.partition_source,
        "clustering": list(spec.cluster_by) or None,
        "require_partition_filter": bool(spec.require_partition_filter) if spec.partition_source else None,
    }
