"""Unmodified ccxt.pro watch_trades against the simulator's WebSocket feeds, and REST agreeing with them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from cryptopipe_dagster.simulator.server import SimulatorServer
from tests.simulator.conftest import DATA_DIR, SEED
from tests.simulator.ws_helpers import (
    EXCHANGES,
    START,
    SYMBOL,
    pro,
    rest_trades_from,
    stopped,
    trade_key,
    until_cached,
    watch_until,
)


@pytest.fixture(scope="module")
def stream_sim() -> Iterator[SimulatorServer]:
    """Clock frozen at START, so REST shows nothing the replay has not reached."""
    with SimulatorServer(DATA_DIR, seed=SEED, now=START, stream_speed="max") as server:
        yield server


@pytest.fixture
def replay(stream_sim: SimulatorServer) -> Iterator[SimulatorServer]:
    stream_sim.set_faults("")
    yield stream_sim
    stream_sim.set_stream("max", START)


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_watch_trades_receives_the_ledger_in_order(replay, exchange_id) -> None:
    replay.set_stream("max", START)

    async def run() -> list[dict]:
        exchange = pro(exchange_id, replay.base_url)
        try:
            return await watch_until(exchange, lambda received: len(received) >= 300)
        finally:
            await exchange.close()

    received = asyncio.run(run())
    ledger = replay.emitted(exchange_id, SYMBOL)
    ids = [int(t["id"]) for t in received]
    assert ids == ledger["ids"][: len(ids)] and len(ids) >= 300
    assert ledger["first_ts"] >= START.replace("Z", ".000Z")
    times = [t["timestamp"] for t in received]
    assert times == sorted(times) and all(t["symbol"] == SYMBOL for t in received)
    assert {t["side"] for t in received} == {"buy", "sell"}


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_rest_trades_are_the_streamed_trades(replay, exchange_id) -> None:
    replay.set_stream("max", START, stop_after=120)

    async def run() -> list[dict]:
        exchange = pro(exchange_id, replay.base_url)
        try:
            await watch_until(exchange, stopped(replay, exchange_id))
            await until_cached(exchange, replay, exchange_id)
            return list(exchange.trades[SYMBOL])
        finally:
            await exchange.close()

    streamed = asyncio.run(run())
    ledger = replay.emitted(exchange_id, SYMBOL)
    assert [int(t["id"]) for t in streamed] == ledger["ids"] and ledger["count"] == 120
    rest = rest_trades_from(replay.base_url, exchange_id, streamed[0])
    # With the clock frozen at the start, REST holds exactly what the replay emitted: same ids,
    # times, prices, amounts and sides (Bitstamp's REST `date` has whole seconds only).
    precision = 1000 if exchange_id == "bitstamp" else 1
    assert [_key(t, precision) for t in rest] == [_key(t, precision) for t in streamed]


def _key(trade: dict, precision: int) -> tuple:
    key = trade_key(trade)
    return (key[0], key[1] // precision, *key[2:])


def test_the_replay_is_the_same_for_the_same_seed(replay) -> None:
    runs = []
    for _ in range(2):
        replay.set_stream("max", START, stop_after=50)

        async def run() -> None:
            exchange = pro("kraken", replay.base_url)
            try:
                await watch_until(exchange, stopped(replay, "kraken"))
            finally:
                await exchange.close()

        asyncio.run(run())
        ledger = replay.emitted("kraken", SYMBOL)
        runs.append((ledger["ids"], ledger["first_ts"], ledger["last_ts"]))
    assert runs[0] == runs[1] and len(runs[0][0]) == 50
    with SimulatorServer(
        DATA_DIR, seed=SEED + 1, now=START, stream_speed="max", stream_stop_after=50
    ) as other:
        asyncio.run(_drain(other))
        ledger = other.emitted("kraken", SYMBOL)
        assert (ledger["ids"], ledger["first_ts"], ledger["last_ts"]) != runs[0]  # another seed, other trades


async def _drain(sim: SimulatorServer) -> None:
    exchange = pro("kraken", sim.base_url)
    try:
        await watch_until(exchange, stopped(sim, "kraken"))
    finally:
        await exchange.close()
