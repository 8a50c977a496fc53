"""dg.materialize of raw/candles partitions into each warehouse (a temp DuckDB file, the BigQuery
emulator), against the simulator."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from cryptopipe_dagster.defs.historical.assets import raw_candles
from cryptopipe_dagster.defs.historical.partitions import partition_range_tags
from cryptopipe_dagster.defs.quality import candle_checks
from cryptopipe_dagster.defs.resources import ExchangeResource, warehouse_resource
from cryptopipe_dagster.lib.settings import load_settings
from cryptopipe_dagster.lib.warehouse import open_warehouse

OP = "raw__candles"


@pytest.fixture(params=["duckdb", "bigquery"])
def settings(request, cryptopipe_home, monkeypatch, tmp_path):
    if request.param == "bigquery":
        return request.getfixturevalue("bigquery_env")
    monkeypatch.setenv("CRYPTOPIPE_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    return load_settings()


@pytest.fixture
def resources(simulator, settings):
    return {
        "warehouse": warehouse_resource(settings),
        "exchanges": ExchangeResource(
            exchange_api_url=simulator.base_url, rate_limit=False, base_delay_s=0.01, max_delay_s=0.05
        ),
    }


def checks_by_name(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


def test_range_run_over_the_outage_reports_the_gap(resources, tmp_path):
    result = dg.materialize(
        [raw_candles],
        resources=resources,
        tags=partition_range_tags("2019-03-15", "2019-04-05", "bitstamp"),
        run_config={"ops": {OP: {"config": {"timeframes": ["1d"]}}}},
        raise_on_error=False,  # the open outage gap fails the blocking completeness check
    )
    assert not result.success
    materializations = result.asset_materializations_for_node(OP)
    assert len(materializations) == 22  # one per day partition of the range
    metadata = materializations[0].metadata
    assert metadata["rows"].value == 30  # 3 markets x (22 days - 12 outage days)
    for key in ("duplicates_dropped", "dead_letters", "latency_ms", "rows_per_s"):
        assert key in metadata
    checks = checks_by_name(result)
    completeness = checks[candle_checks.COMPLETENESS]
    # The outage is an open gap in the ledger until repeated "no data" answers confirm it: it fails.
    assert not completeness.passed and completeness.severity == dg.AssetCheckSeverity.ERROR
    assert completeness.metadata["missing_candles"].value == 36
    assert completeness.metadata["open_gaps"].value == 3  # one span per market
    assert "2019-03-20" in completeness.metadata["gaps"].value
    assert checks[candle_checks.UNIQUE_KEYS].passed
    assert checks[candle_checks.DEAD_LETTERS].passed
    assert checks[candle_checks.SCHEMA].passed


def test_single_partition_loads_1m_and_1h_and_rerun_changes_nothing(resources, settings):
    partition = dg.MultiPartitionKey({"date": "2019-01-05", "exchange": "coinbaseexchange"})
    first = dg.materialize([raw_candles], resources=resources, partition_key=partition)
    again = dg.materialize(
        [raw_candles],
        resources=resources,
        partition_key=partition,
        run_config={"ops": {OP: {"config": {"refetch": True}}}},
    )
    assert first.success and again.success
    assert first.asset_materializations_for_node(OP)[0].metadata["rows"].value == 1440 + 24
    assert again.asset_materializations_for_node(OP)[0].metadata["rows"].value == 0
    assert all(evaluation.passed for evaluation in checks_by_name(first).values())
    day = pd.Timestamp("2019-01-05", tz="UTC")
    counts = open_warehouse(settings).market_summary("raw.candles", day, day)
    assert counts[["timeframe", "candles"]].to_dict("list") == {
        "timeframe": ["1h", "1m"],
        "candles": [24, 1440],
    }


def test_bad_symbol_in_run_config_fails_with_the_value_named(resources):
    partition = dg.MultiPartitionKey({"date": "2019-01-05", "exchange": "bitstamp"})
    result = dg.materialize(
        [raw_candles],
        resources=resources,
        partition_key=partition,
        raise_on_error=False,
        run_config={"ops": {OP: {"config": {"symbols": ["BTC-USD"]}}}},
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "invalid symbol 'BTC-USD'" in failure.step_failure_data.error.to_string()
