"""The anomaly checks under Dagster: WARN results with the offending bars, rows in ops.anomalies."""

import dagster as dg
import pandas as pd

from cryptopipe_dagster.defs.quality.anomaly_checks import CHECK_DESCRIPTIONS, raw_candles_anomalies
from cryptopipe_dagster.defs.resources import WarehouseResource
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse
from cryptopipe_dagster.simulator.recordings import load_recordings


def test_checks_warn_on_the_recorded_moves_and_fill_ops_anomalies(tmp_path, data_dir):
    path = tmp_path / "warehouse.duckdb"
    store = DuckDBWarehouse(path)
    store.ensure_schema()
    recorded = load_recordings(data_dir)
    candles = recorded[recorded["exchange"] == "bitstamp"][
        ["exchange", "symbol", "timeframe", "ts", "open", "high", "low", "close", "volume"]
    ].assign(source="recording", ingested_at=pd.Timestamp("2026-01-01", tz="UTC"))
    store.merge_candles(
        candles.astype({c: "string[pyarrow]" for c in ("exchange", "symbol", "timeframe", "source")})
    )

    result = dg.materialize(
        [raw_candles_anomalies],
        resources={"warehouse": WarehouseResource(duckdb_path=str(path))},
        selection=dg.AssetSelection.checks(raw_candles_anomalies),
    )
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == set(CHECK_DESCRIPTIONS)
    assert all(e.severity == dg.AssetCheckSeverity.WARN for e in evaluations.values())
    jumps = evaluations["candles_price_jumps"]
    # Bitstamp's last 400 days (to 2020-01-17): 2019-04-02 (+18%) and the 2019-05-17 wick (-22%).
    assert not jumps.passed and jumps.metadata["anomalies"].value == 2
    assert "2019-05-17" in jumps.metadata["offending_bars"].value
    assert evaluations["candles_stale_feed"].metadata["anomalies"].value == 3  # 2020 data, judged today
    stored = DuckDBWarehouse(path).anomalies(kind="price_jump")
    assert len(stored) == 2
