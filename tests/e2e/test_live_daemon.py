"""The live path as deployed: the real Dagster daemon runs market_data_sensor (turned on with
`dagster sensor start`), the collector streams from the simulator through the Pub/Sub emulator, a
20x burst hits every stream, and every emitted trade lands in DuckDB exactly once with no run queue."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import dagster as dg
import psutil
import pytest
import requests

from cryptopipe_dagster.chaos.ground_truth import ledger, stored_trades
from cryptopipe_dagster.cli.daemon import (
    LiveLoaderDaemon,
    daemon_env,
    events_cover_ledger,
    wait_for_code_server,
)
from cryptopipe_dagster.lib.collector import Collector
from cryptopipe_dagster.lib.collector.background import CollectorThread
from cryptopipe_dagster.lib.settings import load_settings
from cryptopipe_dagster.lib.warehouse.duckdb_landing import DuckDBLanding
from cryptopipe_dagster.simulator.server import SimulatorServer
from tests.e2e.live_helpers import (
    EXCHANGES,
    START,
    all_stopped,
    collector_settings,
    complete,
)
from tests.simulator.conftest import DATA_DIR, SEED

pytestmark = pytest.mark.slow
TRADES_PER_MARKET = 600
# Two bursts per stream: 200 messages at 20x the replay speed each.
BURST = {"spec": "ws_burst@100,ws_burst@350", "burst_factor": 20.0, "burst_messages": 200}
DAEMON_HEARTBEAT_TTL_S = 20  # DAEMON_GRPC_SERVER_HEARTBEAT_TTL in dagster/_daemon/controller.py
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@pytest.fixture
def bursty_sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(DATA_DIR, seed=SEED, now=START) as server:
        assert requests.post(f"{server.base_url}/_sim/faults", json=BURST, timeout=10).ok
        server.set_stream(30, START, stop_after=TRADES_PER_MARKET)
        yield server


def test_daemon_loads_every_trade_exactly_once_through_a_burst(
    bursty_sim, market_data_project, pubsub_emulator, tmp_path
):
    settings = load_settings({"CRYPTOPIPE_HOME": str(tmp_path / "home")})
    home, duckdb_path = settings.home, settings.duckdb_path
    env = {
        **daemon_env(settings, pubsub_emulator.host, market_data_project),
        "CRYPTOPIPE_LOADER_TICK_SECONDS": "5",
    }
    collect = collector_settings(market_data_project, bursty_sim, home / "collector" / "checkpoint.json")
    collector = Collector(collect, metrics_port=0)
    with LiveLoaderDaemon(env, home / "daemon.log") as daemon, CollectorThread(collector) as running:
        deadline = time.monotonic() + 240
        while not (all_stopped(bursty_sim) and complete(duckdb_path, bursty_sim)):
            assert daemon.alive(), (home / "daemon.log").read_text()[-2000:]
            assert time.monotonic() < deadline, (
                f"not every emitted trade loaded in time: {_missing(bursty_sim, duckdb_path)}"
            )
            time.sleep(1.0)
        report = running.stop()
        time.sleep(6)  # one more tick: anything the collector flushed on stop is loaded, nothing twice
        with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
            deadline = time.monotonic() + 60
            while not events_cover_ledger(instance, DuckDBLanding(duckdb_path)):
                assert time.monotonic() < deadline, "the sensor did not report what it loaded"
                time.sleep(0.5)
    stored = stored_trades(duckdb_path)
    assert not stored.duplicated(["exchange", "symbol", "trade_id"]).any()
    for exchange in EXCHANGES:
        emitted = ledger(bursty_sim, exchange)
        assert len(emitted) == TRADES_PER_MARKET
        assert sorted(stored[stored.exchange == exchange].trade_id) == sorted(emitted.trade_id), exchange
    assert report.unpublished_batches == 0

    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        assert instance.get_runs_count(dg.RunsFilter(statuses=IN_FLIGHT)) <= 2  # no run queue
        ticks = instance.fetch_materializations(dg.AssetKey(["raw", "trades"]), limit=1000).records
        assert ticks and all(record.run_id == "" for record in ticks)  # runless: the sensor's own
        loaded = sum(record.asset_materialization.metadata["inserted"].value for record in ticks)
        assert loaded == len(stored)


def _missing(sim: SimulatorServer, duckdb_path) -> dict[str, list[int]]:
    """Per exchange, the ledger positions of emitted trades not in raw.trades (first 20)."""
    stored = stored_trades(duckdb_path)
    out = {}
    for exchange in EXCHANGES:
        got = set(stored[stored.exchange == exchange].trade_id)
        out[exchange] = [i for i, tid in enumerate(ledger(sim, exchange).trade_id) if tid not in got][:20]
    return out


def test_code_server_outlives_a_stalled_daemon_and_stops_with_it(
    market_data_project, pubsub_emulator, tmp_path
):
    """A daemon too busy to heartbeat for longer than Dagster's 20 s (thousands of partitions under
    automation on 2 cores) must not take the code server down: sensor ticks would then fail."""
    settings = load_settings({"CRYPTOPIPE_HOME": str(tmp_path / "home")})
    env = daemon_env(settings, pubsub_emulator.host, market_data_project)
    with LiveLoaderDaemon(env, settings.home / "daemon.log") as daemon:
        code_server = psutil.Process(daemon.code_server.pid)
        os.killpg(daemon.process.pid, signal.SIGSTOP)  # no heartbeats from here on
        try:
            time.sleep(DAEMON_HEARTBEAT_TTL_S + 5)
        finally:
            os.killpg(daemon.process.pid, signal.SIGCONT)
        assert daemon.alive() and code_server.is_running(), (settings.home / "daemon.log").read_text()[-2000:]
        wait_for_code_server(daemon.port, daemon.code_server, timeout_s=5)
        trees = [code_server, psutil.Process(daemon.process.pid)]
        trees += [child for process in trees for child in process.children(recursive=True)]
    assert not [process for process in trees if process.is_running() and process.status() != "zombie"]
