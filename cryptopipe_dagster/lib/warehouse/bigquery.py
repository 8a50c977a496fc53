"""BigQuery warehouse: the same tables, keys and SQL as DuckDB, on partitioned BigQuery tables.

Loads: the batch goes Arrow -> Parquet -> a load job into a staging table that expires by itself
-> one MERGE with explicit column lists on the deterministic key, pruned to the batch's partitions;
never per-row inserts, never an unpruned DELETE. BigQuery has no transaction spanning a load job and
several MERGEs, so writes are ordered: dead letters, then records, then the checkpoint. A crash
between any two leaves the checkpoint behind the data, and the rerun re-MERGEs rows that are
already there: nothing lost, nothing duplicated.

Values travel as query parameters; identifiers come only from the table specs and the dataset
prefix (both checked by safe_identifier).
"""

from __future__ import annotations

import datetime as dt
import io
import numbers
import uuid
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from cryptopipe_dagster.lib.edge.schemas import frame_from_arrow
from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.settings import Settings
from cryptopipe_dagster.lib.warehouse.base import Checkpoint, MergeStats
from cryptopipe_dagster.lib.warehouse.bigquery_client import bigquery_client, dataset_name
from cryptopipe_dagster.lib.warehouse.bigquery_tables import bigquery_table, schema_fields
from cryptopipe_dagster.lib.warehouse.sql import merge_sql, merge_stats_sql
from cryptopipe_dagster.lib.warehouse.sql_warehouse import (
    SqlWarehouse,
    checkpoint_frame,
    logical_type,
    merge_source,
    utc,
)
from cryptopipe_dagster.lib.warehouse.tables import (
    BIGQUERY,
    CANDLES,
    CHECKPOINTS,
    DEAD_LETTERS,
    LANDING_TABLES,
    TABLES,
    TRADES,
    TableSpec,
    safe_identifier,
    table_spec,
)

STAGING_TTL = pd.Timedelta(hours=6)  # a staging table left by a crash deletes itself
# MERGE statements per table are few (BigQuery runs two mutating DML per table at a time and
# queues the rest) and each bills its scan: the live loader groups landed batches for this long.
LIVE_LOAD_INTERVAL_S = 5.0


def query_parameter(name: str, value: object) -> bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter:
    """A typed BigQuery query parameter for a Python value (lists become ARRAY parameters)."""
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        values = list(value)
        kind = _scalar_type(values[0]) if values else "STRING"
        return bigquery.ArrayQueryParameter(name, kind, [_scalar_value(v) for v in values])
    return bigquery.ScalarQueryParameter(name, _scalar_type(value), _scalar_value(value))


def _scalar_type(value: object) -> str:
    if value is None:
        return "STRING"  # a typed NULL; the SQL compares it with IS NULL only
    if isinstance(value, (bool, np.bool_)):
        return "BOOL"
    if isinstance(value, numbers.Integral):
        return "INT64"
    if isinstance(value, numbers.Real):
        return "FLOAT64"
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return "TIMESTAMP"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, str):
        return "STRING"
    raise TypeError(f"no BigQuery parameter type for {type(value).__name__}")


def _scalar_value(value: object) -> object:
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return utc(value).to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


