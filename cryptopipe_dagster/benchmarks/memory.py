"""memory: peak RSS (MB) of a daily-partition candle load and of the streaming collector.

Every measured process is a fresh child whose peak is its own VmHWM (/proc/self/status), read as it
exits. Not getrusage(RUSAGE_CHILDREN).ru_maxrss: Linux carries a process's max RSS across fork and
exec, so a child of this (large) benchmark process would report the parent's peak. The simulator
(and the Pub/Sub emulator) run in processes of their own, never in the measured one.

- daily load: the raw/candles asset's path (markets file -> `backfill_candles` per market) for one
  day of 1m candles of every configured market of EXCHANGE, from the simulator into a fresh DuckDB
  file. Baseline python_baseline: the same child importing the same modules and doing nothing, so
  ratio = baseline / ours < 1 by construction; the load's own cost is the delta in details.
- collector: `cryptopipe collect --duration` streaming trades of 1 and of 5 markets from the
  simulator's replay (REPLAY_SPEED x real time) to the Pub/Sub emulator, and of MANY_MARKETS (5
  recorded + derived ones, simulator/derived.py) at speed 1, their recorded rates: all measured.
  MB per market is the slope between 5 and MANY_MARKETS.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from cryptopipe_dagster.benchmarks.harness import Record, say
from cryptopipe_dagster.cli.live import start_replay
from cryptopipe_dagster.cli.simulator_process import running_simulator
from cryptopipe_dagster.lib.pubsub.emulator import PubSubEmulator
from cryptopipe_dagster.lib.pubsub.topology import ensure_topology
from cryptopipe_dagster.simulator.derived import streamable_markets

NAME = "memory"
EXCHANGE, DAY = "bitstamp", "2019-03-18"  # three configured markets, before the 03-20 outage
STREAM_MARKETS = (
    "coinbaseexchange:BTC/USD",
    "bitstamp:BTC/USD",
    "bitstamp:ETH/USD",
    "bitstamp:LTC/USD",
    "kraken:BTC/USD",
)
REPLAY_START, REPLAY_SPEED = "2019-10-17T05:00:00Z", 60  # the demo's live replay (cli/live.py)
MANY_MARKETS = 100
MANY_MARKETS_TARGET_MB = 250
PROJECT = "cryptopipe-bench-memory"

_PEAK = """
def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
"""

# argv: mode (load | idle), simulator url, DuckDB path, exchange, day
_DAILY_LOAD = (
    """
import json, sys
import pandas as pd
from cryptopipe_dagster.lib.historical.candle_backfill import BackfillTarget, backfill_candles, exchange_now
from cryptopipe_dagster.lib.exchanges.clients import create_exchange
from cryptopipe_dagster.lib.markets_config import load_markets_config
from cryptopipe_dagster.lib.settings import load_settings
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse
"""
    + _PEAK
    + """
mode, url, db_path, exchange_id, day = sys.argv[1:6]
candles = 0
if mode == "load":
    start = pd.Timestamp(day, tz="UTC")
    client = create_exchange(exchange_id, exchange_api_url=url, rate_limit=False)
    warehouse = DuckDBWarehouse(db_path)
    warehouse.ensure_schema()
    now = exchange_now(client)
    for symbol in load_markets_config(load_settings().markets_file).markets_of(exchange_id).symbols:
        target = BackfillTarget(exchange_id, symbol, "1m", start, start + pd.Timedelta(days=1))
        candles += backfill_candles(client, warehouse, target, now=now).inserted
print(json.dumps({"candles": candles, "peak_mb": peak_mb()}))
"""
)

# The `cryptopipe` CLI as a user runs it, reporting its peak to a file on the way out.
_CLI = (
    """
import atexit, json, os, runpy, sys
"""
    + _PEAK
    + """
def report():
    with open(os.environ["CRYPTOPIPE_BENCH_PEAK_FILE"], "w") as out:
        json.dump({"peak_mb": peak_mb()}, out)
