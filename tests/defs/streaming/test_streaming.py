"""Pub/Sub -> landing -> raw.trades on the real emulator and a DuckDB file in tmp."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from cryptopipe_dagster.defs.resources import WarehouseResource
from cryptopipe_dagster.defs.streaming.assets import raw_trades
from cryptopipe_dagster.defs.streaming.resources import PubSubResource
from cryptopipe_dagster.defs.streaming.sensors import market_data_sensor, pull_land_ack
from cryptopipe_dagster.lib.landing import LandingArea, group_id, land_batches, pending_batches
from cryptopipe_dagster.lib.pubsub.publisher import MarketDataPublisher
from cryptopipe_dagster.lib.pubsub.puller import modify_ack_deadline, pull_batch
from cryptopipe_dagster.lib.pubsub.topology import MARKET_DATA_TOPIC
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse
from tests.lib.pubsub.frames import trades_frame


@pytest.fixture
def duckdb_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture
def resources(market_data_project, pubsub_emulator, duckdb_path) -> dict:
    return {
        "pubsub": PubSubResource(
            project_id=market_data_project, emulator_host=pubsub_emulator.host, pull_timeout_s=2.0
        ),
        "warehouse": WarehouseResource(duckdb_path=str(duckdb_path)),
    }


def _publish(project: str, frames: list[pd.DataFrame]) -> None:
    with MarketDataPublisher(project) as publisher:
        for frame in frames:
            publisher.publish(frame, "trades")
        publisher.flush(10)


def _tick(resources: dict, cursor: str | None = None) -> tuple[list[dg.RunRequest], str | None]:
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(cursor=cursor, instance=instance, resources=resources)
        results = list(market_data_sensor(context) or [])
    return [r for r in results if isinstance(r, dg.RunRequest)], context.cursor


def _materialize(resources: dict, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [raw_trades], run_config=request.run_config, resources={"warehouse": resources["warehouse"]}
    )


def _stored_trades(duckdb_path: Path) -> pd.DataFrame:
    return DuckDBWarehouse(duckdb_path).query_df(
        "SELECT exchange, symbol, trade_id FROM raw.trades ORDER BY symbol, trade_id"
    )


def _expected(frames: list[pd.DataFrame]) -> pd.DataFrame:
    keys = pd.concat(frames)[["exchange", "symbol", "trade_id"]].astype(str)
    return keys.sort_values(["symbol", "trade_id"]).reset_index(drop=True)


def test_tick_lands_acks_and_requests_deterministic_runs_then_loads_once(
    market_data_project, resources, duckdb_path
):
    frames = [trades_frame(symbol="BTC/USDT", n=30), trades_frame(symbol="ETH/USDT", n=20)]
    _publish(market_data_project, frames)

    requests, cursor = _tick(resources)
    assert len(requests) == 1
    request = requests[0]
    batch_ids = request.run_config["ops"]["raw__trades"]["config"]["batch_ids"]
    assert len(batch_ids) == 2
    assert request.run_key == group_id("trades", batch_ids)

    again, cursor_again = _tick(resources, cursor)  # acked: nothing redelivered, no new group
    assert again == [] and cursor_again == cursor
    restarted, _ = _tick(resources, None)  # cursor lost: same group, same run key
    assert [r.run_key for r in restarted] == [request.run_key]

    result = _materialize(resources, request)
    assert result.success
    metadata = result.asset_materializations_for_node("raw__trades")[0].metadata
    assert metadata["rows"].value == 50 and metadata["inserted"].value == 50
    assert metadata["dead_letters"].value == 0 and metadata["duplicates_dropped"].value == 0
    assert metadata["latency_ms"].value >= 0
    stored = _stored_trades(duckdb_path)
    pd.testing.assert_frame_equal(stored.astype(str), _expected(frames))
    assert pending_batches(duckdb_path).empty

    rerun = _materialize(resources, request)  # re-running the same batches changes nothing
    rerun_meta = rerun.asset_materializations_for_node("raw__trades")[0].metadata
    assert rerun_meta["inserted"].value == 0 and rerun_meta["updated"].value == 0
    assert len(_stored_trades(duckdb_path)) == 50
    assert _tick(resources, None)[0] == []  # loaded groups are not requested again


def test_poison_message_becomes_dead_letter_and_is_acked(
    market_data_project, resources, admin_publisher, duckdb_path
):
    topic = admin_publisher.topic_path(market_data_project, MARKET_DATA_TOPIC)
    admin_publisher.publish(topic, b"not arrow", kind="trades", exchange="binance").result(10)
    _publish(market_data_project, [trades_frame(n=5)])

    requests, _ = _tick(resources)
    assert len(requests) == 1
    dead = DuckDBWarehouse(duckdb_path).dead_letters()
    assert list(dead["reason_code"]) == ["missing_attribute"]
    assert dead["exchange"].iloc[0] == "binance" and dead["source"].iloc[0] == "pubsub"
    assert _tick(resources, None)[0] == requests  # the poison message was acked, not redelivered
    assert len(DuckDBWarehouse(duckdb_path).dead_letters()) == 1


def test_crash_between_landing_and_ack_loads_exactly_once(
    market_data_project, resources, subscriber, duckdb_path
):
    frames = [trades_frame(n=40)]
    _publish(market_data_project, frames)
    pubsub: PubSubResource = resources["pubsub"]
    first = pull_batch(subscriber, pubsub.subscription_path, 10, 5.0)
    assert len(first) == 1
    assert land_batches(duckdb_path, first) == [first[0].batch_id]
    # The "crash": never acked. Let the ack deadline lapse (shortened so the test needn't wait 60 s).
    modify_ack_deadline(subscriber, pubsub.subscription_path, [first[0].ack_id], 1)
    time.sleep(2.5)

    store = DuckDBWarehouse(duckdb_path)
    counts = pull_land_ack(pubsub, LandingArea(duckdb_path), store)  # what the next tick does first
    assert counts == {
        "pulled": 1,
        "landed": 0,
        "poison": 0,
        "edge_dead_letter_batches": 0,
        "dead_written": 0,
    }  # redelivered, no-op
    requests, _ = _tick(resources)
    assert len(requests) == 1
    assert LandingArea(duckdb_path).pending_batches()["batch_id"].tolist() == [first[0].batch_id]
    assert _materialize(resources, requests[0]).success
    assert _tick(resources, None)[0] == []  # acked: not redelivered, nothing pending
    pd.testing.assert_frame_equal(_stored_trades(duckdb_path).astype(str), _expected(frames))


def test_landing_is_idempotent_per_batch_id(market_data_project, subscriber, duckdb_path):
    _publish(market_data_project, [trades_frame(n=3)])
    pulled = pull_batch(
        subscriber, f"projects/{market_data_project}/subscriptions/market-data-loader", 10, 5.0
    )
    assert land_batches(duckdb_path, pulled + pulled) == [pulled[0].batch_id]
    assert land_batches(duckdb_path, pulled) == []
    assert len(pending_batches(duckdb_path)) == 1


def test_definitions_include_streaming():
    from cryptopipe_dagster.definitions import defs

    definitions = defs()
    dg.Definitions.validate_loadable(definitions)
    sensor = definitions.resolve_sensor_def("market_data_sensor")
    assert {target.job_name for target in sensor.targets} == {"microbatch_job", "live_candles_job"}
    assert dg.AssetKey(["raw", "trades"]) in definitions.get_repository_def().asset_graph.get_all_asset_keys()
