"""dbt models as Dagster assets: lineage from the exchange to the indicators, dbt tests as checks."""

from __future__ import annotations

import dagster as dg
import pytest

from cryptopipe_dagster.defs.historical.partitions import partition_range_tags
from cryptopipe_dagster.defs.resources import ExchangeResource, WarehouseResource
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse

INDICATORS_1D = dg.AssetKey(["marts", "indicators_1d"])


@pytest.fixture(scope="module")
def definitions():
    from cryptopipe_dagster.definitions import defs

    return defs()


def test_lineage_runs_from_raw_candles_to_indicators(definitions):
    graph = definitions.get_repository_def().asset_graph
    upstream = graph.get(INDICATORS_1D).parent_keys
    assert dg.AssetKey(["marts", "ohlcv_1d"]) in upstream
    ancestors = dg.AssetSelection.assets(INDICATORS_1D).upstream().resolve(graph)
    assert dg.AssetKey(["raw", "candles"]) in ancestors
    assert (
        graph.get(INDICATORS_1D).partitions_def == graph.get(dg.AssetKey(["raw", "candles"])).partitions_def
    )
    dbt_checks = {key.name for key in graph.asset_check_keys if key.asset_key == INDICATORS_1D}
    assert any("accepted_range" in name for name in dbt_checks)


def test_partition_run_builds_marts_and_reports_dbt_tests_as_checks(
    definitions, simulator, tmp_path, monkeypatch
):
    from cryptopipe_dagster.defs.historical.assets import raw_candles
    from cryptopipe_dagster.defs.transform.assets import cryptopipe_dbt_models, dbt_resource

    duckdb_path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("CRYPTOPIPE_DUCKDB_PATH", str(duckdb_path))
    resources = {
        "warehouse": WarehouseResource(duckdb_path=str(duckdb_path)),
        "exchanges": ExchangeResource(exchange_api_url=simulator.base_url, rate_limit=False),
        "dbt": dbt_resource(),
    }
    result = dg.materialize(
        [raw_candles, cryptopipe_dbt_models],
        resources=resources,
        tags=partition_range_tags("2018-01-01", "2018-04-30", "bitstamp"),
        run_config={"ops": {"raw__candles": {"config": {"timeframes": ["1d"]}}}},
    )
    assert result.success
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert {INDICATORS_1D, dg.AssetKey(["marts", "ohlcv_1d"])} <= materialized
    evaluations = [e for e in result.get_asset_check_evaluations() if e.asset_key == INDICATORS_1D]
    assert evaluations and all(e.passed for e in evaluations)
    rows = DuckDBWarehouse(duckdb_path).query_df(
        "select symbol, count(*) as n, count(rsi_14) as rsi from marts.indicators_1d group by all order by 1",
        {},
    )
    assert rows["symbol"].tolist() == ["BTC/USD", "ETH/USD", "LTC/USD"]
    assert rows["n"].tolist() == [120, 120, 120]
    assert (rows["rsi"] == 120 - 14).all()


def test_a_changed_raw_candles_partition_gets_its_models_rebuilt_by_automation(definitions):
    """A runless raw/candles event (what market_data_sensor reports for live candles) requests every
    dbt model of that partition, and only of that partition; raw/trades updates request nothing."""
    partition = "2019-10-17|kraken"
    with dg.DagsterInstance.ephemeral() as instance:
        first = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
        assert first.total_requested == 0  # the initial evaluation: nothing has changed yet
        instance.report_runless_asset_event(dg.AssetMaterialization(["raw", "trades"]))
        quiet = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=first.cursor)
        assert quiet.total_requested == 0
        instance.report_runless_asset_event(dg.AssetMaterialization(["raw", "candles"], partition=partition))
        changed = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=quiet.cursor)
        requested = {
            key: changed.get_requested_partitions(key)
            for key in definitions.get_repository_def().asset_graph.get_all_asset_keys()
            if changed.get_num_requested(key)
        }
        marts = {
            dg.AssetKey(["marts", name])
            for name in ("ohlcv_1h", "ohlcv_1d", "indicators_1h", "indicators_1d")
        }
        assert marts <= set(requested)
        assert all(partitions == {partition} for partitions in requested.values())
        # Requested once: the next evaluation, with nothing new, asks for nothing.
        after = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=changed.cursor)
        assert after.total_requested == 0
