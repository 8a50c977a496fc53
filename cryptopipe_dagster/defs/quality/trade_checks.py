"""trade_candles_match_rest_candles: live trades, rolled up to 1m by dbt, agree with the exchange's
own 1m candles (lib/quality/reconcile.py states which minutes are compared and the tolerance).

Runs in trade_reconciliation_job (on demand, from the demo, or on its schedule), not in every
micro-batch run: a micro-batch must stay sub-second, the reconciliation scans a day of minutes.
"""

import dagster as dg
import pandas as pd

from cryptopipe_dagster.defs.quality.candle_checks import markdown_table, table_schema_result
from cryptopipe_dagster.defs.resources import WarehouseResource
from cryptopipe_dagster.defs.streaming.assets import raw_trades
from cryptopipe_dagster.lib.edge.schemas import TradeSchema
from cryptopipe_dagster.lib.quality.reconcile import (
    PRICE_TOLERANCE,
    TRADE_CANDLES,
    VOLUME_TOLERANCE,
    reconcile_trade_candles,
    summarize,
)
from cryptopipe_dagster.lib.quality.reconcile_gaps import record_mismatch_gaps

LOOKBACK = pd.Timedelta(days=1)  # of event time, back from the newest trade


@dg.asset_check(
    asset=raw_trades,
    name="trade_candles_match_rest_candles",
    description="1m candles built from collected trades (dbt int_trade_candles_1m) equal the exchange's "
    f"1m candles in raw.candles (prices within {PRICE_TOLERANCE:g}, volume within {VOLUME_TOLERANCE:g} "
    "relative) for every minute both cover in the last day of trades; mismatched minutes listed.",
)
def trade_candles_match_rest_candles(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    warehouse = warehouse.get_warehouse()  # the resource opens the configured warehouse
    try:
        newest = warehouse.newest_trade_ts()
        compared = reconcile_trade_candles(
            warehouse, (newest if newest is not None else pd.Timestamp.now(tz="UTC")) - LOOKBACK
        )
    except Exception as error:  # noqa: BLE001 - the dbt view may not exist yet: say so in the UI
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"could not reconcile ({type(error).__name__}); build {TRADE_CANDLES} with dbt first",
            metadata={"error": str(error)[:500]},
        )
    mismatches = compared[compared["mismatch"].notna()]
    summary = summarize(compared)
    # Mismatched spans go to the gap ledger (ops.gaps): missing 1m candles are repaired there.
    gaps_recorded = record_mismatch_gaps(warehouse, compared, pd.Timestamp.now(tz="UTC"))
    return dg.AssetCheckResult(
        passed=mismatches.empty,
        metadata={
            "minutes_compared": len(compared),
            "minutes_mismatched": len(mismatches),
            "gaps_recorded": gaps_recorded,
            "by_market": dg.MetadataValue.md(markdown_table(summary)),
            "mismatched_minutes": dg.MetadataValue.md(
                markdown_table(
                    mismatches[
                        [
                            "exchange",
                            "symbol",
                            "minute",
                            "mismatch",
                            "trade_open",
                            "rest_open",
                            "trade_close",
                            "rest_close",
                            "trade_volume",
                            "rest_volume",
                        ]
                    ]
                )
            ),
        },
    )


TRADES_SCHEMA = "trades_match_schema"


@dg.asset_check(
    asset=raw_trades,
    name=TRADES_SCHEMA,
    blocking=True,
    description="raw.trades' stored columns and types (the warehouse catalog) equal its contract (the "
    "table spec from TradeSchema): no column missing, retyped or unexpected. Blocks downstream dbt. "
    "(Rows are validated against TradeSchema at the edge, before they are published.)",
)
def trades_match_schema(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    store = warehouse.get_warehouse()  # the resource opens the configured warehouse
    return table_schema_result(TRADES_SCHEMA, store, "raw.trades", None, TradeSchema)


trade_reconciliation_job = dg.define_asset_job(
    "trade_reconciliation_job",
    selection=dg.AssetSelection.checks(trade_candles_match_rest_candles),
    description="Reconcile trade-built 1m candles with the exchanges' 1m candles (check on raw/trades).",
)

trade_reconciliation_schedule = dg.ScheduleDefinition(
    job=trade_reconciliation_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every 15 minutes while the live path runs (turn on in the UI).",
)
