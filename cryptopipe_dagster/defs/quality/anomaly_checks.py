"""Anomaly checks of raw.candles: price jumps, volume spikes, stuck, stale and diverging feeds.

Every check is a WARN (a real, violent move is data, not an error; nothing here blocks dbt): the
offending bars are listed in the check's metadata and MERGEd into ops.anomalies for analysts.
They read the trailing `lookback_days` of each timeframe back from the newest stored day
(config/anomalies.yaml), so the same check serves a live warehouse and a historical one.
"""

import dagster as dg
import pandas as pd

from cryptopipe_dagster.defs.quality.candle_checks import markdown_table
from cryptopipe_dagster.defs.resources import WarehouseResource
from cryptopipe_dagster.lib.quality.anomalies import KINDS, scan_warehouse
from cryptopipe_dagster.lib.quality.anomaly_config import load_anomaly_config

RAW_CANDLES = dg.AssetKey(["raw", "candles"])
CHECK_DESCRIPTIONS = {
    "candles_price_jumps": "No bar's return or wick is far outside the market's recent volatility "
    "(robust z vs the trailing median / MAD, threshold per timeframe).",
    "candles_volume_spikes": "No bar's volume is far above the market's recent volume "
    "(robust z of log volume).",
    "candles_stuck_feed": "No run of flat or zero-volume bars longer than is normal for the market.",
    "candles_stale_feed": "Every market's newest bar closed within its timeframe's freshness target.",
    "candles_cross_exchange_divergence": "The same pair on two exchanges stays within the configured "
    "basis points (flagged after N consecutive bars apart).",
}
CHECK_OF_KIND = dict(zip(KINDS, CHECK_DESCRIPTIONS, strict=True))


def anomaly_check_results(found: pd.DataFrame, recorded: int) -> list[dg.AssetCheckResult]:
    """One WARN result per detector, its offending bars as a markdown table."""
    results = []
    for kind, check_name in CHECK_OF_KIND.items():
        rows = found[found["kind"] == kind]
        per_market = rows.groupby(["exchange", "symbol", "timeframe"], observed=True).size()
        results.append(
            dg.AssetCheckResult(
                asset_key=RAW_CANDLES,
                check_name=check_name,
                passed=rows.empty,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "anomalies": len(rows),
                    "markets_flagged": len(per_market),
                    "rows_in_ops_anomalies": recorded,
                    "offending_bars": dg.MetadataValue.md(
                        markdown_table(rows.drop(columns="kind").sort_values("ts", ascending=False))
                    ),
                },
            )
        )
    return results


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(name, asset=RAW_CANDLES, description=text, blocking=False)
        for name, text in CHECK_DESCRIPTIONS.items()
    ],
    description="Anomaly detection over the trailing window of raw.candles; findings go to ops.anomalies.",
)
def raw_candles_anomalies(warehouse: WarehouseResource):
    store = warehouse.get_warehouse()  # the resource opens the configured warehouse
    found = scan_warehouse(store, load_anomaly_config(), pd.Timestamp.now(tz="UTC"))
    written = store.record_anomalies(found)
    yield from anomaly_check_results(found, written.inserted + written.updated + written.unchanged)


anomaly_checks_job = dg.define_asset_job(
    "anomaly_checks_job",
    selection=dg.AssetSelection.checks(raw_candles_anomalies),
    description="Run the anomaly checks of raw.candles (and record them in ops.anomalies).",
)