atexit.register(report)
sys.argv = ["cryptopipe", *sys.argv[1:]]
runpy.run_module("cryptopipe_dagster.cli", run_name="__main__")
"""
)


def simulator(data_dir: Path, derived_markets: int = 0):
    """The simulator in a child process (see running_simulator)."""
    return running_simulator(data_dir, seed=0, derived_markets=derived_markets)


def _child(args: list[str], env: dict | None = None, timeout: float = 600) -> str:
    result = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{NAME}: child {args[2:4]} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def daily_load_peak(url: str, work: Path, mode: str) -> tuple[float, int]:
    """(peak MB, candles loaded) of one child doing the daily load (or only its imports)."""
    db_path = work / f"{mode}-{uuid.uuid4().hex[:8]}.duckdb"
    out = json.loads(_child(["-c", _DAILY_LOAD, mode, url, str(db_path), EXCHANGE, DAY]).splitlines()[-1])
    return out["peak_mb"], out["candles"]


def daily_load_record(data_dir: Path, work: Path, repeat: int) -> Record:
    """Median peak of `repeat` loads and of `repeat` import-only children."""
    with simulator(data_dir) as url:
        loads = [daily_load_peak(url, work, "load") for _ in range(repeat)]
        idle = [daily_load_peak(url, work, "idle")[0] for _ in range(repeat)]
    candles = {n for _, n in loads}
    if len(candles) != 1:
        raise AssertionError(f"{NAME}: loads stored different candle counts {sorted(candles)}")
    size = candles.pop()
    ours, baseline = statistics.median(p for p, _ in loads), statistics.median(idle)
    say(f"{NAME}: daily load of {size:,} candles peaks at {ours:.0f} MB; imports alone {baseline:.0f} MB")
    return Record(
        NAME,
        size,
        "peak_rss_mb",
        ours,
        "python_baseline",
        baseline,
        details={
            "scope": f"daily load {EXCHANGE} {DAY} 1m, all configured markets",
            "delta_mb": round(ours - baseline, 1),
            "peaks_mb": [round(p, 1) for p, _ in loads],
            "baseline_peaks_mb": [round(p, 1) for p in idle],
            "path": "markets file -> backfill_candles per market (the raw/candles asset body, no Dagster)",
            "measure": "VmHWM of a fresh child process",
        },
    )


def collector_peak(
    data_dir: Path, work: Path, markets: tuple[str, ...], duration_s: float, speed: float = REPLAY_SPEED
) -> dict:
    """Peak MB and the run report of `cryptopipe collect` on `markets` for `duration_s` seconds."""
    peak_file = work / f"collector-{len(markets)}.json"
    with simulator(data_dir, derived_markets=max(0, len(markets) - len(STREAM_MARKETS))) as url:
        start_replay(url, speed, REPLAY_START, None)
        env = {
            **os.environ,
            "CRYPTOPIPE_HOME": str(work / f"home-{len(markets)}"),
            "CRYPTOPIPE_EXCHANGE_API_URL": url,
            "CRYPTOPIPE_PUBSUB_PROJECT": PROJECT,
            "CRYPTOPIPE_BENCH_PEAK_FILE": str(peak_file),
        }
        command = ["-c", _CLI, "collect", "--markets", ",".join(markets), "--duration", str(duration_s)]
        stdout = _child([*command, "--metrics-port", "0"], env=env, timeout=duration_s + 120)
    report = json.loads(stdout[stdout.index("{") :])
    if report["records_published"] <= 0:
        raise AssertionError(f"{NAME}: the collector published nothing from {markets}")
    peak = json.loads(peak_file.read_text())["peak_mb"]
    say(f"{NAME}: collector, {len(markets)} market(s), {duration_s:.0f} s: peak {peak:.0f} MB")
    return {"peak_mb": peak, "records_received": report["records_received"]}


def collector_records(data_dir: Path, work: Path, duration_s: float) -> list[Record]:
    """Measured peaks with 1 and 5 markets (REPLAY_SPEED) and MANY_MARKETS (speed 1)."""
    many = tuple(streamable_markets(MANY_MARKETS, data_dir))
    with PubSubEmulator():  # sets PUBSUB_EMULATOR_HOST for its lifetime; the children inherit it
        ensure_topology(PROJECT)
        runs = {n: collector_peak(data_dir, work, STREAM_MARKETS[:n], duration_s) for n in (1, 5)}
        runs[MANY_MARKETS] = collector_peak(data_dir, work, many, duration_s * 2, speed=1.0)
    per_market = (runs[MANY_MARKETS]["peak_mb"] - runs[5]["peak_mb"]) / (MANY_MARKETS - 5)
    say(f"{NAME}: collector {per_market:.2f} MB per extra market (5 -> {MANY_MARKETS}, measured)")
    records = []
    for n, run in runs.items():
        speed = 1.0 if n == MANY_MARKETS else REPLAY_SPEED
        details = {
            "scope": f"collector, {n} market(s), measured",
            "markets": list(STREAM_MARKETS[:n])
            if n < MANY_MARKETS
            else f"{len(many)} (5 recorded + derived)",
            "records_received": run["records_received"],
            "duration_s": duration_s * (2 if n == MANY_MARKETS else 1),
            "replay_speed": speed,
            "streams": "trades only",
        }
        if n == MANY_MARKETS:
            details |= {
                "target": f"<= {MANY_MARKETS_TARGET_MB} MB",
                "mb_per_extra_market": round(per_market, 3),
            }
        records.append(Record(NAME, n, "peak_rss_mb", run["peak_mb"], details=details))
    return records


def run(data_dir: Path, quick: bool = False) -> list[Record]:
    """The daily load against its import-only baseline, then the collector at 1, 5 and 100 markets."""
    with tempfile.TemporaryDirectory(prefix="cryptopipe-bench-") as tmp:
        work = Path(tmp)
        say(f"{NAME}: daily load, {EXCHANGE} {DAY}, in fresh child processes")
        records = [daily_load_record(Path(data_dir), work, repeat=1 if quick else 3)]
        say(f"{NAME}: collector processes against the simulator and the Pub/Sub emulator")
        records += collector_records(Path(data_dir), work, duration_s=8.0 if quick else 20.0)
    return records
