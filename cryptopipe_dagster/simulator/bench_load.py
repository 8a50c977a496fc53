"""Benchmark: the simulator streaming many markets at a replay speed, its trade rate and its CPU.

Run `python -m cryptopipe_dagster.simulator.bench_load [--markets 100] [--speed 1] [--seconds 60]
[--client raw|ccxt]`. The simulator runs in its own process (as in the demo) with derived markets;
one client socket per venue subscribes to the first `--markets` of `streamable_markets`, counts the
trades it receives, and the simulator's CPU time is read from /proc (Linux). Prints one JSON line:
trades per second in total and per market, the simulator's CPU % of one core, the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import aiohttp

from cryptopipe_dagster.lib.exchanges.url_override import point_exchange_at
from cryptopipe_dagster.lib.settings import load_settings
from cryptopipe_dagster.simulator.derived import streamable_markets

START = "2019-10-01T00:00:00Z"  # inside every recording (see derived.streamable_window)
_WARMUP_S = 3.0


def subscriptions(exchange: str, symbols: list[str]) -> tuple[str, list[dict]]:
    """(ws path under /<exchange>, subscribe messages) for a raw socket."""
    if exchange == "coinbaseexchange":
        products = [s.replace("/", "-") for s in symbols]
        return "", [{"type": "subscribe", "product_ids": products, "channels": ["matches"]}]
    if exchange == "bitstamp":
        channels = [f"live_trades_{s.replace('/', '').lower()}" for s in symbols]
        return "", [{"event": "bts:subscribe", "data": {"channel": c}} for c in channels]
    return "/v2", [{"method": "subscribe", "params": {"channel": "trade", "symbol": symbols}, "req_id": 1}]


_TRADE_MARKERS = {
    "coinbaseexchange": '"type":"match"',
    "bitstamp": '"event":"trade"',
    "kraken": '"channel":"trade","type":"update"',
}


async def raw_client(base_url: str, exchange: str, symbols: list[str], counts: dict) -> None:
    """One plain socket for all of a venue's markets; counts trade messages until cancelled."""
    path, messages = subscriptions(exchange, symbols)
    url = base_url.replace("http://", "ws://") + f"/{exchange}{path}"
    marker = _TRADE_MARKERS[exchange]
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        for message in messages:
            await ws.send_str(json.dumps(message))
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT and marker in message.data:
                counts[exchange] += 1


async def ccxt_client(base_url: str, exchange_id: str, symbols: list[str], counts: dict) -> None:
    """Unmodified ccxt.pro: one watch loop per symbol on the venue's one connection, until cancelled."""
    import ccxt.pro as ccxt_pro

    exchange = getattr(ccxt_pro, exchange_id)({"enableRateLimit": False})
    point_exchange_at(exchange, base_url)

    async def watch(symbol: str) -> None:
        while True:  # newUpdates: each call returns the trades since the previous one
            trades = await exchange.watch_trades(symbol)  # before the +=, which would read a stale count
            counts[exchange_id] += len(trades)

    try:
        await exchange.load_markets()
        await asyncio.gather(*(watch(symbol) for symbol in symbols))
    finally:
        await exchange.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(base_url: str, pid: int, markets: list[str], client: str, seconds: float) -> dict:
    """Subscribe every market, warm up, then count trades and CPU over `seconds`."""
    by_venue: dict[str, list[str]] = defaultdict(list)
    for market in markets:
        exchange, symbol = market.split(":", 1)
        by_venue[exchange].append(symbol)
    counts: dict[str, int] = defaultdict(int)
    run = raw_client if client == "raw" else ccxt_client
    tasks = [asyncio.ensure_future(run(base_url, ex, syms, counts)) for ex, syms in by_venue.items()]
    await asyncio.sleep(_WARMUP_S)
    before_counts, cpu0, own0, wall0 = dict(counts), cpu_seconds(pid), time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - wall0
    trades = {ex: counts[ex] - before_counts.get(ex, 0) for ex in by_venue}
    result = {
        "markets": len(markets),
        "client": client,
        "trades_per_s": round(sum(trades.values()) / wall, 2),
        "trades_per_s_per_market": round(sum(trades.values()) / wall / len(markets), 3),
        "per_venue_per_s": {ex: round(n / wall, 2) for ex, n in trades.items()},
        "sim_cpu_percent": round(100 * (cpu_seconds(pid) - cpu0) / wall, 1),
        "client_cpu_percent": round(100 * (time.process_time() - own0) / wall, 1),
    }
    failed = [task for task in tasks if task.done()]  # a client ended early: say why
    if failed:
        failed[0].result()
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=5)
    return result


def main(argv: list[str] | None = None) -> None:
    """Start a simulator process, stream the markets, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", type=int, default=100)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--client", choices=("raw", "ccxt"), default="raw")
    parser.add_argument("--start", default=START)
    parser.add_argument("--data", type=Path, default=load_settings().data_dir)
    args = parser.parse_args(argv)
    markets = streamable_markets(args.markets, args.data)
    code = (
        "from pathlib import Path; from cryptopipe_dagster.simulator.server import run_simulator; "
        f"run_simulator('127.0.0.1', 0, Path({str(args.data)!r}), seed=7, stream_speed={args.speed!r}, "
        f"stream_start={args.start!r}, derived_markets={args.markets})"
    )
    server = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        base_url = json.loads(server.stderr.readline())["url"]
        # Keep reading the server's log so a full pipe never blocks it.
        threading.Thread(target=server.stderr.read, daemon=True).start()
        result = asyncio.run(measure(base_url, server.pid, markets, args.client, args.seconds))
        print(json.dumps({"speed": args.speed, "start": args.start, **result}), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
