"""Server surface: control endpoints, URL rewriting for every ccxt flavour, the foreground runner."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest
import requests

from cryptopipe_dagster.lib.exchanges.url_override import point_exchange_at
from cryptopipe_dagster.simulator.server import create_app
from tests.simulator.conftest import DATA_DIR


def test_create_app_rejects_a_bad_fault_spec() -> None:
    with pytest.raises(ValueError, match="'rate_limit:lots'"):
        create_app(DATA_DIR, faults="slow@2,rate_limit:lots")


def test_stats_count_requests_and_faults_per_path(fresh_sim) -> None:
    base = fresh_sim.base_url
    before = fresh_sim.stats()
    fresh_sim.set_faults("rate_limit@2")
    candles = f"{base}/coinbaseexchange/products/BTC-USD/candles?granularity=86400"
    codes = [requests.get(candles, timeout=5).status_code for _ in range(3)]
    requests.get(f"{base}/coinbaseexchange/products", timeout=5)
    assert codes == [200, 429, 200]
    stats = requests.get(f"{base}/_sim/stats", timeout=5).json()
    path = "/coinbaseexchange/products/BTC-USD/candles"
    assert stats["requests"] - before["requests"] == 4
    assert stats["per_path"][path] - before["per_path"].get(path, 0) == 3
    assert stats["faults_per_path"][path]["rate_limit"] >= 1 and stats["fault_spec"] == "rate_limit@2"


def test_fault_plan_and_clock_are_set_over_http(fresh_sim) -> None:
    base = fresh_sim.base_url
    bad = requests.post(f"{base}/_sim/faults", json={"spec": "server_error:0.1,bogus@1"}, timeout=5)
    assert bad.status_code == 400 and "'bogus@1'" in bad.json()["error"]
    good = requests.post(
        f"{base}/_sim/faults", json={"spec": "server_error:1.0", "include_markets": True}, timeout=5
    )
    assert good.status_code == 200
    assert requests.get(f"{base}/coinbaseexchange/products", timeout=5).status_code in (500, 502, 503)
    assert requests.get(f"{base}/_sim/stats", timeout=5).status_code == 200  # controls are never faulted
    requests.post(f"{base}/_sim/faults", json={"spec": ""}, timeout=5)
    moved = requests.post(f"{base}/_sim/clock", json={"now": "2019-10-17T09:30:00Z"}, timeout=5)
    assert moved.json() == {"mode": "frozen", "now": "2019-10-17T09:30:00.000Z"}
    assert requests.get(f"{base}/coinbaseexchange/time", timeout=5).json()["epoch"] == 1571304600.0
    assert requests.post(f"{base}/_sim/clock", json={"now": "yesterday"}, timeout=5).status_code == 400
    assert requests.post(f"{base}/_sim/clock", json={"now": None}, timeout=5).json()["mode"] == "wall"


def test_markets_listing(fresh_sim) -> None:
    listing = requests.get(f"{fresh_sim.base_url}/_sim/markets", timeout=5).json()
    assert {(m["exchange"], m["symbol"], m["bars"]) for m in listing} == {
        ("coinbaseexchange", "BTC/USD", 20_111),
        ("bitstamp", "BTC/USD", 1_865),
        ("bitstamp", "ETH/USD", 788),
        ("bitstamp", "LTC/USD", 925),
    }


@pytest.mark.parametrize("module", [ccxt, ccxt_async, ccxt_pro], ids=["sync", "async", "pro"])
@pytest.mark.parametrize("exchange_id", ["coinbaseexchange", "bitstamp"])
def test_every_api_url_is_rewritten(module, exchange_id) -> None:
    exchange = getattr(module, exchange_id)()
    point_exchange_at(exchange, "http://127.0.0.1:9/")
    urls = exchange.urls["api"]
    prefix = f"127.0.0.1:9/{exchange_id}"
    assert all(url.startswith(("http://" + prefix, "ws://" + prefix)) for url in urls.values())
    assert urls["public"] == f"http://{prefix}" + ("/api" if exchange_id == "bitstamp" else "")
    if module is ccxt_pro:
        assert urls["ws"] == f"ws://{prefix}"
    if module is not ccxt:
        asyncio.run(exchange.close())


def test_rejects_a_base_url_without_scheme() -> None:
    with pytest.raises(ValueError, match="base URL"):
        point_exchange_at(ccxt.bitstamp(), "127.0.0.1:9")


def test_async_ccxt_fetches_through_the_simulator(fresh_sim) -> None:
    async def run() -> list:
        exchange = ccxt_async.bitstamp({"enableRateLimit": False})
        point_exchange_at(exchange, fresh_sim.base_url)
        try:
            return await exchange.fetch_ohlcv("LTC/USD", "1d", 1_498_348_800_000, 3)  # 2017-06-25
        finally:
            await exchange.close()

    rows = asyncio.run(run())
    assert [row[0] for row in rows] == [1_498_348_800_000 + i * 86_400_000 for i in range(3)]


def test_run_simulator_logs_one_line_and_stops_on_sigterm() -> None:
    code = (
        "from pathlib import Path; from cryptopipe_dagster.simulator.server import run_simulator; "
        f"run_simulator('127.0.0.1', 0, Path('{DATA_DIR}'), seed=3, faults='slow@9')"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        line = json.loads(process.stderr.readline())
        assert line["event"] == "simulator_started" and line["url"].startswith("http://127.0.0.1:")
        assert "bitstamp:ETH/USD" in line["markets"] and line["faults"] == "slow@9"
        assert requests.get(f"{line['url']}/bitstamp/api/v2/markets/", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
