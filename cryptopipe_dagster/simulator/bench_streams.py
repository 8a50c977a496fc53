"""Benchmark: trade messages per second of each venue's stream in `max` mode.

Run `python -m cryptopipe_dagster.simulator.bench_streams [--seconds 3]`. The simulator runs in
its own process (as in the demo), a plain aiohttp socket counts messages, and an unmodified
ccxt.pro client measures what ccxt itself can parse (the client, not the server, is its limit).
Prints one JSON line per exchange.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp

from cryptopipe_dagster.lib.exchanges.url_override import point_exchange_at
from cryptopipe_dagster.lib.settings import load_settings

START = "2018-01-01T00:00:00Z"
SUBSCRIBE = {
    "coinbaseexchange": ("", {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]}),
    "bitstamp": ("", {"event": "bts:subscribe", "data": {"channel": "live_trades_btcusd"}}),
    "kraken": ("/v2", {"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USD"]}}),
}


async def raw_rate(base_url: str, exchange: str, seconds: float) -> float:
    """Messages per second a plain socket receives."""
    path, subscribe = SUBSCRIBE[exchange]
    url = base_url.replace("http://", "ws://") + f"/{exchange}{path}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(json.dumps(subscribe))
        count, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            await ws.receive()
            count += 1
        return count / (time.perf_counter() - began)


async def ccxt_rate(base_url: str, exchange_id: str, seconds: float) -> float:
    """Trades per second ccxt.pro's watch_trades hands out."""
    import ccxt.pro as ccxt_pro

    exchange = getattr(ccxt_pro, exchange_id)({"enableRateLimit": False, "options": {"tradesLimit": 10**6}})
    point_exchange_at(exchange, base_url)
    try:
        await exchange.watch_trades("BTC/USD")
        count, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            count += len(await exchange.watch_trades("BTC/USD"))
        return count / (time.perf_counter() - began)
    finally:
        await exchange.close()


def _reset(base_url: str) -> None:
    import requests

    requests.post(f"{base_url}/_sim/stream", json={"speed": "max", "start": START}, timeout=10)


def main(argv: list[str] | None = None) -> None:
    """Start a simulator process, measure every venue, print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--data", type=Path, default=load_settings().data_dir)
    args = parser.parse_args(argv)
    code = (
        "from pathlib import Path; from cryptopipe_dagster.simulator.server import run_simulator; "
        f"run_simulator('127.0.0.1', 0, Path({str(args.data)!r}), seed=7, stream_speed='max')"
    )
    server = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        base_url = json.loads(server.stderr.readline())["url"]
        # Keep reading the server's log so a full pipe never blocks it.
        threading.Thread(target=server.stderr.read, daemon=True).start()
        for exchange in SUBSCRIBE:
            _reset(base_url)
            raw = asyncio.run(raw_rate(base_url, exchange, args.seconds))
            _reset(base_url)
            parsed = asyncio.run(ccxt_rate(base_url, exchange, args.seconds))
            line = {
                "exchange": exchange,
                "raw_messages_per_s": round(raw),
                "ccxt_trades_per_s": round(parsed),
            }
            print(json.dumps(line), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
