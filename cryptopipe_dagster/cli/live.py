"""The live half of `make demo`: simulator streams -> collector -> Pub/Sub emulator -> sensor -> warehouse.

Bounded: the simulator replays a fixed number of trades per market (with stream faults injected),
the collector publishes them, and market_data_sensor loads them under the real Dagster daemon on the
local instance, as a deployment does (its ticks and runless materializations show in `make dev`);
then dbt builds the trade-built candles and the reconciliation check compares them with the
exchange's 1m candles.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from dataclasses import dataclass

import dagster as dg
import pandas as pd
from rich.console import Console

from cryptopipe_dagster.cli.collect import collector_settings, run_until_signal
from cryptopipe_dagster.cli.daemon import (
    LiveLoaderDaemon,
    automation_runs,
    daemon_env,
    events_cover_ledger,
    stale_mart_partitions,
)
from cryptopipe_dagster.cli.instance import prepare_dagster_home
from cryptopipe_dagster.cli.simulator_process import simulator_is_up, start_simulator, stop_simulator
from cryptopipe_dagster.defs.streaming.resources import LOCAL_PROJECT
from cryptopipe_dagster.lib.collector import Collector, CollectorReport, CollectorSettings, parse_market
from cryptopipe_dagster.lib.collector.background import CollectorThread
from cryptopipe_dagster.lib.collector.checkpoint import start_checkpoint
from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.logs import configure_json_logging
from cryptopipe_dagster.lib.pubsub.emulator import PubSubEmulator
from cryptopipe_dagster.lib.pubsub.topology import ensure_topology
from cryptopipe_dagster.lib.settings import Settings, load_settings
from cryptopipe_dagster.lib.warehouse import LandingArea, Warehouse, open_warehouse
from cryptopipe_dagster.simulator.derived import streamable_markets

LIVE_START = "2019-10-17T05:00:00Z"  # inside the recordings and the demo's 1m backfill
LIVE_SPEED = 60  # a minute of tape per second
LIVE_TRADES = 400  # per market, then the replay stops
LIVE_MARKETS = ("coinbaseexchange:BTC/USD", "bitstamp:BTC/USD", "kraken:BTC/USD")
LIVE_CANDLE_MARKETS = ("kraken:BTC/USD",)  # the venue whose stream has candles
# One of each stream fault per market, so the demo shows the recovery, not just the happy path.
LIVE_FAULTS = (
    "ws_duplicate@40,ws_out_of_order@80,ws_malformed@120,ws_disconnect@160,ws_stall@240,ws_burst@300"
)
TIMEOUT_S = 180
EVENTS_TIMEOUT_S = 60  # the sensor reports every 5 s; a tick returns within its 30 s budget
MARTS_TIMEOUT_S = 300  # an automation tick every 10 s, then a run: code load + dbt on one day
RECORDED_STREAMABLE = 5  # markets the recordings stream as recorded; more are derived (simulator/derived.py)
MAX_LIVE_MARKETS = 500


@dataclass(frozen=True)
class LiveResult:
    """What the live run did."""

    report: CollectorReport
    emitted: dict[str, int]
    loaded: dict[str, int]
    ticks: int  # market_data_sensor ticks that loaded trades (runless raw/trades materializations)
    seconds: float


def _post(base_url: str, path: str, body: dict) -> None:
    request = urllib.request.Request(
        f"{base_url}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def _get(base_url: str, path: str) -> dict | list:
    with urllib.request.urlopen(f"{base_url}{path}", timeout=10) as response:
        return json.loads(response.read())


def start_replay(base_url: str, speed: float | str, start: str, stop_after: int | None) -> None:
    """Freeze the simulator's clock at `start` and replay from there. The frozen clock matters: REST
    then answers up to the replay's position (the trades the stream has emitted), so the collector's
    gap fills find what the stream dropped; on the wall clock REST would answer for today."""
    _post(base_url, "/_sim/clock", {"now": start})
    _post(base_url, "/_sim/stream", {"speed": speed, "start": start, "stop_after": stop_after})


def _emitted(base_url: str) -> dict[str, int]:
    out = {}
    for market in LIVE_MARKETS:
        exchange, symbol = market.split(":")
        ledger = _get(base_url, f"/_sim/stream/emitted?exchange={exchange}&symbol={symbol}&limit=0")
        out[market] = int(ledger["count"])
    return out


def _replay_done(base_url: str) -> bool:
    """Every live market's feed has started and stopped (a feed starts when the collector subscribes)."""
    feeds = _get(base_url, "/_sim/stream")["feeds"]
    stopped = {(f["exchange"], f["symbol"]) for f in feeds if f["state"] == "stopped"}
    return all(tuple(m.split(":")) in stopped for m in LIVE_MARKETS)


