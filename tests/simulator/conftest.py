"""Shared fixtures: the real recordings, the market store and one simulator on a free loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import ccxt
import pytest

from cryptopipe_dagster.lib.exchanges.url_override import point_exchange_at
from cryptopipe_dagster.lib.settings import load_settings
from cryptopipe_dagster.simulator.market_data import MarketStore, cached_store
from cryptopipe_dagster.simulator.server import SimulatorServer

DATA_DIR = load_settings().data_dir  # CRYPTOPIPE_DATA_DIR, else ../shared/data beside the repo
SEED = 7


@pytest.fixture(scope="session")
def store() -> MarketStore:
    return cached_store(DATA_DIR, SEED)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    """One server per test module; tests that change faults or the clock restore them."""
    with SimulatorServer(DATA_DIR, seed=SEED, slow_seconds=1.0) as server:
        yield server


@pytest.fixture
def fresh_sim(sim: SimulatorServer) -> Iterator[SimulatorServer]:
    """The module's server with no faults and the wall clock, restored after the test."""
    sim.set_faults("")
    sim.set_now(None)
    yield sim
    sim.set_faults("", retry_after_s=1.0, slow_seconds=1.0, include_markets=False)
    sim.set_now(None)


@pytest.fixture
def connect(sim: SimulatorServer) -> Callable[..., ccxt.Exchange]:
    """An unmodified sync ccxt exchange pointed at the simulator (rate limiter off: loopback)."""

    def make(exchange_id: str, **config: object) -> ccxt.Exchange:
        exchange = getattr(ccxt, exchange_id)({"enableRateLimit": False, "timeout": 5000, **config})
        point_exchange_at(exchange, sim.base_url)
        return exchange

    return make
