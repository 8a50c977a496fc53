"""Payload schema drift as asset checks: a new shape of an exchange endpoint's payload (a field
new, missing or retyped vs its previous shape, from ops.payload_fingerprints) warns, with the diff
as a markdown table. A warning, not a block: the records that still parse were loaded and are
right; the ones that no longer parse are dead letters with reason schema_drift.
"""

import json

import dagster as dg
import pandas as pd

from cryptopipe_dagster.defs.quality.candle_checks import markdown_table
from cryptopipe_dagster.defs.resources import WarehouseResource
from cryptopipe_dagster.defs.streaming.assets import raw_trades
from cryptopipe_dagster.lib.warehouse import Warehouse

CANDLES_PAYLOAD_STABLE = "candles_payload_schema_stable"
TRADES_PAYLOAD_STABLE = "trades_payload_schema_stable"
CANDLE_ENDPOINTS = ("fetch_ohlcv", "watch_ohlcv")
TRADE_ENDPOINTS = ("fetch_trades", "watch_trades")
TRADES_LOOKBACK = pd.Timedelta(days=1)
CANDLES_DESCRIPTION = (
    "The payload shapes of the candle endpoints (fetch_ohlcv, watch_ohlcv) did not change during the "
    "run: a new, missing or retyped field (ops.payload_fingerprints) warns, with the diff listed."
)


def drift_rows(fingerprints: pd.DataFrame) -> pd.DataFrame:
    """One row per changed field of every fingerprint that has a diff."""
    changed = fingerprints[fingerprints["diff"].notna()]
    rows = [
        {
            "exchange": row.exchange,
            "endpoint": row.endpoint,
            **change,
            "first_seen": row.first_seen,
            "fingerprint": str(row.fingerprint)[:12],
        }
        for row in changed.itertuples(index=False)
        for change in json.loads(row.diff)
    ]
    columns = ["exchange", "endpoint", "change", "field", "was", "now", "first_seen", "fingerprint"]
    return pd.DataFrame(rows, columns=columns)


def payload_drift_result(
    check_name: str,
    warehouse: Warehouse,
    endpoints: tuple[str, ...],
    since: pd.Timestamp,
    exchanges: list[str] | None = None,
) -> dg.AssetCheckResult:
    """Warn when a shape with a diff was first seen at or after `since` on one of `endpoints`."""
    found = warehouse.payload_fingerprints(since=since)
    found = found[found["endpoint"].isin(endpoints)]
    if exchanges is not None:
        found = found[found["exchange"].isin(exchanges)]
    changes = drift_rows(found)
    drifted = changes[["exchange", "endpoint"]].drop_duplicates()
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=changes.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=None
        if changes.empty
        else f"payload shape changed on {len(drifted)} endpoint(s): "
        + ", ".join(f"{e} {p}" for e, p in drifted.itertuples(index=False)),
        metadata={
            "shapes_seen": len(found),
            "changed_fields": len(changes),
            "since": since.isoformat(),
            "diff": dg.MetadataValue.md(markdown_table(changes)),
        },
    )


@dg.asset_check(
    asset=raw_trades,
    name=TRADES_PAYLOAD_STABLE,
    description="The payload shapes of the trade endpoints (watch_trades, fetch_trades) did not change "
    "in the last day: a new, missing or retyped field (ops.payload_fingerprints) warns, with the diff.",
)
def trades_payload_schema_stable(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    store = warehouse.get_warehouse()  # the resource opens the configured warehouse
    since = pd.Timestamp.now(tz="UTC") - TRADES_LOOKBACK
    return payload_drift_result(TRADES_PAYLOAD_STABLE, store, TRADE_ENDPOINTS, since)
