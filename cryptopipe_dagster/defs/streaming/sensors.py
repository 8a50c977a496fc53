"""market_data_sensor: the live loader. Each tick pulls, lands, acks and loads for a bounded time.

No run per micro-batch: launching a run costs a process (or a pod) and seconds, which at live rates
piles up into a run queue that never drains. The tick loads in the sensor's own process
(lib/streaming/stream_loader.py) and reports what it loaded as runless asset events, every 5 s
and at the tick's end: a materialization of raw/trades (rows, duplicates, dead letters, publish ->
load latency), one of each raw/candles partition live candles touched, and the `live_batches_valid`
check. Runs stay for bounded work (backfills, dbt, reconciliation, the manual catch-up loads in assets.py).
"""

import time

import dagster as dg

from cryptopipe_dagster.defs.quality.candle_checks import partition_check_evaluations
from cryptopipe_dagster.defs.resources import WarehouseResource
from cryptopipe_dagster.defs.streaming.assets import (
    LIVE_BATCHES_CHECK,
    candle_partitions,
    live_batches_check,
    loaded_metadata,
)
from cryptopipe_dagster.defs.streaming.resources import LOADER_LOCK_WAIT_S, PubSubResource
from cryptopipe_dagster.lib.errors import WarehouseBusy
from cryptopipe_dagster.lib.streaming.loader import KINDS, LoadCounts
from cryptopipe_dagster.lib.streaming.stream_loader import StreamLoader, TickReport
from cryptopipe_dagster.lib.warehouse import Warehouse

RAW_TRADES = dg.AssetKey(["raw", "trades"])
REPORT_INTERVAL_S = 5.0
RAW_CANDLES = dg.AssetKey(["raw", "candles"])


def tick_asset_events(
    report: TickReport, seconds: float, warehouse: Warehouse
) -> list[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    """The runless events for what `report` holds: what was loaded over the last `seconds`, whether
    every record passed, and the candle checks of each raw/candles partition live candles touched."""
    events: list[dg.AssetMaterialization | dg.AssetCheckEvaluation] = []
    trades = report.loads["trades"]
    if trades.batches:
        metadata = {**loaded_metadata(trades), "seconds": round(seconds, 1)}
        events.append(
            dg.AssetMaterialization(
                asset_key=RAW_TRADES,
                description="live trades loaded by market_data_sensor",
                metadata=metadata,
            )
        )
        check = live_batches_check(trades)
        events.append(
            dg.AssetCheckEvaluation(
                asset_key=RAW_TRADES,
                check_name=LIVE_BATCHES_CHECK,
                passed=check.passed,
                severity=check.severity,
                description=check.description,
                metadata=check.metadata,
            )
        )
    candles = report.loads["candles"]
    for partition in candle_partitions(candles.touched):
        events.append(
            dg.AssetMaterialization(
                asset_key=RAW_CANDLES,
                partition=partition,
                description="live 1m candles from the collector, loaded by market_data_sensor",
                metadata={"rows_in_tick": candles.rows, "source": "collector"},
            )
        )
        events.extend(partition_check_evaluations(warehouse, partition, runless=True))
    return events


class LoadReporter:
    """Reports what the loop loaded as runless events every `interval_s` while the tick runs (the
    rest goes back with the tick's result). A tick cut short, by a daemon restart or a replaced code
    server, then loses at most that much of the UI's history; the rows are durable either way."""

    def __init__(
        self, instance: dg.DagsterInstance, warehouse: Warehouse, interval_s: float = REPORT_INTERVAL_S
    ) -> None:
        self.instance, self.warehouse, self.interval_s = instance, warehouse, interval_s
        self._since = time.monotonic()
        self.rows = 0

    def __call__(self, report: TickReport) -> None:
        """StreamLoader's per-iteration hook."""
        if time.monotonic() - self._since >= self.interval_s:
            for event in self.take(report):
                self.instance.report_runless_asset_event(event)

    def take(self, report: TickReport) -> list[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
        """The events for what was loaded since the last take; the report starts counting afresh."""
        events = tick_asset_events(report, time.monotonic() - self._since, self.warehouse)
        self.rows += report.rows
        report.loads = {kind: LoadCounts() for kind in KINDS}
        report.publish_to_load_ms = []
        self._since = time.monotonic()
        return events


@dg.sensor(
    # Ticks run back to back: each one loads for PubSubResource.tick_budget_s seconds.
    minimum_interval_seconds=1,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="The live loader: pulls market-data micro-batches from Pub/Sub, lands them in "
    "ops.landed_batches, acks, and MERGEs them into raw.trades / raw.candles within the tick; reports "
    "raw/trades and raw/candles materializations and the live_batches_valid check as runless events.",
)
def market_data_sensor(
    context: dg.SensorEvaluationContext, pubsub: PubSubResource, warehouse: WarehouseResource
):
    try:
        # A tick must end inside Dagster's 60 s: wait less for a file another process holds.
        warehouse = warehouse.get_warehouse(lock_wait_s=LOADER_LOCK_WAIT_S)
        landing = warehouse.landing()
        if warehouse.is_busy():  # don't pull what could not be landed: every redelivery is an attempt
            return dg.SkipReason("warehouse busy (another process holds the DuckDB file); nothing pulled")
    except WarehouseBusy as error:
        return dg.SkipReason(f"warehouse busy: {error}")
    with pubsub.subscriber() as subscriber:
        loader = StreamLoader(
            subscriber,
            pubsub.subscription_path,
            landing,
            warehouse,
            max_messages=pubsub.max_messages,
            pull_wait_s=pubsub.pull_wait_s,
            load_interval_s=warehouse.live_load_interval_s,
        )
        reporter = LoadReporter(context.instance, warehouse)
        report = loader.run(pubsub.tick_budget_s, on_iteration=reporter)
    events = reporter.take(report)
    context.log.info(
        "market_data_sensor %s rows=%d iterations=%d seconds=%.1f stopped_early=%s",
        report.counters(),
        reporter.rows,
        report.iterations,
        report.seconds,
        report.stopped_early,
    )
    if not events:
        return dg.SkipReason(
            report.stopped_early or f"nothing to load ({report.pulled} messages, {report.seconds:.0f}s)"
        )
    return dg.SensorResult(asset_events=events)
