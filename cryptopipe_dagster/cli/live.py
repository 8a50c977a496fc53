"""The live half of `make demo`: simulator streams -> collector -> Pub/Sub emulator -> sensor -> DuckDB.

Bounded: the simulator replays a fixed number of trades per market (with stream faults injected),
the collector publishes them, market_data_sensor's ticks land them and launch the loader runs on
the local instance (they show in `make dev`), then dbt builds the trade-built candles and the
reconciliation check compares them with the exchange's 1m candles.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from dataclasses import dataclass

import dagster as dg
from rich.console import Console

from cryptopipe_dagster.cli.collect import collector_settings, run_until_signal
from cryptopipe_dagster.cli.simulator_process import simulator_is_up, start_simulator, stop_simulator
from cryptopipe_dagster.defs.resources import WarehouseResource
from cryptopipe_dagster.defs.streaming.drain import drain_once
from cryptopipe_dagster.defs.streaming.resources import LOCAL_PROJECT, PubSubResource
from cryptopipe_dagster.lib.collector import Collector, CollectorReport, CollectorSettings, parse_market
from cryptopipe_dagster.lib.collector.background import CollectorThread
from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.logs import configure_json_logging
from cryptopipe_dagster.lib.pubsub.emulator import PubSubEmulator
from cryptopipe_dagster.lib.pubsub.topology import ensure_topology
from cryptopipe_dagster.lib.settings import Settings, load_settings
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse

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


@dataclass(frozen=True)
class LiveResult:
    """What the live run did."""

    report: CollectorReport
    emitted: dict[str, int]
    loaded: dict[str, int]
    runs: int
    seconds: float


def _post(base_url: str, path: str, body: dict) -> None:
    request = urllib.request.Request(
        f"{base_url}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def _get(base_url: str, path: str) -> dict:
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
    feeds = _get(base_url, "/_sim/stream")["feeds"]
    wanted = {tuple(m.split(":")) for m in LIVE_MARKETS}
    return all(f["state"] == "stopped" for f in feeds if (f["exchange"], f["symbol"]) in wanted)


def _loaded(warehouse: DuckDBWarehouse) -> dict[str, int]:
    counts = warehouse.query_df(
        "select exchange || ':' || symbol as market, count(*) as n from raw.trades group by all", {}
    )
    return dict(zip(counts["market"], counts["n"].astype(int), strict=True))


def run_live(
    settings: Settings, simulator_url: str, instance: dg.DagsterInstance, console: Console
) -> LiveResult:
    """Replay, collect, land and load; raises ConfigError when trades are missing at the end."""
    started = time.monotonic()
    warehouse = DuckDBWarehouse(settings.duckdb_path)
    warehouse.ensure_schema()
    _post(simulator_url, "/_sim/faults", {"spec": LIVE_FAULTS, "stall_seconds": 2.0})
    start_replay(simulator_url, LIVE_SPEED, LIVE_START, LIVE_TRADES)
    with PubSubEmulator() as emulator:
        ensure_topology(LOCAL_PROJECT)
        resources = {
            "pubsub": PubSubResource(
                project_id=LOCAL_PROJECT, emulator_host=emulator.host, pull_timeout_s=1.0
            ),
            "warehouse": WarehouseResource(duckdb_path=str(settings.duckdb_path)),
        }
        collector = Collector(
            CollectorSettings(
                markets=tuple(parse_market(m, candles=m in LIVE_CANDLE_MARKETS) for m in LIVE_MARKETS),
                project_id=LOCAL_PROJECT,
                simulator_url=simulator_url,
                stall_timeout_s=5.0,  # quiet minutes of 2019 tape last seconds at 60x: not stalls
                sweep_interval_s=3.0,
                reconnect_initial_s=0.2,
                reconnect_max_s=2.0,
                state_path=settings.home / "collector" / "demo-checkpoint.json",
            )
        )
        cursor, runs = None, 0
        with CollectorThread(collector) as running, console.status("live: collecting") as status:
            deadline = time.monotonic() + TIMEOUT_S
            while time.monotonic() < deadline:
                tick = drain_once(instance, resources, cursor)
                if tick.failed:
                    raise ConfigError(f"micro-batch runs failed: {tick.failed}; see `make dev`")
                cursor, runs = tick.cursor, runs + len(tick.executed)
                emitted, loaded = _emitted(simulator_url), _loaded(warehouse)
                status.update(
                    f"live: {sum(loaded.values()):,}/{sum(emitted.values()):,} trades in raw.trades, "
                    f"{runs} loader runs, {time.monotonic() - started:.0f}s"
                )
                if _replay_done(simulator_url) and all(loaded.get(m, 0) >= n for m, n in emitted.items()):
                    break
                time.sleep(1.0)
            report = running.stop()
        for _ in range(2):  # what the collector flushed on its way out
            tick = drain_once(instance, resources, cursor)
            cursor, runs = tick.cursor, runs + len(tick.executed)
    _post(simulator_url, "/_sim/faults", {"spec": ""})
    _post(simulator_url, "/_sim/clock", {"now": None})  # back to the wall clock
    emitted, loaded = _emitted(simulator_url), _loaded(warehouse)
    missing = {m: n - loaded.get(m, 0) for m, n in emitted.items() if loaded.get(m, 0) != n}
    if missing:
        raise ConfigError(f"live path: raw.trades differs from the emitted trades by {missing}")
    return LiveResult(report, emitted, loaded, runs, time.monotonic() - started)


def live_command(
    speed: str, start: str, emulator_port: int, sim_port: int, metrics_port: int, console: Console
) -> CollectorReport:
    """Continuous live path for `make live`: simulator streams (started if not up), the Pub/Sub
    emulator on a fixed port (so `make dev`'s sensor finds it), and the collector until SIGTERM."""
    settings = load_settings()
    simulator_url = f"http://127.0.0.1:{sim_port}"
    simulator = None if simulator_is_up(simulator_url) else start_simulator(settings.data_dir, sim_port)
    try:
        start_replay(simulator_url, speed, start or LIVE_START, None)
    except OSError as error:
        raise ConfigError(f"simulator at {simulator_url} refused the stream settings: {error}") from error
    os.environ["CRYPTOPIPE_SIMULATOR_URL"] = simulator_url
    try:
        with PubSubEmulator(port=emulator_port) as emulator:
            ensure_topology(LOCAL_PROJECT)
            console.print(
                f"live: simulator {simulator_url} (replay from {start or LIVE_START} at {speed}x), "
                f"Pub/Sub emulator {emulator.host}, metrics http://127.0.0.1:{metrics_port}/metrics\n"
                f"then: PUBSUB_EMULATOR_HOST={emulator.host} make dev, and turn on market_data_sensor"
            )
            collect = collector_settings(
                list(LIVE_MARKETS),
                list(LIVE_CANDLE_MARKETS),
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
