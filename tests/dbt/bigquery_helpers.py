"""Run the dbt project's `prod` target (dbt-bigquery) against the BigQuery emulator.

The raw tables are created and filled by the pipeline's own BigQueryWarehouse (lib/warehouse/
bigquery.py): day partitions on candle_date / trade_date, clustering, require_partition_filter,
rows merged as ingestion merges them, so dbt reads exactly what production would hold.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from google.api_core.exceptions import NotFound

from cryptopipe_dagster.lib.settings import Settings
from cryptopipe_dagster.lib.warehouse.bigquery import BigQueryWarehouse
from cryptopipe_dagster.lib.warehouse.bigquery_client import bigquery_client, dataset_name
from tests.dbt.helpers import run_dbt


@dataclass
class BigQueryDbtRun:
    """dbt's `prod` target on the datasets of `settings` (its prefix), with its own target/log dirs."""

    settings: Settings
    work_dir: Path | None = None  # dbt's target/ and logs/ (only `dbt` needs it)

    def __post_init__(self) -> None:
        self.client = bigquery_client(self.settings)

    def dbt(self, *args: str, dbt_vars: dict | None = None) -> subprocess.CompletedProcess:
        """`dbt <args> --target prod`; fails the test with dbt's output if dbt fails."""
        assert self.work_dir is not None, "BigQueryDbtRun needs a work_dir to run dbt"
        # The CRYPTOPIPE_* variables of the settings are in os.environ (the bigquery_env fixture).
        env = {**os.environ, "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        return run_dbt(args, "prod", self.work_dir, env, dbt_vars)

    def table_id(self, dataset: str, table: str) -> str:
        """project.<prefix><dataset>.table"""
        return f"{self.settings.gcp_project}.{dataset_name(self.settings.bq_dataset_prefix, dataset)}.{table}"

    def warehouse(self) -> BigQueryWarehouse:
        """The pipeline's warehouse on the same datasets (creates raw/ops tables on first write)."""
        warehouse = BigQueryWarehouse.from_settings(self.settings)
        warehouse.ensure_schema()
        return warehouse

    def query(self, sql: str) -> pd.DataFrame:
        """A query's rows as a DataFrame (REST paging: the emulator's Storage API is not configured)."""
        return self.client.query(sql).result().to_arrow(create_bqstorage_client=False).to_pandas()

    def manifest(self) -> dict:
        """target/manifest.json of the last dbt command."""
        assert self.work_dir is not None
        return json.loads((self.work_dir / "target" / "manifest.json").read_text())

    def mart(self, name: str) -> pd.DataFrame:
        """A mart's rows ordered by key, ts as UTC timestamps."""
        frame = self.query(f"select * from `{self.table_id('marts', name)}` order by exchange, symbol, ts")
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        return frame.reset_index(drop=True)

    def dataset_exists(self, dataset: str) -> bool:
        try:
            self.client.get_dataset(f"{self.settings.gcp_project}.{dataset}")
        except NotFound:
            return False
        return True
