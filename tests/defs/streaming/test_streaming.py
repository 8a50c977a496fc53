"""market_data_sensor on the real Pub/Sub emulator and each warehouse (a DuckDB file in tmp, the BigQuery
emulator): pull, land, ack, load."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from cryptopipe_dagster.defs.quality import candle_checks
from cryptopipe_dagster.defs.resources import WarehouseResource, warehouse_resource
from cryptopipe_dagster.defs.streaming.assets import LIVE_BATCHES_CHECK, raw_trades
from cryptopipe_dagster.defs.streaming.resources import TICK_SECONDS_ENV, PubSubResource, pubsub_resource
from cryptopipe_dagster.defs.streaming.sensors import RAW_CANDLES, market_data_sensor
from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.pubsub.publisher import MarketDataPublisher
from cryptopipe_dagster.lib.pubsub.puller import modify_ack_deadline, pull_batch
from cryptopipe_dagster.lib.pubsub.topology import MARKET_DATA_TOPIC
from cryptopipe_dagster.lib.settings import load_settings
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse, Warehouse, open_warehouse
from cryptopipe_dagster.lib.warehouse.duckdb_landing import DuckDBLanding
from tests.lib.pubsub.frames import candles_frame, trades_frame


@pytest.fixture
def duckdb_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture(params=["duckdb", "bigquery"])
def settings(request, cryptopipe_home, duckdb_path, monkeypatch):
    """The settings of one warehouse backend (BigQuery: the emulator, a dataset prefix of its own)."""
    if request.param == "bigquery":
        return request.getfixturevalue("bigquery_env")
    monkeypatch.setenv("CRYPTOPIPE_DUCKDB_PATH", str(duckdb_path))
    return load_settings()


@pytest.fixture
def store(settings) -> Warehouse:
    return open_warehouse(settings)


@pytest.fixture
def resources(market_data_project, pubsub_emulator, settings) -> dict:
    # A tick first prunes the ledger and loads what earlier ticks left: on the BigQuery emulator
    # those queries alone can take over a second on a busy machine, leaving no time to pull.
    budget_s = 1.5 if settings.warehouse == "duckdb" else 4.0
    return {
        "pubsub": PubSubResource(
            project_id=market_data_project, emulator_host=pubsub_emulator.host, tick_budget_s=budget_s
        ),
        "warehouse": warehouse_resource(settings),
    }


@pytest.fixture
def duckdb_resources(market_data_project, pubsub_emulator, duckdb_path) -> dict:
    return {
        "pubsub": PubSubResource(
            project_id=market_data_project, emulator_host=pubsub_emulator.host, tick_budget_s=1.5
        ),
        "warehouse": WarehouseResource(duckdb_path=str(duckdb_path)),
    }


def _publish(project: str, frames: list[pd.DataFrame]) -> None:
    with MarketDataPublisher(project) as publisher:
        for frame in frames:
            publisher.publish(frame, "trades")
        publisher.flush(10)


def _tick(resources: dict) -> dg.SensorResult | dg.SkipReason:
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources)
        return market_data_sensor(context)


def _events(result, kind: type) -> list:
    assert isinstance(result, dg.SensorResult), result
    return [event for event in result.asset_events if isinstance(event, kind)]


def _stored_trades(store: Warehouse | Path) -> pd.DataFrame:
    store = DuckDBWarehouse(store) if isinstance(store, Path) else store
    return store.query_df(
        f"SELECT exchange, symbol, trade_id FROM {store.table_ref('raw.trades')} "
        "WHERE trade_date >= DATE '2000-01-01' ORDER BY symbol, trade_id"
    )


def _expected(frames: list[pd.DataFrame]) -> pd.DataFrame:
    keys = pd.concat(frames)[["exchange", "symbol", "trade_id"]].astype(str)
    return keys.sort_values(["symbol", "trade_id"]).reset_index(drop=True)


def test_tick_lands_acks_loads_and_reports_runless_events(market_data_project, resources, store):
    frames = [trades_frame(symbol="BTC/USDT", n=30), trades_frame(symbol="ETH/USDT", n=20)]
    _publish(market_data_project, frames)

    result = _tick(resources)
    assert result.run_requests in (None, [])  # no run per micro-batch
    (materialization,) = _events(result, dg.AssetMaterialization)
    assert materialization.asset_key == dg.AssetKey(["raw", "trades"])
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    assert metadata["batches"] == 2 and metadata["rows"] == 50 and metadata["inserted"] == 50
    assert metadata["dead_letters"] == 0 and metadata["merges"] >= 1
    assert 0 <= metadata["publish_to_load_p50_ms"] <= metadata["publish_to_load_max_ms"]
    (check,) = _events(result, dg.AssetCheckEvaluation)
    assert check.check_name == LIVE_BATCHES_CHECK and check.passed
    pd.testing.assert_frame_equal(_stored_trades(store).astype(str), _expected(frames))
    landing = store.landing()
    assert landing.pending_batches().empty and len(landing.loaded_batches()) == 2

    again = _tick(resources)  # acked: nothing redelivered, nothing loaded twice
    assert isinstance(again, dg.SkipReason)
    assert len(_stored_trades(store)) == 50


def test_live_candles_are_reported_with_their_partitions_blocking_checks(market_data_project, resources):
    """Two ticks over the same day, their events stored as the daemon stores them: the latest
    raw/candles materialization has passing unique-keys and schema results."""
    with dg.DagsterInstance.ephemeral() as instance:
        for first in (0, 3):
            with MarketDataPublisher(market_data_project) as publisher:
                frame = candles_frame(exchange="kraken", n=6).iloc[first : first + 3]
                publisher.publish(frame, "candles")
                publisher.flush(10)
            result = _tick(resources)
            (materialization,) = [
                e for e in _events(result, dg.AssetMaterialization) if e.asset_key == RAW_CANDLES
            ]
            assert materialization.partition == "2024-03-01|kraken"
            for event in result.asset_events:
                instance.report_runless_asset_event(event)
        checks = {
            e.check_name: e for e in _events(result, dg.AssetCheckEvaluation) if e.asset_key == RAW_CANDLES
        }
        assert set(checks) == {candle_checks.UNIQUE_KEYS, candle_checks.SCHEMA}
        for check in checks.values():
            assert check.passed and check.metadata["partition"].value == "2024-03-01|kraken"
        assert checks[candle_checks.SCHEMA].metadata["rows_checked"].value == 6
        for name in checks:
            record = instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(RAW_CANDLES, name), limit=1
            )[0]
            assert record.status.value == "SUCCEEDED"


def test_poison_message_becomes_dead_letter_and_is_acked(
    market_data_project, resources, admin_publisher, store
):
    topic = admin_publisher.topic_path(market_data_project, MARKET_DATA_TOPIC)
    admin_publisher.publish(topic, b"not arrow", kind="trades", exchange="binance").result(10)
    _publish(market_data_project, [trades_frame(n=5)])

    result = _tick(resources)
    assert _events(result, dg.AssetMaterialization)[0].metadata["rows"].value == 5
    dead = store.dead_letters()
    assert list(dead["reason_code"]) == ["missing_attribute"]
    assert dead["exchange"].iloc[0] == "binance" and dead["source"].iloc[0] == "pubsub"
    assert isinstance(_tick(resources), dg.SkipReason)  # the poison message was acked
    assert len(store.dead_letters()) == 1


def test_invalid_records_are_dead_lettered_and_the_check_warns(market_data_project, resources, store):
    bad = trades_frame(n=4)
    bad.loc[1, "price"] = -1.0  # published as is: the loader validates again
    with MarketDataPublisher(market_data_project) as publisher:
        publisher.publish(bad, "trades")
        publisher.flush(10)

    (check,) = _events(_tick(resources), dg.AssetCheckEvaluation)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["dead_letters"].value == 1
    assert len(_stored_trades(store)) == 3


def test_crash_between_landing_and_ack_loads_exactly_once(market_data_project, resources, subscriber, store):
    frames = [trades_frame(n=40)]
    _publish(market_data_project, frames)
    pubsub: PubSubResource = resources["pubsub"]
    first = pull_batch(subscriber, pubsub.subscription_path, 10, 5.0)
    assert len(first) == 1
    assert store.landing().land(first) == [first[0].batch_id]
    # The "crash": never acked. Let the ack deadline lapse (shortened so the test needn't wait 60 s).
    modify_ack_deadline(subscriber, pubsub.subscription_path, [first[0].ack_id], 1)
    time.sleep(2.5)

    result = _tick(resources)  # loads what was landed, then lands and loads the redelivery (no-op)
    (materialization,) = _events(result, dg.AssetMaterialization)
    assert materialization.metadata["inserted"].value == 40
    assert isinstance(_tick(resources), dg.SkipReason)  # acked: not redelivered, nothing pending
    pd.testing.assert_frame_equal(_stored_trades(store).astype(str), _expected(frames))


def test_crash_between_merge_and_ledger_loads_exactly_once(market_data_project, subscriber, store, settings):
    _publish(market_data_project, [trades_frame(n=10)])
    pulled = pull_batch(
        subscriber, f"projects/{market_data_project}/subscriptions/market-data-loader", 10, 5.0
    )
    landing = store.landing()
    landing.land(pulled)
    store.merge_trades(landing.read_records([pulled[0].batch_id]).records)  # then the "crash"

    result = dg.materialize([raw_trades], resources={"warehouse": warehouse_resource(settings)})
    metadata = result.asset_materializations_for_node("raw__trades")[0].metadata
    assert metadata["batches"].value == 1 and metadata["inserted"].value == 0
    assert metadata["unchanged"].value == 10 and len(_stored_trades(store)) == 10
    assert landing.pending_batches().empty


def test_the_ledger_keeps_two_days(market_data_project, duckdb_resources, duckdb_path):
    _publish(market_data_project, [trades_frame(n=3)])
    _tick(duckdb_resources)
    landing = DuckDBLanding(duckdb_path)
    assert len(landing.loaded_batches()) == 1
    assert landing.prune_ledger(pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=2)) == 0
    assert landing.prune_ledger(pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=1)) == 1
    assert landing.loaded_batches().empty and len(_stored_trades(duckdb_path)) == 3


def test_landing_is_idempotent_per_batch_id(market_data_project, subscriber, store):
    _publish(market_data_project, [trades_frame(n=3)])
    pulled = pull_batch(
        subscriber, f"projects/{market_data_project}/subscriptions/market-data-loader", 10, 5.0
    )
    landing = store.landing()
    assert landing.land(pulled + pulled) == [pulled[0].batch_id]
    assert landing.land(pulled) == []
    assert len(landing.pending_batches()) == 1


def test_busy_warehouse_skips_the_tick_without_pulling(market_data_project, duckdb_resources, duckdb_path):
    DuckDBWarehouse(duckdb_path).ensure_schema()
    _publish(market_data_project, [trades_frame(n=7)])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(duckdb_path)!r}); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        skipped = _tick(duckdb_resources)
        assert isinstance(skipped, dg.SkipReason) and "busy" in skipped.skip_message
    finally:
        holder.kill()
        holder.wait()
    # Nothing was pulled while the file was held, so nothing waits for an ack deadline: loads at once.
    assert _events(_tick(duckdb_resources), dg.AssetMaterialization)[0].metadata["rows"].value == 7


def test_definitions_include_streaming():
    from cryptopipe_dagster.definitions import defs

    definitions = defs()
    dg.Definitions.validate_loadable(definitions)
    sensor = definitions.resolve_sensor_def("market_data_sensor")
    assert not sensor.targets  # loads in the tick; no run per micro-batch
    assert definitions.resolve_job_def("microbatch_job") and definitions.resolve_job_def("live_candles_job")
    assert dg.AssetKey(["raw", "trades"]) in definitions.get_repository_def().asset_graph.get_all_asset_keys()


@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf", "36"])
def test_bad_tick_budget_is_one_clear_error(monkeypatch, value):
    monkeypatch.setenv(TICK_SECONDS_ENV, value)
    with pytest.raises(ConfigError, match=TICK_SECONDS_ENV):
        pubsub_resource()


def test_tick_budget_from_the_environment(monkeypatch):
    monkeypatch.setenv(TICK_SECONDS_ENV, "12.5")
    assert pubsub_resource().tick_budget_s == 12.5
    monkeypatch.delenv(TICK_SECONDS_ENV)
    assert pubsub_resource().tick_budget_s == 30.0


def test_bigquery_groups_landed_batches_into_one_merge_per_interval(
    market_data_project, pubsub_emulator, bigquery_env
):
    """BigQuery bills and queues DML per table: batches landed within live_load_interval_s become one
    MERGE, whatever the number of markets (README: DML statements per hour)."""
    store = open_warehouse(bigquery_env)
    assert store.live_load_interval_s == 5.0
    resources = {
        "pubsub": PubSubResource(
            project_id=market_data_project, emulator_host=pubsub_emulator.host, tick_budget_s=4.0
        ),
        "warehouse": warehouse_resource(bigquery_env),
    }
    markets = [f"M{i}/USDT" for i in range(12)]

    def trickle() -> None:  # one market every 0.2 s: the tick pulls them over many iterations
        for symbol in markets:
            _publish(market_data_project, [trades_frame(symbol=symbol, n=10)])
            time.sleep(0.2)

    publisher = threading.Thread(target=trickle)
    publisher.start()
    result = _tick(resources)
    publisher.join()
    (materialization,) = _events(result, dg.AssetMaterialization)
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    assert metadata["batches"] == 12 and metadata["rows"] == 120
    assert metadata["merges"] == 1  # 12 markets, one statement
