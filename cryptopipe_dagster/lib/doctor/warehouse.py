"""The warehouse checks of `cryptopipe doctor`: the DuckDB file, or the BigQuery datasets and tables
(columns, partitioning, clustering) and the table permissions the processes need.

The reads live behind lib/warehouse/ (duckdb_layout.py, bigquery_layout.py), imported on first use.
"""

from __future__ import annotations

from collections import defaultdict

from cryptopipe_dagster.lib.doctor.findings import Diagnosis, needed_by, not_checkable, who_needs
from cryptopipe_dagster.lib.settings import Settings

DBT_DATASETS = ("staging", "intermediate", "marts")  # created by the first `dbt build`
READ_WRITE = ("bigquery.tables.getData", "bigquery.tables.updateData")
# Table permissions per process: updateData covers MERGE, insert and streaming append.
TABLE_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "loader": {
        name: READ_WRITE
        for name in (
            "raw.candles",
            "raw.trades",
            "ops.dead_letters",
            "ops.landed_batches",
            "ops.loaded_batches",
        )
    },
    "backfill": {name: READ_WRITE for name in ("raw.candles", "ops.dead_letters", "ops.ingest_checkpoints")},
}


def diagnose_duckdb(settings: Settings, diagnosis: Diagnosis) -> None:
    """The DuckDB file: it exists and is readable, every table of the specs with its columns."""
    from cryptopipe_dagster.lib.warehouse import duckdb_layout
    from cryptopipe_dagster.lib.warehouse.tables import LANDING_TABLES, TABLES

    path = settings.duckdb_path
    if not path.exists():
        diagnosis.problem(
            "duckdb",
            f"warehouse file {path} does not exist: the first pipeline run creates it "
            "(cryptopipe demo, cryptopipe backfill), or set CRYPTOPIPE_DUCKDB_PATH to the existing file",
        )
        return
    try:
        found = duckdb_layout.read_columns(path)
    except duckdb_layout.DuckDBUnreadable as error:
        diagnosis.problem(
            "duckdb", f"{error}; stop the process that holds it, or check CRYPTOPIPE_DUCKDB_PATH"
        )
        return
    for spec in TABLES.values():
        if spec.qualified not in found:
            diagnosis.problem(
                "duckdb.table", f"table {spec.qualified} is missing in {path}: any pipeline run creates it"
            )
            continue
        for diff in duckdb_layout.column_differences(spec, found[spec.qualified]):
            diagnosis.problem(
                "duckdb.table",
                f"{spec.qualified} column {diff.column} in {path}: expected {diff.expected}, "
                f"found {diff.found}; the file predates the schema: move it aside and run the backfill again",
            )
    for name in LANDING_TABLES:
        if name not in found:
            diagnosis.note(
                "duckdb.table", f"{name} does not exist yet: the first market_data_sensor tick creates it"
            )
    diagnosis.checked.append(f"DuckDB {path}: {len(TABLES)} tables")


def diagnose_bigquery(settings: Settings, diagnosis: Diagnosis, timeout_s: float) -> None:
    """The BigQuery datasets and tables of the specs, the dbt datasets, and the table permissions."""
    from cryptopipe_dagster.lib.warehouse import bigquery_layout as layout

    where = settings.bigquery_endpoint or "BigQuery"
    try:
        with layout.open_client(settings) as client:
            present = _check_bigquery_tables(settings, client, diagnosis, timeout_s)
            _check_dbt_datasets(settings, client, diagnosis, timeout_s)
            _check_table_permissions(settings, client, present, diagnosis, timeout_s)
    except layout.BigQueryUnavailable as error:
        hint = (
            "check CRYPTOPIPE_BIGQUERY_ENDPOINT and that the emulator runs"
            if settings.bigquery_endpoint
            else "check the network and the credentials (Application Default Credentials)"
        )
        diagnosis.problem(
            "bigquery", f"cannot ask {where} for project {settings.gcp_project}: {error}; {hint}"
        )