class BigQueryWarehouse(SqlWarehouse):
    """The Warehouse on BigQuery datasets `<prefix>raw` and `<prefix>ops` of one project."""

    dialect = BIGQUERY
    live_load_interval_s = LIVE_LOAD_INTERVAL_S

    def __init__(
        self, client: bigquery.Client, *, project: str, prefix: str = "", location: str = "US"
    ) -> None:
        self.client = client
        self.project = project
        self.prefix = prefix
        self.location = location
        dataset_name(prefix, "raw")  # an unusable prefix fails here, not in the first query
        self._ensured = False

    @classmethod
    def from_settings(cls, settings: Settings) -> BigQueryWarehouse:
        """The warehouse CRYPTOPIPE_GCP_PROJECT / _BQ_* / _BIGQUERY_ENDPOINT describe."""
        if not settings.gcp_project:
            raise ConfigError("a BigQuery warehouse needs CRYPTOPIPE_GCP_PROJECT")
        return cls(
            bigquery_client(settings),
            project=settings.gcp_project,
            prefix=settings.bq_dataset_prefix,
            location=settings.bq_location,
        )

    @property
    def display_name(self) -> str:
        return f"bigquery {self.project} (datasets {self.prefix}raw, {self.prefix}ops)"

    def table_id(self, spec: TableSpec) -> str:
        """project.dataset.table of a spec (unquoted, for the API)."""
        return f"{self.project}.{dataset_name(self.prefix, spec.dataset)}.{safe_identifier(spec.name)}"

    def table_ref(self, logical: str) -> str:
        dataset, table = logical.split(".")
        return f"`{self.project}.{dataset_name(self.prefix, dataset)}.{safe_identifier(table)}`"

    def ensure_schema(self) -> None:
        """Create the datasets and every table (from the specs) if missing; once per object."""
        if self._ensured:
            return
        specs = [*TABLES.values(), *LANDING_TABLES.values()]
        for dataset in sorted({spec.dataset for spec in specs}):
            entry = bigquery.Dataset(f"{self.project}.{dataset_name(self.prefix, dataset)}")
            entry.location = self.location
            self.client.create_dataset(entry, exists_ok=True)
        for spec in specs:
            self.client.create_table(bigquery_table(spec, self.table_id(spec)), exists_ok=True)
            self._add_new_nullable_columns(spec)
        self._ensured = True

    def _add_new_nullable_columns(self, spec: TableSpec) -> None:
        """Nullable columns added to a spec after its table was created (checkpoint loaded_ranges)
        are appended in place: BigQuery allows adding NULLABLE fields to a table's schema."""
        table = self.client.get_table(self.table_id(spec))
        present = {field.name for field in table.schema}
        added = [f for f in schema_fields(spec) if f.name not in present and f.mode == "NULLABLE"]
        if added:
            table.schema = [*table.schema, *added]
            self.client.update_table(table, ["schema"])

    def query_df(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        """Run a parameterized query (BigQuery SQL, @name parameters) and return its rows."""
        config = bigquery.QueryJobConfig(
            query_parameters=[query_parameter(name, value) for name, value in (params or {}).items()]
        )
        table = self.client.query(sql, job_config=config).result().to_arrow(create_bqstorage_client=False)
        return table.to_pandas(types_mapper={pa.string(): pd.ArrowDtype(pa.string())}.get)

    def _execute_count(self, sql: str, params: dict) -> int:
        config = bigquery.QueryJobConfig(
            query_parameters=[query_parameter(name, value) for name, value in params.items()]
        )
        job = self.client.query(sql, job_config=config)
        job.result()
        return int(job.num_dml_affected_rows or 0)

    def _stage(self, spec: TableSpec, staged: pd.DataFrame) -> str:
        """Load the batch into a fresh staging table (Parquet load job); returns its SQL name."""
        name = f"_staging_{spec.name}_{uuid.uuid4().hex[:12]}"
        table_id = f"{self.project}.{dataset_name(self.prefix, 'ops')}.{name}"
        # All NULLABLE: the staging table is a carrier; the MERGE target enforces REQUIRED.
        fields = [
            bigquery.SchemaField(f.name, f.field_type, mode="NULLABLE")
            for f in schema_fields(spec, spec.input_columns)
        ]
        table = bigquery.Table(table_id, schema=fields)
        table.expires = (pd.Timestamp.now(tz="UTC") + STAGING_TTL).to_pydatetime()
        self.client.create_table(table)
        buffer = io.BytesIO()
        pq.write_table(_arrow_batch(spec, staged), buffer)
        buffer.seek(0)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        )
        self.client.load_table_from_file(buffer, table_id, job_config=config).result()
        return f"`{table_id}`"

    def _merge(
        self, spec: TableSpec, df: pd.DataFrame | pa.Table | None, unique_keys: bool = False
    ) -> MergeStats:
        if df is None or not len(df):
            return MergeStats()
        if isinstance(df, pa.Table):  # staged as pandas -> Parquet/NDJSON load (see _stage)
            df = frame_from_arrow(df)
        self.ensure_schema()
        staged, params = merge_source(spec, df, unique_keys)
        staging = self._stage(spec, staged)
        try:
            stats_sql = merge_stats_sql(spec, BIGQUERY, self._table(spec), staging)
            total, inserted, updated = self.query_df(stats_sql, params).iloc[0][
                ["total", "inserted", "updated"]
            ]
            self._execute_count(merge_sql(spec, BIGQUERY, self._table(spec), staging), params)
        finally:
            self.client.delete_table(staging.strip("`"), not_found_ok=True)
        return MergeStats(
            inserted=int(inserted), updated=int(updated), unchanged=int(total - inserted - updated)
        )

    def _merge_rows(self, spec: TableSpec, df: pd.DataFrame) -> MergeStats:
        """MERGE a frame into the spec's table (staging load + one MERGE; the shared writes)."""
        return self._merge(spec, df)

    def merge_candles(self, df: pd.DataFrame, *, unique_keys: bool = False) -> MergeStats:
        """MERGE a CandleSchema frame on (exchange, symbol, timeframe, ts), pruned to its dates."""
        return self._merge(CANDLES, df, unique_keys)

    def merge_trades(self, df: pd.DataFrame | pa.Table, *, unique_keys: bool = False) -> MergeStats:
        """MERGE a TradeSchema frame on (exchange, symbol, trade_id), pruned to its dates."""
        return self._merge(TRADES, df, unique_keys)

    def write_dead_letters(self, df: pd.DataFrame) -> int:
        """Insert dead letters with new ids (a MERGE that only inserts); returns the new count."""
        return self._merge(DEAD_LETTERS, df).inserted

    def merge_candles_with_checkpoint(
        self, candles: pd.DataFrame | None, dead_letters: pd.DataFrame | None, checkpoint: Checkpoint | None
    ) -> MergeStats:
        """Dead letters, then candles, then the checkpoint: data is durable before the checkpoint
        says so, so a crash in between re-fetches (and re-MERGEs, as no-ops) rather than skips."""
        written = self._merge(DEAD_LETTERS, dead_letters).inserted
        stats = self._merge(CANDLES, candles)
        if checkpoint is not None:
            self.save_checkpoint(checkpoint)
        return replace(stats, dead_letters_written=written)

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Insert or replace the checkpoint of its (exchange, symbol, timeframe)."""
        self._merge(CHECKPOINTS, checkpoint_frame(checkpoint))

    def newest_partition_date(self, spec: TableSpec) -> dt.date | None:
        """The newest non-empty partition, from INFORMATION_SCHEMA.PARTITIONS (metadata: no scan)."""
        dataset = f"`{self.project}.{dataset_name(self.prefix, spec.dataset)}`"
        found = self.query_df(
            f"SELECT MAX(partition_id) AS newest FROM {dataset}.INFORMATION_SCHEMA.PARTITIONS "
            "WHERE table_name = @table AND total_rows > 0 "
            "AND partition_id NOT IN ('__NULL__', '__UNPARTITIONED__')",
            {"table": spec.name},
        )
        newest = found["newest"].iloc[0]
        return None if pd.isna(newest) else dt.datetime.strptime(str(newest), "%Y%m%d").date()

    def table_columns(self, logical: str) -> dict[str, str]:
        """The table's columns from its schema (tables.get), as {name: logical type}.

        tables.get rather than INFORMATION_SCHEMA.COLUMNS: the same catalog in BigQuery without a
        query job (nothing billed, no slot wait). The emulator answers both from its own metadata,
        which its DDL ALTER TABLE does not update: tests change schemas through the API."""
        spec = table_spec(logical)
        try:
            table = self.client.get_table(self.table_id(spec))
        except NotFound:
            return {}
        return {field.name: logical_type(self.dialect, field.field_type) for field in table.schema}

    def landing(self):
        """The landing area: append-only tables in `<prefix>ops`."""
        from cryptopipe_dagster.lib.warehouse.bigquery_landing import BigQueryLanding

        self.ensure_schema()
        return BigQueryLanding(self)


def _arrow_batch(spec: TableSpec, frame: pd.DataFrame) -> pa.Table:
    """The batch as Arrow with BigQuery-loadable types (timestamps in microseconds, UTC)."""
    kinds = {c.name: c.type for c in spec.columns}
    arrow_types = {
        "string": pa.string(),
        "float64": pa.float64(),
        "int64": pa.int64(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    columns: Iterable[pa.Array] = [
        pa.array(_column_values(frame[name], kinds[name]), type=arrow_types[kinds[name]])
        for name in frame.columns
    ]
    return pa.Table.from_arrays(list(columns), names=list(frame.columns))


def _column_values(series: pd.Series, kind: str):
    if kind == "timestamp":
        return pd.to_datetime(series, utc=True).dt.as_unit("us")
    if kind == "string":
        return series.astype(object).where(series.notna(), None)
    if kind == "int64":
        return series.astype("Int64").astype(object).where(series.notna(), None)
    return series.astype("float64")
