"""raw/candles: historical OHLCV over REST (ccxt) into the warehouse, one run per (days, exchange)."""

import time

import dagster as dg
import pandas as pd

from cryptopipe_dagster.defs.historical.partitions import (
    backfill_policy,
    daily_exchange_partitions,
    exchanges_in_run,
)
from cryptopipe_dagster.defs.quality import candle_checks, drift_checks
from cryptopipe_dagster.defs.resources import WAREHOUSE_KIND, ExchangeResource, WarehouseResource
from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.historical.candle_backfill import (
    BackfillStats,
    BackfillTarget,
    backfill_candles,
    exchange_now,
)
from cryptopipe_dagster.lib.markets_config import validate_symbols, validate_timeframes
from cryptopipe_dagster.lib.progress import ProgressReporter


class CandleBackfillConfig(dg.Config):
    """Run config; empty lists mean every symbol / timeframe configured for the exchange."""

    symbols: list[str] = []
    timeframes: list[str] = []
    refetch: bool = False


def _targets(
    exchange: str, config: CandleBackfillConfig, exchanges: ExchangeResource, window: dg.TimeWindow
) -> list[BackfillTarget]:
    configured = exchanges.markets.markets_of(exchange)
    symbols = validate_symbols(config.symbols, "run config") if config.symbols else configured.symbols
    timeframes = (
        validate_timeframes(config.timeframes, "run config") if config.timeframes else configured.timeframes
    )
    start, end = pd.Timestamp(window.start).tz_convert("UTC"), pd.Timestamp(window.end).tz_convert("UTC")
    return [
        BackfillTarget(exchange, symbol, timeframe, start, end)
        for symbol in symbols
        for timeframe in timeframes
    ]


def _metadata(runs: list[BackfillStats], latency_ms: float) -> dict:
    per_market = pd.DataFrame(
        [
            {
                "exchange": s.target.exchange,
                "symbol": s.target.symbol,
                "timeframe": s.target.timeframe,
                "inserted": s.inserted,
                "updated": s.updated,
                "already_present": s.already_present,
                "duplicates_dropped": s.duplicates_dropped,
                "dead_letters": s.dead_letters,
                "incomplete_dropped": s.incomplete_dropped,
                "gap_candles_repaired": s.gap_candles_repaired,
                "requests": s.requests,
                "resumed_from": s.resumed_from,
                "skipped_complete": s.skipped_complete,
            }
            for s in runs
        ]
    )
    total = per_market.select_dtypes("number").sum() if not per_market.empty else {}
    rows = int(total.get("inserted", 0) + total.get("updated", 0))
    return {
        "rows": rows,
        "inserted": int(total.get("inserted", 0)),
        "updated": int(total.get("updated", 0)),
        "already_present": int(total.get("already_present", 0)),
        "duplicates_dropped": int(total.get("duplicates_dropped", 0)),
        "dead_letters": int(total.get("dead_letters", 0)),
        "incomplete_dropped": int(total.get("incomplete_dropped", 0)),
        "gap_candles_repaired": int(total.get("gap_candles_repaired", 0)),
        "requests": int(total.get("requests", 0)),
        "latency_ms": round(latency_ms, 1),
        "rows_per_s": round(rows / (latency_ms / 1000), 1) if latency_ms > 0 else 0.0,
        "per_market": dg.MetadataValue.md(candle_checks.markdown_table(per_market)),
    }


@dg.asset(
    key=["raw", "candles"],
    group_name="historical",
    partitions_def=daily_exchange_partitions,
    backfill_policy=backfill_policy,
    kinds={"ccxt", WAREHOUSE_KIND, "pandas"},
    description="OHLCV candles over REST from every configured market, normalized to the canonical "
    "schema, validated, deduplicated and MERGEd into raw.candles (partitioned by candle_date).",
    check_specs=[
        dg.AssetCheckSpec(
            name, asset=["raw", "candles"], description=text, blocking=name in candle_checks.BLOCKING
        )
        for name, text in candle_checks.CHECK_SPECS_DESCRIPTIONS.items()
    ]
    + [
        dg.AssetCheckSpec(
            drift_checks.CANDLES_PAYLOAD_STABLE,
            asset=["raw", "candles"],
            description=drift_checks.CANDLES_DESCRIPTION,
        )
    ],
)
def raw_candles(
    context: dg.AssetExecutionContext,
    config: CandleBackfillConfig,
    warehouse: WarehouseResource,
    exchanges: ExchangeResource,
):
    started = time.monotonic()
    run_started = pd.Timestamp.now(tz="UTC")  # payload shapes first seen from here on are this run's
    window = context.partition_time_window
    warehouse = warehouse.get_warehouse()  # the resource opens the configured warehouse
    runs: list[BackfillStats] = []
    nows: list[pd.Timestamp] = []
    run_exchanges = exchanges_in_run(context.partition_keys)
    for exchange_id in run_exchanges:
        client = exchanges.client(exchange_id)
        now = exchange_now(client, exchanges.retry_policy())
        nows.append(now)
        try:
            targets = _targets(exchange_id, config, exchanges, window)
        except ConfigError as error:  # a user error: one clear line in the UI, not a traceback
            raise dg.Failure(description=str(error), allow_retries=False) from error
        reporter = ProgressReporter(context.log, targets)
        for target in targets:
            runs.append(
                backfill_candles(
                    client,
                    warehouse,
                    target,
                    now=now,
                    run_id=context.run.run_id,
                    refetch=config.refetch,
                    progress=reporter.update,
                    retry=exchanges.retry_policy(),
                )
            )
    start, end = pd.Timestamp(window.start).tz_convert("UTC"), pd.Timestamp(window.end).tz_convert("UTC")
    now = min(nows) if nows else pd.Timestamp.now(tz="UTC")
    yield dg.MaterializeResult(metadata=_metadata(runs, (time.monotonic() - started) * 1000))
    yield candle_checks.completeness_check(warehouse, runs, now)
    yield candle_checks.unique_keys_check(warehouse, start, end)
    yield candle_checks.dead_letters_check(runs)
    yield candle_checks.schema_check(warehouse, run_exchanges, start, end)
    yield drift_checks.payload_drift_result(
        drift_checks.CANDLES_PAYLOAD_STABLE,
        warehouse,
        drift_checks.CANDLE_ENDPOINTS,
        since=run_started,
        exchanges=run_exchanges,
    )


historical_candles_job = dg.define_asset_job(
    "historical_candles_job",
    selection=[raw_candles],
    description="Backfill or refresh raw.candles for a range of days of one exchange.",
)