def _check_bigquery_tables(
    settings: Settings, client, diagnosis: Diagnosis, timeout_s: float
) -> dict[str, str]:
    """Datasets and tables of the specs; returns {"raw.candles": table id} of the tables that exist."""
    from cryptopipe_dagster.lib.warehouse import bigquery_layout as layout
    from cryptopipe_dagster.lib.warehouse.bigquery_client import dataset_name
    from cryptopipe_dagster.lib.warehouse.tables import LANDING_TABLES, TABLES

    by_dataset = defaultdict(list)
    for spec in (*TABLES.values(), *LANDING_TABLES.values()):
        by_dataset[spec.dataset].append(spec)
    emulator, present, unknown_filter = bool(settings.bigquery_endpoint), {}, []
    for logical, specs in by_dataset.items():
        dataset_id = f"{settings.gcp_project}.{dataset_name(settings.bq_dataset_prefix, logical)}"
        dataset = layout.read_dataset(client, dataset_id, timeout_s)
        if dataset is None:
            names = ", ".join(spec.qualified for spec in specs)
            diagnosis.problem(
                "bigquery.dataset",
                f"dataset {dataset_id} does not exist (it holds {names}): "
                f"create it in {settings.bq_location} with its tables (terraform apply)",
            )
            continue
        if dataset.location and dataset.location.lower() != settings.bq_location.lower():
            diagnosis.problem(
                "bigquery.dataset",
                f"dataset {dataset_id} is in {dataset.location}, expected {settings.bq_location} "
                "(CRYPTOPIPE_BQ_LOCATION): set the variable to the dataset's location",
            )
        for spec in specs:
            table_id = f"{dataset_id}.{spec.name}"
            table = layout.read_table(client, table_id, timeout_s)
            if table is None:
                diagnosis.problem(
                    "bigquery.table",
                    f"table {table_id} ({spec.qualified}) does not exist: create it (terraform apply)",
                )
                continue
            present[spec.qualified] = table_id
            for diff in layout.layout_differences(spec, table, emulator):
                diagnosis.problem(
                    "bigquery.table",
                    f"{table_id} {diff.aspect}: expected {diff.expected}, found {diff.found}; {diff.remedy}",
                )
            if emulator and spec.require_partition_filter and table.require_partition_filter is None:
                unknown_filter.append(spec.qualified)
    if unknown_filter:
        # bqemulator 1.4.0 does not report require_partition_filter back; real BigQuery does.
        diagnosis.note(
            "bigquery.table",
            f"require_partition_filter of {', '.join(unknown_filter)} not checkable: "
            "the emulator does not report it",
        )
    diagnosis.checked.append(
        f"BigQuery {settings.gcp_project}: {len(present)} tables in {len(by_dataset)} datasets"
    )
    return present


def _check_dbt_datasets(settings: Settings, client, diagnosis: Diagnosis, timeout_s: float) -> None:
    from cryptopipe_dagster.lib.warehouse import bigquery_layout as layout
    from cryptopipe_dagster.lib.warehouse.bigquery_client import dataset_name

    for logical in DBT_DATASETS:
        dataset_id = f"{settings.gcp_project}.{dataset_name(settings.bq_dataset_prefix, logical)}"
        if layout.read_dataset(client, dataset_id, timeout_s) is None:
            diagnosis.note(
                "bigquery.dataset",
                f"dbt dataset {dataset_id} does not exist yet: the first dbt build creates it",
            )


def _check_table_permissions(
    settings: Settings, client, present: dict[str, str], diagnosis: Diagnosis, timeout_s: float
) -> None:
    from cryptopipe_dagster.lib.warehouse import bigquery_layout as layout

    for qualified, table_id in present.items():
        needed = needed_by(TABLE_PERMISSIONS, qualified)
        if not needed:
            continue
        try:
            missing = layout.missing_table_permissions(client, table_id, sorted(needed), timeout_s)
        except layout.PermissionsNotCheckable as error:
            not_checkable(diagnosis, "bigquery.iam", bool(settings.bigquery_endpoint), table_id, error)
            return
        if missing:
            diagnosis.problem(
                "bigquery.iam",
                f"the current credentials lack {who_needs(needed, missing)} on {table_id}: "
                "grant roles/bigquery.dataEditor on its dataset to those processes' service account",
            )
    if present:
        diagnosis.checked.append("table permissions")
