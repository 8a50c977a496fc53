"""Schema drift on the live path: the simulator's ws_drift fault renames `price` in some of
Bitstamp's trade messages; the collector (unmodified ccxt.pro over loopback) dead-letters those
trades as schema_drift, carries the new payload shape to the loader, which stores it in
ops.payload_fingerprints with its diff; every other trade is loaded (the drifted ones come back
over REST), and trades_payload_schema_stable warns. On DuckDB and BigQuery."""

from __future__ import annotations

import json
import time

import dagster as dg
import pytest

from cryptopipe_dagster.chaos.run import QUICK_RECOVERY
from cryptopipe_dagster.defs.quality.drift_checks import trades_payload_schema_stable
from cryptopipe_dagster.defs.resources import warehouse_resource
from cryptopipe_dagster.defs.streaming.resources import PubSubResource
from cryptopipe_dagster.defs.streaming.sensors import market_data_sensor
from cryptopipe_dagster.lib.collector import Collector, CollectorSettings, parse_market
from cryptopipe_dagster.lib.collector.background import CollectorThread
from cryptopipe_dagster.lib.settings import load_settings
from cryptopipe_dagster.lib.warehouse import Warehouse, open_warehouse
from cryptopipe_dagster.simulator.server import SimulatorServer
from tests.simulator.conftest import DATA_DIR, SEED

START = "2019-10-17T05:00:00Z"
TRADES = 150


@pytest.fixture(params=["duckdb", "bigquery"])
def settings(request, cryptopipe_home, tmp_path, monkeypatch):
    if request.param == "bigquery":
        return request.getfixturevalue("bigquery_env")
    monkeypatch.setenv("CRYPTOPIPE_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    return load_settings()


def stored_ids(store: Warehouse) -> list[str]:
    found = store.query_df(
        f"SELECT trade_id FROM {store.table_ref('raw.trades')} WHERE trade_date >= DATE '2000-01-01'"
    )
    return sorted(found["trade_id"].astype(str))


def test_drifted_trade_messages_are_recorded_dead_lettered_and_the_rest_loaded(
    settings, market_data_project, pubsub_emulator
):
    resources = {
        "pubsub": PubSubResource(
            project_id=market_data_project, emulator_host=pubsub_emulator.host, tick_budget_s=1.0
        ),
        "warehouse": warehouse_resource(settings),
    }
    store = open_warehouse(settings)
    with SimulatorServer(DATA_DIR, seed=SEED, now=START, faults="ws_drift:0.1") as sim:
        sim.set_stream(60, START, stop_after=TRADES)
        collector = Collector(
            CollectorSettings(
                markets=(parse_market("bitstamp:BTC/USD"),),
                project_id=market_data_project,
                exchange_api_url=sim.base_url,
                **QUICK_RECOVERY,
            ),
            metrics_port=0,
        )
        with dg.DagsterInstance.ephemeral() as instance:
            with CollectorThread(collector) as running:
                deadline = time.monotonic() + 90
                while True:
                    market_data_sensor(dg.build_sensor_context(instance=instance, resources=resources))
                    emitted, _times = sim.state.streams.ledger("bitstamp", "BTC/USD").arrays()
                    if len(emitted) == TRADES and len(stored_ids(store)) >= TRADES:
                        break
                    assert time.monotonic() < deadline, "the live path did not deliver every trade"
                report = running.stop()
            market_data_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        ids = sorted(emitted.astype(str))

    assert stored_ids(store) == ids  # every trade loaded, the drifted ones recovered over REST
    dead = store.dead_letters(dataset="trades", limit=None)
    assert report.dead_letters == len(dead) > 0
    assert set(dead["reason_code"]) == {"schema_drift"}
    assert dead["error_detail"].str.contains("missing info.price (number -> None)", regex=False).all()

    prints = store.payload_fingerprints(exchange="bitstamp", endpoint="watch_trades")
    changes = [row for text in prints["diff"].dropna() for row in json.loads(text)]
    assert {"change": "missing", "field": "info.price", "was": "number", "now": None} in changes
    assert {"change": "added", "field": "info.price_v2", "was": None, "now": "number"} in changes

    check = trades_payload_schema_stable(warehouse=resources["warehouse"])
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "info.price_v2" in check.metadata["diff"].value
