"""Evaluate market_data_sensor and execute its run requests in this process (demo, tests, CLI).

What the Dagster daemon does for a running sensor, minus the daemon: one tick, then each requested
run unless a run with the same run key exists on the instance (the daemon's rule), tagged as the
daemon tags it, so the runs show in the UI as the sensor's. The sensor's cursor is kept by the
caller, and the run-key check is what makes a lost cursor harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from cryptopipe_dagster.defs.streaming.assets import live_candles_job, microbatch_job, raw_trades
from cryptopipe_dagster.defs.streaming.sensors import market_data_sensor

RUN_KEY_TAG = "dagster/run_key"
QUIET_LOGGERS = {"console": {"config": {"log_level": "WARNING"}}}  # events still reach the instance
SENSOR_TAG = "dagster/sensor_name"


@dataclass
class DrainResult:
    """One tick: runs executed, run keys skipped as already run, the new cursor and run metadata."""

    cursor: str | None
    executed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    rows: int = 0
    skip_reason: str | None = None


def run_key_exists(instance: dg.DagsterInstance, run_key: str) -> bool:
    """Whether the sensor already launched this run key."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key, SENSOR_TAG: market_data_sensor.name}), limit=1
    )
    return bool(runs)


def drain_once(instance: dg.DagsterInstance, resources: dict, cursor: str | None) -> DrainResult:
    """One sensor tick with `resources` (pubsub, warehouse), then its runs; returns the new cursor."""
    context = dg.build_sensor_context(cursor=cursor, instance=instance, resources=resources)
    outcome = DrainResult(cursor=cursor)
    for item in market_data_sensor(context) or []:
        if isinstance(item, dg.SkipReason):
            outcome.skip_reason = item.skip_message
            continue
        if run_key_exists(instance, item.run_key):
            outcome.skipped.append(item.run_key)
            continue
        result = _execute(instance, resources, item)
        (outcome.executed if result.success else outcome.failed).append(item.run_key)
        outcome.rows += _rows(result)
    outcome.cursor = context.cursor
    return outcome


def _execute(instance: dg.DagsterInstance, resources: dict, request: dg.RunRequest):
    # The real job definitions (their names show in the UI), bound to the caller's warehouse.
    definitions = dg.Definitions(
        assets=[raw_trades],
        jobs=[microbatch_job, live_candles_job],
        resources={"warehouse": resources["warehouse"]},
    )
    tags = {**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_TAG: market_data_sensor.name}
    return definitions.resolve_job_def(request.job_name).execute_in_process(
        run_config={**request.run_config, "loggers": QUIET_LOGGERS},
        instance=instance,
        tags=tags,
        raise_on_error=False,
    )


def _rows(result) -> int:
    total = 0
    for event in result.all_events:
        metadata = getattr(event.event_specific_data, "metadata", None) or {}
        value = metadata.get("rows")
        if value is not None and event.event_type_value in ("ASSET_MATERIALIZATION", "STEP_OUTPUT"):
            total += int(getattr(value, "value", value))
    return total