def _loaded(warehouse: Warehouse) -> dict[str, int]:
    return warehouse.trade_counts(since=pd.Timestamp(LIVE_START))


def run_live(
    settings: Settings, exchange_api_url: str, instance: dg.DagsterInstance, console: Console
) -> LiveResult:
    """Replay, collect, and load with the Dagster daemon and market_data_sensor, as deployed;
    raises ConfigError when trades are missing at the end."""
    started = time.monotonic()
    warehouse = open_warehouse(settings)
    with PubSubEmulator() as emulator:
        ensure_topology(LOCAL_PROJECT)
        env = daemon_env(settings, emulator.host, LOCAL_PROJECT, prepare_dagster_home(settings))
        with console.status("live: starting the Dagster daemon and market_data_sensor"):
            daemon = LiveLoaderDaemon(env, settings.home / "logs" / "demo-daemon.log").start()
        try:
            _post(exchange_api_url, "/_sim/faults", {"spec": LIVE_FAULTS, "stall_seconds": 2.0})
            start_replay(exchange_api_url, LIVE_SPEED, LIVE_START, LIVE_TRADES)
            report = _collect_until_loaded(settings, exchange_api_url, warehouse, daemon, console, started)
            _wait_for_events(instance, warehouse.landing(), console)
            _wait_for_marts(instance, time.time() - (time.monotonic() - started), daemon, console)
        finally:
            daemon.stop()
    _post(exchange_api_url, "/_sim/faults", {"spec": ""})
    _post(exchange_api_url, "/_sim/clock", {"now": None})  # back to the wall clock
    emitted, loaded = _emitted(exchange_api_url), _loaded(warehouse)
    missing = {m: n - loaded.get(m, 0) for m, n in emitted.items() if loaded.get(m, 0) != n}
    if missing:
        raise ConfigError(f"live path: raw.trades differs from the emitted trades by {missing}")
    ticks = sensor_materializations(instance, started_at=time.time() - (time.monotonic() - started))
    return LiveResult(report, emitted, loaded, ticks, time.monotonic() - started)


def _collect_until_loaded(
    settings: Settings,
    exchange_api_url: str,
    warehouse: Warehouse,
    daemon: LiveLoaderDaemon,
    console: Console,
    started: float,
) -> CollectorReport:
    state_path = settings.home / "collector" / "demo-checkpoint.json"
    start_checkpoint(state_path, list(LIVE_MARKETS), int(pd.Timestamp(LIVE_START).timestamp() * 1000))
    collector = Collector(
        CollectorSettings(
            markets=tuple(parse_market(m, candles=m in LIVE_CANDLE_MARKETS) for m in LIVE_MARKETS),
            project_id=LOCAL_PROJECT,
            exchange_api_url=exchange_api_url,
            stall_timeout_s=5.0,  # quiet minutes of 2019 tape last seconds at 60x: not stalls
            sweep_interval_s=3.0,
            reconnect_initial_s=0.2,
            reconnect_max_s=2.0,
            state_path=state_path,
        )
    )
    report = None
    with CollectorThread(collector) as running, console.status("live: collecting") as status:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and daemon.alive():
            emitted, loaded = _emitted(exchange_api_url), _loaded(warehouse)
            status.update(
                f"live: {sum(loaded.values()):,}/{sum(emitted.values()):,} trades in raw.trades "
                f"(loaded by market_data_sensor under the Dagster daemon), {time.monotonic() - started:.0f}s"
            )
            done = all(loaded.get(m, 0) >= n for m, n in emitted.items())
            if report is None and _replay_done(exchange_api_url) and done:
                report = running.stop()  # flushes what it holds; the sensor loads it below
            elif report is not None and done:
                break
            time.sleep(1.0)
        if report is None:
            report = running.stop()
    if not daemon.alive():
        raise ConfigError("the Dagster daemon stopped; see CRYPTOPIPE_HOME/logs/demo-daemon.log")
    return report


def _wait_for_events(instance: dg.DagsterInstance, landing: LandingArea, console: Console) -> None:
    """Until the sensor has reported everything it loaded (the UI's history is complete)."""
    deadline = time.monotonic() + EVENTS_TIMEOUT_S
    with console.status("live: waiting for the sensor's runless events"):
        while not events_cover_ledger(instance, landing):
            if time.monotonic() > deadline:
                raise ConfigError("market_data_sensor did not report what it loaded; see the daemon's log")
            time.sleep(0.5)


