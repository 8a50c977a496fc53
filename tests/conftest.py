"""Shared fixtures: the real recorded data, an isolated CRYPTOPIPE_HOME, the exchange simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryptopipe_dagster.lib.settings import load_settings

# The emulator fixtures (Pub/Sub, BigQuery) serve tests in several folders; one of each per session.
pytest_plugins = ["tests.pubsub_fixtures", "tests.bigquery_fixtures"]

DATA_DIR = load_settings().data_dir  # CRYPTOPIPE_DATA_DIR, else ../shared/data beside the repo


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "coinbase_btcusd_1h.csv").exists():
        pytest.fail(f"recorded market data not found at {DATA_DIR} (expected ../shared/data beside the repo)")
    return DATA_DIR


@pytest.fixture
def cryptopipe_home(tmp_path, monkeypatch) -> Path:
    """An empty CRYPTOPIPE_HOME (warehouse + Dagster instance) per test."""
    home = tmp_path / "cryptopipe-home"
    monkeypatch.setenv("CRYPTOPIPE_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.delenv("CRYPTOPIPE_DUCKDB_PATH", raising=False)
    return home


@pytest.fixture(scope="session")
def simulator(data_dir):
    """One exchange simulator on a free loopback port for the whole session (no faults)."""
    from cryptopipe_dagster.simulator.server import SimulatorServer

    with SimulatorServer(data_dir, seed=7) as server:
        yield server


@pytest.fixture
def streaming_simulator(data_dir):
    """A fresh simulator whose streams replay from the live tests' start at 60x (no faults)."""
    from cryptopipe_dagster.chaos.run import SPEED, START
    from cryptopipe_dagster.simulator.server import SimulatorServer

    with SimulatorServer(data_dir, seed=3, now=START, stream_speed=SPEED, stream_start=START) as server:
        yield server


@pytest.fixture
def faulty_simulator(data_dir):
    """A fresh simulator per test, so fault specs and request counters start clean."""
    from cryptopipe_dagster.simulator.server import SimulatorServer

    with SimulatorServer(data_dir, seed=11) as server:
        yield server
