"""Live data in the asset graph: raw/trades, live candles in raw/candles, and their catch-up jobs.

market_data_sensor loads continuously and reports these assets' materializations as runless events
(sensors.py). Materializing them here is the manual lever: load whatever is still waiting in
ops.landed_batches (after the sensor was stopped mid-way, or a tick ran out of time), with the same
code the sensor runs (lib/streaming/loader.py).
"""

import time
from collections.abc import Iterable

import dagster as dg
import numpy as np

from cryptopipe_dagster.defs.historical.partitions import (
    DATE_DIMENSION,
    EXCHANGE_DIMENSION,
    daily_exchange_partitions,
)
from cryptopipe_dagster.defs.quality.candle_checks import partition_check_evaluations
from cryptopipe_dagster.defs.resources import WAREHOUSE_KIND, WarehouseResource
from cryptopipe_dagster.lib.streaming.loader import LoadCounts, load_pending
from cryptopipe_dagster.lib.warehouse.base import Warehouse

RAW_TRADES_OP = "raw__trades"
LIVE_CANDLES_OP = "load_live_candles"
LIVE_BATCHES_CHECK = "live_batches_valid"


def load_all_pending(warehouse: Warehouse, kind: str) -> LoadCounts:
    """Load every landed batch of `kind` (oldest first) until none is waiting."""
    landing, total = warehouse.landing(), LoadCounts()
    while True:
        counts = load_pending(landing, warehouse, kind)
        if not counts.batches:
            return total
        total.add(counts)


def loaded_metadata(counts: LoadCounts) -> dict[str, float]:
    """Counts plus the publish -> load latency of the loaded batches (p50/p95/max, ms)."""
    latency = np.asarray(counts.publish_to_load_ms, dtype=float)
    percentiles = (
        {
            "publish_to_load_p50_ms": round(float(np.percentile(latency, 50)), 1),
            "publish_to_load_p95_ms": round(float(np.percentile(latency, 95)), 1),
            "publish_to_load_max_ms": round(float(latency.max()), 1),
        }
        if latency.size
        else {}
    )
    return {**counts.metadata(), **percentiles}


def live_batches_check(counts: LoadCounts) -> dg.AssetCheckResult:
    """Passes when every loaded record was valid; rejects are in ops.dead_letters (warning)."""
    by_reason = dict(sorted(counts.dead_letters_by_reason.items()))
    return dg.AssetCheckResult(
        check_name=LIVE_BATCHES_CHECK,
        passed=counts.dead_letters == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "every record of the loaded batches was valid"
            if counts.dead_letters == 0
            else f"{counts.dead_letters} record(s) dead-lettered: {by_reason}"
        ),
        metadata={"records_in": counts.records_in, "dead_letters": counts.dead_letters, **by_reason},
    )


@dg.asset(
    key=["raw", "trades"],
    group_name="streaming",
    kinds={"pubsub", WAREHOUSE_KIND},
    check_specs=[
        dg.AssetCheckSpec(
            LIVE_BATCHES_CHECK,
            asset=["raw", "trades"],
            description="Every record of the loaded micro-batches passed TradeSchema; rejects are "
            "dead-lettered with their reason (warning).",
        )
    ],
    description="Trades from the collectors' Pub/Sub micro-batches, validated against TradeSchema, "
    "deduplicated and MERGEd into raw.trades on (exchange, symbol, trade_id). market_data_sensor loads "
    "them continuously (runless materializations); materializing here loads what is still waiting.",
)
def raw_trades(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    started = time.monotonic()
    counts = load_all_pending(warehouse.get_warehouse(), "trades")
    metadata = {**loaded_metadata(counts), "latency_ms": round((time.monotonic() - started) * 1000, 1)}
    context.log.info("catch_up_loaded %s", metadata)
    yield dg.MaterializeResult(metadata=metadata)
    yield live_batches_check(counts)


microbatch_job = dg.define_asset_job(
    "microbatch_job",
    # Its own check, not the reconciliation (defs/quality/trade_checks.py): a catch-up stays quick.
    selection=dg.AssetSelection.assets(raw_trades).without_checks()
    | dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey(["raw", "trades"]), LIVE_BATCHES_CHECK)),
    description="Load the trade batches still waiting in ops.landed_batches (market_data_sensor "
    "does this continuously; this is the manual catch-up).",
)


def candle_partitions(touched: Iterable[tuple[str, str]]) -> list[str]:
    """The raw/candles partition keys (date|exchange) of (exchange, day) pairs, known ones only."""
    known = set(daily_exchange_partitions.get_partition_keys())
    keys = {
        str(dg.MultiPartitionKey({DATE_DIMENSION: day, EXCHANGE_DIMENSION: exchange}))
        for exchange, day in touched
    }
    return sorted(keys & known)


@dg.op(
    name=LIVE_CANDLES_OP,
    description="MERGE the live 1m candle batches still waiting in ops.landed_batches into raw.candles; "
    "materializes the raw/candles partitions they touch.",
)
def load_live_candles(context: dg.OpExecutionContext, warehouse: WarehouseResource):
    started = time.monotonic()
    store = warehouse.get_warehouse()
    counts = load_all_pending(store, "candles")
    metadata = {**loaded_metadata(counts), "latency_ms": round((time.monotonic() - started) * 1000, 1)}
    context.log.info("live_candles_loaded %s", metadata)
    partitions = candle_partitions(counts.touched)
    for key in partitions:
        yield dg.AssetMaterialization(
            asset_key=["raw", "candles"],
            partition=key,
            description="live 1m candles from the collector (source=ws/rest)",
            metadata={"rows_in_run": counts.rows, "source": "collector"},
        )
        yield from partition_check_evaluations(store, key)
    yield dg.Output(None, metadata={**metadata, "partitions": len(partitions)})


@dg.job(
    description="Load the live 1m candle batches still waiting in ops.landed_batches into raw.candles "
    "(market_data_sensor does this continuously; this is the manual catch-up)."
)
def live_candles_job():
    load_live_candles()
