"""Run one chaos scenario: simulator (with the scenario's faults) -> collector -> Pub/Sub emulator
-> market_data_sensor -> DuckDB, until the warehouse holds what was emitted or the time is up."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd

from cryptopipe_dagster.chaos import ground_truth
from cryptopipe_dagster.chaos.scenarios import Scenario
from cryptopipe_dagster.defs.resources import WarehouseResource
from cryptopipe_dagster.defs.streaming.resources import PubSubResource
from cryptopipe_dagster.defs.streaming.sensors import market_data_sensor
from cryptopipe_dagster.lib.collector import Collector, CollectorSettings, parse_market
from cryptopipe_dagster.lib.collector.background import CollectorThread
from cryptopipe_dagster.lib.collector.checkpoint import start_checkpoint
from cryptopipe_dagster.lib.pubsub.topology import ensure_topology
from cryptopipe_dagster.simulator.server import SimulatorServer

START = "2019-10-17T05:00:00Z"  # inside every recording of the three live venues
MARKETS = ("coinbaseexchange:BTC/USD", "bitstamp:BTC/USD", "kraken:BTC/USD")
EXCHANGES = tuple(market.split(":")[0] for market in MARKETS)
SPEED = 60
# Reconnect, sweep and give up on a silent stream within seconds, so a test's faults recover fast.
QUICK_RECOVERY = {
    "stall_timeout_s": 1.0,
    "sweep_interval_s": 2.0,
    "reconnect_initial_s": 0.1,
    "reconnect_max_s": 1.0,
}


def live_settings(project: str, sim: SimulatorServer, state_path: Path | None) -> CollectorSettings:
    """The three live markets (Kraken with candles), quick reconnects and sweeps; with `state_path`,
    a checkpoint at the replay's start (the collector answers for every emitted trade)."""
    if state_path is not None:
        start_checkpoint(state_path, list(MARKETS), int(pd.Timestamp(START).timestamp() * 1000))
    return CollectorSettings(
        state_path=state_path,
        markets=tuple(parse_market(m, candles=m.startswith("kraken")) for m in MARKETS),
        project_id=project,
        exchange_api_url=sim.base_url,
        **QUICK_RECOVERY,
    )


def collect_until_complete(
    sim: SimulatorServer,
    settings: CollectorSettings,
    emulator_host: str,
    duckdb_path: Path,
    timeout_s: float,
) -> tuple[object, float | None]:
    """Run the collector and load with market_data_sensor (evaluated in this process: the same
    code the daemon runs) until the warehouse holds every emitted trade or `timeout_s` passes.

    Returns the collector's report and the recovery time: seconds from the last feed stopping to
    the warehouse holding everything (None if it never did)."""
    resources = {
        "pubsub": PubSubResource(
            project_id=settings.project_id, emulator_host=emulator_host, tick_budget_s=1.0
        ),
        "warehouse": WarehouseResource(duckdb_path=str(duckdb_path)),
    }
    stopped_at = recovered = None
    with dg.DagsterInstance.ephemeral() as instance:
        with CollectorThread(Collector(settings, metrics_port=0)) as running:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                market_data_sensor(dg.build_sensor_context(instance=instance, resources=resources))
                if stopped_at is None and ground_truth.all_stopped(sim, MARKETS):
                    stopped_at = time.monotonic()
                if stopped_at is not None and ground_truth.complete(duckdb_path, sim, EXCHANGES):
                    recovered = time.monotonic() - stopped_at
                    break
            report = running.stop()
        for _ in range(2):  # what the collector flushed at shutdown
            market_data_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    return report, recovered


def run_scenario(
    scenario: Scenario,
    seed: int,
    data_dir: Path,
    work_dir: Path,
    emulator_host: str,
    trades: int,
    timeout_s: float,
) -> dict:
    """One scenario against ground truth: expected, loaded, lost, duplicated, extra, recovery_s."""
    work_dir.mkdir(parents=True, exist_ok=True)
    project = f"chaos-{uuid.uuid4().hex[:10]}"
    ensure_topology(project)
    duckdb_path = work_dir / "warehouse.duckdb"
    started = time.monotonic()
    with SimulatorServer(data_dir, seed=seed, now=START) as sim:
        sim.set_faults(scenario.faults, **scenario.fault_settings)
        sim.set_stream(SPEED, START, stop_after=trades)
        state_path = work_dir / "checkpoint.json" if scenario.checkpoint else None
        settings = live_settings(project, sim, state_path)
        report, recovered = collect_until_complete(sim, settings, emulator_host, duckdb_path, timeout_s)
        per_exchange = ground_truth.compare(duckdb_path, sim, EXCHANGES)
        detail = "" if recovered is not None else ground_truth.progress(duckdb_path, sim, EXCHANGES)
    totals = {
        key: sum(row[key] for row in per_exchange.values()) for key in next(iter(per_exchange.values()))
    }
    return {
        "scenario": scenario.name,
        "what": scenario.what,
        "seed": seed,
        **totals,
        "recovery_s": None if recovered is None else round(recovered, 2),
        "seconds": round(time.monotonic() - started, 1),
        "reconnects": report.reconnects,
        "gap_fills": report.gap_fills,
        "per_exchange": per_exchange,
        "timed_out": recovered is None,
        "detail": detail,
    }
