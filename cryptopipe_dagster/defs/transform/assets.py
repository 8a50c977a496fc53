"""dbt models as Dagster assets (dagster-dbt), partitioned like raw/candles.

Each run passes its partition window and exchanges as dbt vars, so an incremental model reads only
that window plus its indicator lookback; dbt tests surface as asset checks.

The models keep themselves up to date (declarative automation): a raw/candles partition that
changes outside a run that also builds the models (live 1m candles loaded by market_data_sensor, a
backfill of raw/candles alone, a gap repair) gets its models rebuilt by marts_automation_sensor, in
one run (or one backfill of many partitions, after the backfill policy).
"""

import os
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from cryptopipe_dagster.defs.historical.partitions import (
    backfill_policy,
    daily_exchange_partitions,
    exchanges_in_run,
)
from cryptopipe_dagster.lib.settings import PACKAGE_DIR, load_settings
from cryptopipe_dagster.lib.transform.dbt_vars import dbt_window_vars

DBT_PROJECT_DIR = PACKAGE_DIR.parent / "dbt_project"
# The dbt installed beside this Python, whether or not the venv's bin/ is on PATH.
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")
_settings = load_settings()
# profiles.yml reads the DuckDB path from the environment; dbt runs as a child process.
os.environ.setdefault("CRYPTOPIPE_DUCKDB_PATH", str(_settings.duckdb_path))
# dagster-dbt's manifest preparer looks dbt up on PATH; the venv's bin/ is not on it when the
# venv's python is run directly (tests, `make`), so put it first.
if str(Path(DBT_EXECUTABLE).parent) not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join([str(Path(DBT_EXECUTABLE).parent), os.environ.get("PATH", "")])

# profiles.yml: target `local` is dbt-duckdb, `prod` is dbt-bigquery; the warehouse picks it.
DBT_TARGET = "prod" if _settings.warehouse == "bigquery" else "local"
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target=DBT_TARGET)
if not dbt_project.manifest_path.exists():
    # A fresh clone has no target/manifest.json: parse once (offline, a few seconds).
    dbt_project.preparer.prepare(dbt_project)
dbt_project.prepare_if_dev()


class CryptopipeDbtTranslator(DagsterDbtTranslator):
    """Models keyed by schema (marts/ohlcv_1h); the raw source is the ingestion asset raw/candles."""

    def get_asset_key(self, dbt_resource_props) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(["raw", dbt_resource_props["name"]])
        schema = dbt_resource_props.get("schema") or "default"
        # On BigQuery every dataset carries CRYPTOPIPE_BQ_DATASET_PREFIX; asset keys stay logical.
        prefix = _settings.bq_dataset_prefix
        if prefix and schema.startswith(prefix):
            schema = schema.removeprefix(prefix)
        return dg.AssetKey([schema, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props) -> str | None:
        return "transform"

    def get_automation_condition(self, dbt_resource_props) -> dg.AutomationCondition | None:
        return REBUILD_WHEN_CANDLES_CHANGE


# True for a partition whose upstream changed since it was last requested or built: raw/candles
# (the runless events market_data_sensor reports, a raw-only backfill) or a model requested on the
# same tick, so the whole chain of views and marts goes in one run. raw/trades is ignored: it is
# unpartitioned, so each of its updates (every few seconds) would flag every day of history; the
# trade-built candles are views, current without a rebuild. Nothing starts while a run of the
# partition or of its upstream is still going, and a run that built raw/candles and the models
# together (executed_with_root_target) triggers nothing.
REBUILD_WHEN_CANDLES_CHANGE = (
    dg.AutomationCondition.any_deps_updated()
    .ignore(dg.AssetSelection.assets(dg.AssetKey(["raw", "trades"])))
    .since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("rebuild when raw candles change")


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=CryptopipeDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    ),
    partitions_def=daily_exchange_partitions,
    backfill_policy=backfill_policy,
)
def cryptopipe_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    window = context.partition_time_window
    dbt_vars = dbt_window_vars(window.start, window.end, exchanges_in_run(context.partition_keys))
    yield from dbt.cli(["build", "--vars", dbt_vars], context=context).stream()


# Running by default (also under `make dev`): the marts follow the raw candles without an operator.
marts_automation_sensor = dg.AutomationConditionSensorDefinition(
    "marts_automation_sensor",
    target=dg.AssetSelection.assets(cryptopipe_dbt_models),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
    description="Rebuilds the dbt models of every raw/candles partition that changed outside a run "
    "that built them (live candles, raw-only backfills, gap repairs).",
)


transform_job = dg.define_asset_job(
    "transform_job",
    selection=dg.AssetSelection.assets(cryptopipe_dbt_models),
    description="dbt build (rollups, indicators, tests) for a range of days of one exchange.",
)


def dbt_resource() -> DbtCliResource:
    """The dbt CLI resource for this project."""
    return DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)
