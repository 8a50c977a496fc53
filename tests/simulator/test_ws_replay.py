"""Replay control: speed, start, stop, the ledger endpoint, REST up to the replay, protocol chatter."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import aiohttp
import ccxt
import pytest
import requests

from cryptopipe_dagster.lib.exchanges.url_override import point_exchange_at
from cryptopipe_dagster.simulator.server import SimulatorServer
from tests.simulator.conftest import DATA_DIR, SEED
from tests.simulator.ws_helpers import START, SYMBOL, pro, stopped, watch_until

START_MS = ccxt.Exchange.parse8601(START)


@pytest.fixture(scope="module")
def replay_sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(DATA_DIR, seed=SEED, now=START, stream_speed="max") as server:
        yield server


@pytest.fixture
def replay(replay_sim: SimulatorServer) -> Iterator[SimulatorServer]:
    yield replay_sim
    replay_sim.set_faults("")
    replay_sim.set_now(START)
    replay_sim.set_stream("max", START)


def _drain(sim: SimulatorServer, exchange_id: str, timeout: float = 15.0) -> float:
    """Subscribe with ccxt.pro until the replay stops; the wall seconds it took."""

    async def run() -> float:
        exchange = pro(exchange_id, sim.base_url)
        began = time.monotonic()
        try:
            await watch_until(exchange, stopped(sim, exchange_id), timeout=timeout)
            return time.monotonic() - began
        finally:
            await exchange.close()

    return asyncio.run(run())


def test_a_timed_replay_runs_at_its_speed(replay) -> None:
    replay.set_stream(240, START, stop_after="2019-10-17T05:04:00Z")  # 4 minutes of tape at 240x
    elapsed = _drain(replay, "coinbaseexchange")
    assert 0.8 <= elapsed <= 2.5  # ~1 s, with room for a loaded machine
    status = replay.stream_status()
    assert status["config"] == {
        "speed": 240.0,
        "start": "2019-10-17T05:00:00.000Z",
        "stop_after": "2019-10-17T05:04:00.000Z",
    }


def test_stop_at_an_instant_and_rest_never_shows_more(replay) -> None:
    stop = "2019-10-17T05:10:00Z"
    replay.set_stream("max", START, stop_after=stop)
    _drain(replay, "coinbaseexchange")
    ledger = replay.emitted("coinbaseexchange", SYMBOL)
    assert ledger["first_ts"] >= "2019-10-17T05:00:00.000Z" and ledger["last_ts"] < "2019-10-17T05:10:00.000Z"
    rest = ccxt.coinbaseexchange({"enableRateLimit": False})
    point_exchange_at(rest, replay.base_url)
    newest = rest.fetch_trades(SYMBOL, limit=1000)
    assert int(newest[-1]["id"]) == ledger["last_id"]  # REST stops where the replay stopped
    served = [int(t["id"]) for t in newest if t["timestamp"] >= START_MS]
    assert served == ledger["ids"]
    candles = rest.fetch_ohlcv(SYMBOL, "1m", START_MS, 300)
    assert len(candles) == 10  # 05:00 .. 05:09, nothing of the minute the replay has not reached


def test_the_start_defaults_to_the_clock(replay) -> None:
    replay.set_now("2019-10-17T07:30:00Z")
    replay.set_stream("max", None, stop_after=5)
    _drain(replay, "bitstamp")
    feed = next(f for f in replay.stream_status()["feeds"] if f["exchange"] == "bitstamp")
    assert feed["start"] == "2019-10-17T07:30:00.000Z" and feed["emitted"] == 5
    assert replay.emitted("bitstamp", SYMBOL)["first_ts"] >= "2019-10-17T07:30:00.000Z"


def test_stream_control_over_http(replay) -> None:
    base = replay.base_url
    bad = requests.post(f"{base}/_sim/stream", json={"speed": "fast"}, timeout=5)
    assert bad.status_code == 400 and "speed" in bad.json()["error"]
    assert requests.post(f"{base}/_sim/stream", json={"stop_after": 0}, timeout=5).status_code == 400
    assert requests.post(f"{base}/_sim/stream", json={"sped": 1}, timeout=5).status_code == 400
    # Everything this test relies on is set here: it must not depend on what an earlier test left.
    good = requests.post(
        f"{base}/_sim/stream", json={"speed": "10x", "start": START, "stop_after": 25}, timeout=5
    )
    assert good.json() == {"speed": 10.0, "start": "2019-10-17T05:00:00.000Z", "stop_after": 25}
    requests.post(f"{base}/_sim/stream", json={"speed": "max"}, timeout=5)  # the rest is kept
    _drain(replay, "kraken")
    status = requests.get(f"{base}/_sim/stream", timeout=5).json()
    assert "kraken:BTC/USD" in status["markets"] and status["config"]["stop_after"] == 25
    page = requests.get(
        f"{base}/_sim/stream/emitted",
        params={"exchange": "kraken", "symbol": SYMBOL, "offset": 20},
        timeout=5,
    ).json()
    assert page["count"] == 25 and len(page["ids"]) == 5 and page["ids"][-1] == page["last_id"]
    missing = requests.get(
        f"{base}/_sim/stream/emitted", params={"exchange": "kraken", "symbol": "ETH/USD"}, timeout=5
    )
    assert missing.status_code == 404
    faults = requests.post(
        f"{base}/_sim/faults", json={"spec": "ws_stall@3", "stall_seconds": 0.1}, timeout=5
    )
    assert faults.status_code == 200 and faults.json()["settings"]["stall_seconds"] == 0.1


def test_kraken_pings_heartbeats_and_refusals(replay) -> None:
    replay.set_stream("max", START, stop_after=3)

    async def run() -> list[dict]:
        url = replay.base_url.replace("http://", "ws://") + "/kraken/v2"
        out: list[dict] = []
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            out.append(json.loads((await ws.receive()).data))  # status greeting
            await ws.send_json({"method": "ping", "req_id": 7})
            await ws.send_json(
                {"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/EUR"]}, "req_id": 8}
            )
            await ws.send_json(
                {"method": "subscribe", "params": {"channel": "trade", "symbol": [SYMBOL]}, "req_id": 9}
            )
            await ws.send_str("not json")
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline and not any(m.get("channel") == "heartbeat" for m in out):
                out.append(json.loads((await asyncio.wait_for(ws.receive(), 3)).data))
        return out

    messages = asyncio.run(run())
    assert messages[0]["channel"] == "status" and messages[0]["data"][0]["system"] == "online"
    assert next(m for m in messages if m.get("method") == "pong")["req_id"] == 7
    refused = next(m for m in messages if m.get("req_id") == 8)
    assert refused["success"] is False and "Currency pair not supported" in refused["error"]
    acked = next(m for m in messages if m.get("req_id") == 9)
    assert acked["success"] and acked["result"] == {"channel": "trade", "snapshot": True, "symbol": SYMBOL}
    assert any(m.get("error") == "Malformed request" for m in messages)
    assert any(m.get("channel") == "heartbeat" for m in messages)  # once the 3 trades are out


@pytest.mark.parametrize(
    ("exchange_id", "path", "request_body", "expected"),
    [
        (
            "coinbaseexchange",
            "",
            {"type": "subscribe", "product_ids": ["ETH-USD"], "channels": ["matches"]},
            "is not a valid product",
        ),
        (
            "coinbaseexchange",
            "",
            {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["level2"]},
            "is not a valid channel",
        ),
        (
            "bitstamp",
            "",
            {"event": "bts:subscribe", "data": {"channel": "live_trades_btceur"}},
            "Incorrect channel",
        ),
    ],
)
def test_bad_subscriptions_get_the_venues_error(replay, exchange_id, path, request_body, expected) -> None:
    async def run() -> str:
        url = replay.base_url.replace("http://", "ws://") + f"/{exchange_id}{path}"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_json(request_body)
            return (await asyncio.wait_for(ws.receive(), 3)).data

    assert expected in asyncio.run(run())