def _wait_for_marts(
    instance: dg.DagsterInstance, since: float, daemon: LiveLoaderDaemon, console: Console
) -> None:
    """Until marts_automation_sensor, under the daemon, has rebuilt the marts of every raw/candles
    partition the live candles changed and its runs have ended (nothing else rebuilds them: that
    is the sensor's job); raises if one of its runs failed."""
    deadline = time.monotonic() + MARTS_TIMEOUT_S
    with console.status("live: marts_automation_sensor rebuilding the marts of the live candles") as status:
        while True:
            stale = stale_mart_partitions(instance, since)
            in_flight, failed = automation_runs(instance, since)
            if failed:
                raise ConfigError(f"marts_automation_sensor run(s) {failed} failed; see `make dev`")
            if not stale and not in_flight:
                break
            if time.monotonic() > deadline or not daemon.alive():
                raise ConfigError(
                    f"marts_automation_sensor did not rebuild the marts of {stale} ({in_flight} run(s) "
                    f"still going) within {MARTS_TIMEOUT_S}s; see CRYPTOPIPE_HOME/logs/demo-daemon.log"
                )
            status.update(
                f"live: marts_automation_sensor rebuilding the marts of {', '.join(stale) or 'the live day'}"
            )
            time.sleep(1.0)
    console.print("live: marts rebuilt from the live candles by marts_automation_sensor")


def sensor_materializations(instance: dg.DagsterInstance, started_at: float) -> int:
    """How many raw/trades materializations market_data_sensor reported since `started_at`."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["raw", "trades"]), after_timestamp=started_at),
        limit=10_000,
    )
    return sum(1 for record in records.records if record.run_id == "")


def live_command(
    speed: str,
    start: str,
    markets: int,
    emulator_port: int,
    sim_port: int,
    metrics_port: int,
    console: Console,
) -> CollectorReport:
    """Continuous live path for `make live`: simulator streams (started if not up), the Pub/Sub
    emulator on a fixed port (so `make dev`'s sensor finds it), and the collector until SIGTERM.
    `markets` > 3 streams that many of the simulator's streamable markets (derived ones past five)."""
    settings = load_settings()
    live_markets = live_market_list(markets, settings)
    exchange_api_url = f"http://127.0.0.1:{sim_port}"
    simulator = None
    if not simulator_is_up(exchange_api_url):
        derived = max(0, markets - RECORDED_STREAMABLE)
        simulator = start_simulator(settings.data_dir, sim_port, derived_markets=derived)
    try:
        _check_served(exchange_api_url, live_markets)
        start_replay(exchange_api_url, speed, start or LIVE_START, None)
    except OSError as error:
        raise ConfigError(f"simulator at {exchange_api_url} refused the stream settings: {error}") from error
    os.environ["CRYPTOPIPE_EXCHANGE_API_URL"] = exchange_api_url
    try:
        with PubSubEmulator(port=emulator_port) as emulator:
            ensure_topology(LOCAL_PROJECT)
            console.print(
                f"live: {len(live_markets)} markets from simulator {exchange_api_url} (replay from "
                f"{start or LIVE_START} at {speed}x), Pub/Sub emulator {emulator.host}, "
                f"metrics http://127.0.0.1:{metrics_port}/metrics\n"
                f"then: make dev, and `dagster sensor start market_data_sensor` (or its toggle in the UI)"
            )
            collect = collector_settings(
                live_markets,
                [m for m in LIVE_CANDLE_MARKETS if m in live_markets],
                LOCAL_PROJECT,
                None,
                stall_timeout_s=10.0,
                sweep_interval_s=30.0,
                batch_max_age_s=0.2,
            )
            configure_json_logging()
            return asyncio.run(run_until_signal(Collector(collect, metrics_port=metrics_port), 0))
    finally:
        if simulator is not None:
            stop_simulator(simulator)


def live_market_list(count: int, settings: Settings) -> list[str]:
    """The demo's three markets, or the first `count` streamable markets of the simulator."""
    if count == len(LIVE_MARKETS):
        return list(LIVE_MARKETS)
    if not 1 <= count <= MAX_LIVE_MARKETS:
        raise ConfigError(f"--markets {count} must be between 1 and {MAX_LIVE_MARKETS}")
    return streamable_markets(count, settings.data_dir)


def _check_served(base_url: str, markets: list[str]) -> None:
    listed = _get(base_url, "/_sim/markets")
    served = {f"{venue}:{m['symbol']}" for m in listed for venue in m["venues"]}
    missing = [m for m in markets if m not in served]
    if missing:
        raise ConfigError(
            f"the simulator at {base_url} does not serve {missing[:3]}... ({len(missing)} markets): "
            "it was started without enough derived markets; stop it and run `make live` first"
        )
