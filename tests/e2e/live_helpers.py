"""Shared pieces of the live-path end-to-end tests: collector settings, stored trades, the ledger."""

from __future__ import annotations

from pathlib import Path

from cryptopipe_dagster.chaos import ground_truth
from cryptopipe_dagster.chaos.run import EXCHANGES, MARKETS, START, live_settings  # noqa: F401 - the tests import them here
from cryptopipe_dagster.lib.collector import CollectorSettings
from cryptopipe_dagster.simulator.server import SimulatorServer


def collector_settings(
    project: str, sim: SimulatorServer, state_path: Path | None = None
) -> CollectorSettings:
    """The three live markets (Kraken with candles), quick reconnects and sweeps for tests; with
    `state_path`, a checkpoint at the replay's start (the collector answers for every emitted trade)."""
    return live_settings(project, sim, state_path)


def all_stopped(sim: SimulatorServer) -> bool:
    """Every live market's replay feed has started (a subscriber came) and stopped."""
    return ground_truth.all_stopped(sim, MARKETS)


def complete(duckdb_path: Path, sim: SimulatorServer) -> bool:
    """raw.trades holds at least as many trades per exchange as were emitted."""
    return ground_truth.complete(duckdb_path, sim, EXCHANGES)


def progress(duckdb_path: Path, sim: SimulatorServer) -> str:
    """For a timeout's message: each feed's state, and stored vs emitted trades per exchange."""
    return ground_truth.progress(duckdb_path, sim, EXCHANGES)
