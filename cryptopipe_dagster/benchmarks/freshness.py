"""end_to_end_freshness: the live path as deployed, from a trade's emission by the exchange simulator
to its row queryable in raw.trades: WebSocket -> collector -> Pub/Sub emulator -> market_data_sensor
under the real `dagster-daemon` (its code server runs the ticks) -> DuckDB.

Two rows, each for a window of FULL_S (10 min; QUICK_S with --quick) of wall time after a warm-up:
  x60_5_markets     the five recorded markets at replay speed 60 (~50 trades/s in all);
  x1_100_markets    100 markets (5 recorded + 95 derived, simulator/derived.py) at their recorded
                    rates (speed 1, ~16 trades/s in all).
Both get a 20x burst on every stream in the middle of the window (the simulator's ws_burst fault:
BURST_MESSAGES messages sent 20 times faster than the replay).

Figures per row: p50/p95/p99 of emission -> queryable per trade, with the medians of its stages
(collector: emitted -> ingested_at; pubsub: ingested_at -> published_at; loader: published_at ->
loaded_at, i.e. the wait for the tick's next pull, landing and the MERGE); backlog (trades emitted
minus trades in raw.trades) at the end of the window and its maximum, sampled every 10 s; Dagster
runs launched per minute (the sensor launches none: it loads in its tick); and the CPU time of the
daemon and its code server per loaded trade.

Per trade: emitted = the simulator's schedule for it (feed anchors from GET /_sim/stream, see
collector_bench.feed_anchors), queryable = `loaded_at` of the ops.loaded_batches row that carried
it, matched on (exchange, symbol, ingested_at, source). A burst sends its trades ahead of their
schedule, when exactly is not known here, so the burst's trades (by ledger position, with a
margin) are left out of the percentiles and counted in `burst_trades`; the burst shows in the
backlog samples instead.
"""

from __future__ import annotations

import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import psutil

from cryptopipe_dagster.benchmarks.collector_bench import feed_anchors, feed_counts, sim_get, sim_post
from cryptopipe_dagster.benchmarks.harness import Record, latency_records, say
from cryptopipe_dagster.cli.daemon import LiveLoaderDaemon, daemon_env
from cryptopipe_dagster.cli.simulator_process import running_simulator
from cryptopipe_dagster.lib.collector import Collector, CollectorSettings, parse_market
from cryptopipe_dagster.lib.collector.background import CollectorThread
from cryptopipe_dagster.lib.collector.checkpoint import start_checkpoint
from cryptopipe_dagster.lib.pubsub.emulator import PubSubEmulator
from cryptopipe_dagster.lib.pubsub.topology import ensure_topology
from cryptopipe_dagster.lib.settings import load_settings
from cryptopipe_dagster.lib.warehouse import DuckDBWarehouse
from cryptopipe_dagster.lib.warehouse.duckdb_landing import DuckDBLanding
from cryptopipe_dagster.simulator.clock import iso_ms, parse_instant
from cryptopipe_dagster.simulator.derived import streamable_markets

NAME = "end_to_end_freshness"
START = "2019-10-16T23:00:00Z"  # 11 h of tape on every recording: room for 10 min at speed 60
FULL_S, QUICK_S = 600.0, 20.0
WARMUP_S = 20.0  # the daemon's first ticks and the collector's first fills: not counted
SAMPLE_S = 10.0
TAIL_S = 45.0  # tape beyond the window (the feeds start a few seconds before it): then the replay ends
DRAIN_TIMEOUT_S = 180.0
BURST_FACTOR, BURST_MESSAGES = 20.0, 300
QUIET_STALL_TIMEOUT_S = 60.0
TARGET_P95_S = 1.0
PROJECT = "cryptopipe-bench"
SEED = 7
_EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass(frozen=True)
class Scenario:
    """One row: how many markets, at which replay speed, and at which message the burst comes."""

    label: str
    markets: int
    speed: float
    burst_at: int  # message number on each stream (about mid-window at this speed)


SCENARIOS = (Scenario("x60_5_markets", 5, 60.0, 3_000), Scenario("x1_100_markets", 100, 1.0, 50))


def _seconds(times: pd.Series) -> np.ndarray:
    return ((pd.to_datetime(times, utc=True) - _EPOCH) / pd.Timedelta(seconds=1)).to_numpy(dtype=float)


def _loaded_count(duckdb_path: Path) -> int:
    try:
        return int(DuckDBWarehouse(duckdb_path).query_df("select count(*) as n from raw.trades")["n"][0])
    except Exception:  # noqa: BLE001 - not created yet, or the file busy past the wait: count later
        return -1


class TreeCpu:
    """CPU seconds (user + system) used by process trees since `start()`, sampled per process so
    that a process replaced in between (a run's process, a restarted server) still counts up to its
    last sample."""

    def __init__(self, *roots: psutil.Process) -> None:
        self.roots = roots
        self._base: dict[int, float] = {}
        self._last: dict[int, float] = {}

    def _now(self) -> dict[int, float]:
        seen = {}
        processes = [p for root in self.roots for p in [root, *_children(root)]]
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            seen[process.pid] = times.user + times.system
        return seen

    def start(self) -> None:
        """Take the baseline."""
        self._base = self._now()
        self._last = dict(self._base)

    def sample(self) -> float:
        """Record the processes alive now; the CPU seconds used since start()."""
        self._last.update(self._now())
        return sum(cpu - self._base.get(pid, 0.0) for pid, cpu in self._last.items())


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.Error:  # exited: its last sample stands
        return []


def _wait_running(base_url: str, markets: list[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = {
            f"{f['exchange']}:{f['symbol']}"
            for f in sim_get(base_url, "/_sim/stream")["feeds"]
            if f["state"] == "running" and f["position"]
        }
        if set(markets) <= running:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{NAME}: the collector did not subscribe to every market within {timeout_s} s")


def _caught_up(base_url: str, markets: list[str], duckdb_path: Path) -> bool:
    """Every feed of the run has stopped and raw.trades holds as many trades as they emitted."""
    feeds = sim_get(base_url, "/_sim/stream")["feeds"]
    stopped = {f"{f['exchange']}:{f['symbol']}" for f in feeds if f["state"] == "stopped"}
    return set(markets) <= stopped and _loaded_count(duckdb_path) >= sum(feed_counts(base_url).values())


def _burst_ids(base_url: str, markets: list[str], burst_at: int) -> set[tuple[str, str, str]]:
    """(exchange, symbol, trade_id) of the trades each stream sent in its burst (with a margin: a
    message may carry several trades)."""
    ids = set()
    for market in markets:
        exchange, symbol = market.split(":")
        query = urllib.parse.urlencode(
            {
                "exchange": exchange,
                "symbol": symbol,
                "offset": max(0, burst_at - 10),
                "limit": 3 * BURST_MESSAGES,
            }
        )
        ids |= {(exchange, symbol, str(i)) for i in sim_get(base_url, f"/_sim/stream/emitted?{query}")["ids"]}
    return ids


def _ledger_diff(base_url: str, markets: list[str], duckdb_path: Path) -> dict[str, int]:
    """Trades the streams emitted but raw.trades lacks (lost), and stored but never emitted (extra)."""
    stored = DuckDBWarehouse(duckdb_path).query_df("select exchange, symbol, trade_id from raw.trades")
    stored_keys = set(zip(stored["exchange"], stored["symbol"], stored["trade_id"].astype(str), strict=True))
    emitted_keys = set()
    for market in markets:
        exchange, symbol = market.split(":")
        query = urllib.parse.urlencode({"exchange": exchange, "symbol": symbol})
        ids = sim_get(base_url, f"/_sim/stream/emitted?{query}")["ids"]
        emitted_keys |= {(exchange, symbol, str(i)) for i in ids}
    return {"lost": len(emitted_keys - stored_keys), "extra": len(stored_keys - emitted_keys)}


def _queryable_times(duckdb_path: Path) -> pd.DataFrame:
    """Every loaded trade with the loaded_at of the first ledger batch that carried it."""
    trades = DuckDBWarehouse(duckdb_path).query_df(
        "select exchange, symbol, trade_id, ts, ingested_at, source from raw.trades"
    )
    ledger = DuckDBLanding(duckdb_path).loaded_batches()
    ledger = ledger[ledger["kind"] == "trades"]
    first = ledger.groupby(["exchange", "symbol", "ingested_at", "source"], as_index=False).agg(
        published_at=("published_at", "min"), loaded_at=("loaded_at", "min")
    )
    for frame in (trades, first):
        frame["ingested_at"] = pd.to_datetime(frame["ingested_at"], utc=True)
        for column in ("exchange", "symbol", "source"):
            frame[column] = frame[column].astype(str)
    return trades.merge(first, on=["exchange", "symbol", "ingested_at", "source"], how="inner")


def run_scenario(data_dir: Path, scenario: Scenario, measured_s: float) -> tuple[list[Record], dict]:
    """One row: simulator, emulator, daemon + sensor, collector; the window; the figures."""
    markets = streamable_markets(scenario.markets, data_dir)
    tape_s = (WARMUP_S + measured_s + TAIL_S) * scenario.speed
    stop_at = iso_ms(parse_instant(START) + int(tape_s * 1000))
    with (
        tempfile.TemporaryDirectory(prefix="cryptopipe-bench-") as tmp,
        running_simulator(data_dir, seed=SEED, derived_markets=max(0, scenario.markets - 5)) as base_url,
        PubSubEmulator() as emulator,
    ):
        ensure_topology(PROJECT)
        settings = load_settings({"CRYPTOPIPE_HOME": tmp})
        home, duckdb_path = settings.home, settings.duckdb_path
        DuckDBWarehouse(duckdb_path).ensure_schema()
        env = daemon_env(settings, emulator.host, PROJECT)
        say(f"{NAME} {scenario.label}: starting the Dagster daemon and market_data_sensor")
        with LiveLoaderDaemon(env, home / "daemon.log") as daemon:
            figures = _measure(base_url, scenario, markets, stop_at, measured_s, home, daemon)
            trades = _queryable_times(duckdb_path)
            with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
                figures["runs"] = instance.get_runs_count()
    return _records(scenario, figures, trades, measured_s), figures


def _measure(
    base_url: str,
    scenario: Scenario,
    markets: list[str],
    stop_at: str,
    measured_s: float,
    home: Path,
    daemon: LiveLoaderDaemon,
) -> dict:
    duckdb_path = home / "warehouse.duckdb"
    burst = {"spec": f"ws_burst@{scenario.burst_at}", "burst_factor": BURST_FACTOR}
    sim_post(base_url, "/_sim/faults", {**burst, "burst_messages": BURST_MESSAGES})
    sim_post(base_url, "/_sim/clock", {"now": START})
    sim_post(base_url, "/_sim/stream", {"speed": scenario.speed, "start": START, "stop_after": stop_at})
    state_path = home / "collector" / "checkpoint.json"
    start_checkpoint(state_path, markets, int(pd.Timestamp(START).timestamp() * 1000))
    settings = CollectorSettings(
        markets=tuple(parse_market(m) for m in markets),
        project_id=PROJECT,
        exchange_api_url=base_url,
        state_path=state_path,
        # The stall watchdog counts trade messages only: at recorded rates a 2019 market is often
        # silent for more than the default 10 s, and every false stall means a reconnect.
        stall_timeout_s=QUIET_STALL_TIMEOUT_S if scenario.speed < 10 else 10.0,
    )
    samples = []
    with CollectorThread(Collector(settings)) as running:
        _wait_running(base_url, markets)
        anchors = feed_anchors(base_url, scenario.speed)
        time.sleep(WARMUP_S)
        cpu = TreeCpu(psutil.Process(daemon.process.pid), psutil.Process(daemon.code_server.pid))
        cpu.start()
        t0, loaded0 = time.monotonic(), _loaded_count(duckdb_path)
        while (elapsed := time.monotonic() - t0) < measured_s:
            time.sleep(min(SAMPLE_S, max(0.0, measured_s - elapsed)))
            # Loaded first: its read may wait for the loader's file lock, and emitted read after it
            # then makes the backlog an upper bound, never a negative number.
            loaded = _loaded_count(duckdb_path)
            emitted = sum(feed_counts(base_url).values())
            cpu.sample()
            samples.append((round(time.monotonic() - t0, 1), emitted, loaded))
            say(
                f"{NAME} {scenario.label}: {samples[-1][0]:.0f}/{measured_s:.0f} s, emitted {emitted:,}, "
                f"loaded {loaded:,}, backlog {emitted - loaded:,}"
            )
        cpu_s = cpu.sample()
        burst_ids = _burst_ids(base_url, markets, scenario.burst_at)
        # The replay ends TAIL_S after the window: then every emitted trade must be in raw.trades.
        drained_at = time.monotonic()
        deadline = drained_at + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and not _caught_up(base_url, markets, duckdb_path):
            time.sleep(2.0)
        drain_s = time.monotonic() - drained_at
        report = running.stop()
    return {
        "anchors": anchors,
        "burst_ids": burst_ids,
        "loaded_at_start": loaded0,
        "window_start_epoch": time.time() - (time.monotonic() - t0),
        "samples": samples,
        "cpu_s": cpu_s,
        "published": report.records_published,
        "collector_reconnects": report.reconnects,
        "collector_gap_fills": report.gap_fills,
        "drain_s": round(drain_s, 1),
        "loaded_after_drain": _loaded_count(duckdb_path),
        **_ledger_diff(base_url, markets, duckdb_path),
    }


def _records(scenario: Scenario, figures: dict, trades: pd.DataFrame, measured_s: float) -> list[Record]:
    anchors = figures.pop("anchors")
    markets = (trades["exchange"] + ":" + trades["symbol"]).to_numpy()
    ts_ms = ((pd.to_datetime(trades["ts"], utc=True) - _EPOCH) // pd.Timedelta(milliseconds=1)).to_numpy()
    emitted_at = np.full(len(trades), np.nan)
    for market, anchor in anchors.items():
        mask = markets == market
        emitted_at[mask] = anchor.emitted_at(ts_ms[mask].astype(float), scenario.speed)
    window_start = figures.pop("window_start_epoch")
    burst_ids = figures.pop("burst_ids")
    in_burst = np.array(
        [
            key in burst_ids
            for key in zip(trades["exchange"], trades["symbol"], trades["trade_id"].astype(str), strict=True)
        ],
        dtype=bool,
    )
    in_window = (emitted_at >= window_start) & (emitted_at < window_start + measured_s)
    keep = in_window & ~in_burst
    emitted = emitted_at[keep]
    ingested, published, loaded = (
        _seconds(trades[column])[keep] for column in ("ingested_at", "published_at", "loaded_at")
    )
    freshness = loaded - emitted
    if not len(freshness):
        raise RuntimeError(f"{NAME}: no loaded trade was emitted inside the measured window")
    samples = figures["samples"]
    backlog = [emitted_n - loaded_n for _, emitted_n, loaded_n in samples if loaded_n >= 0]
    loaded_in_window = max(1, samples[-1][2] - figures["loaded_at_start"]) if samples else 1
    details = {
        "note": f"{scenario.label}: {scenario.markets} markets at speed {scenario.speed:g}, 20x burst, "
        "dagster-daemon",
        "scenario": scenario.label,
        "markets": scenario.markets,
        "speed": scenario.speed,
        "measured_s": measured_s,
        "burst": f"ws_burst@{scenario.burst_at}: {BURST_MESSAGES} messages at {BURST_FACTOR:g}x per stream",
        "target": f"p95 < {TARGET_P95_S:g} s",
        "trades": int(keep.sum()),
        "burst_trades": int((in_window & in_burst).sum()),
        "median_ms": {
            "collector": round(float(np.median(ingested - emitted)) * 1000, 1),
            "pubsub": round(float(np.median(published - ingested)) * 1000, 1),
            "loader": round(float(np.median(loaded - published)) * 1000, 1),
        },
        "backlog_at_end": backlog[-1] if backlog else None,
        "backlog_max": max(backlog) if backlog else None,
        "backlog_samples": samples,
        "runs_launched_per_min": round(figures["runs"] / (measured_s / 60), 2),
        "loader_cpu_ms_per_trade": round(figures["cpu_s"] * 1000 / loaded_in_window, 3),
        "loader_cpu_share_of_one_core": round(figures["cpu_s"] / measured_s, 3),
        "published_by_collector": figures["published"],
        "loaded_after_drain": figures["loaded_after_drain"],
        "lost_vs_ledger": figures["lost"],
        "extra_vs_ledger": figures["extra"],
        "drain_s": figures["drain_s"],
        "collector_reconnects": figures["collector_reconnects"],
        "collector_gap_fills": figures["collector_gap_fills"],
        "loader": "market_data_sensor under dagster-daemon (default run launcher), tick 30 s",
    }
    # One benchmark name, so a partial re-run replaces these records; the row is the market count.
    records = latency_records(NAME, scenario.markets, list(freshness), None, None, details)
    extra = [
        Record(
            NAME,
            scenario.markets,
            "backlog_at_end",
            float(details["backlog_at_end"] or 0),
        ),
        Record(NAME, scenario.markets, "runs_per_min", details["runs_launched_per_min"]),
        Record(
            NAME,
            scenario.markets,
            "cpu_ms_per_trade",
            details["loader_cpu_ms_per_trade"],
        ),
    ]
    p95 = next(r.value for r in records if r.metric == "p95_ms")
    say(
        f"{NAME} {scenario.label}: {details['trades']:,} trades, p95 {p95:,.0f} ms "
        f"(target < {TARGET_P95_S * 1000:,.0f} ms: {'met' if p95 < TARGET_P95_S * 1000 else 'MISSED'}), "
        f"backlog at end {details['backlog_at_end']}, {details['runs_launched_per_min']} runs/min, "
        f"{details['loader_cpu_ms_per_trade']} ms loader CPU per trade; stages {details['median_ms']}"
    )
    return records + extra


def run(data_dir: Path, quick: bool = False) -> list[Record]:
    measured_s = QUICK_S if quick else FULL_S
    records: list[Record] = []
    for scenario in SCENARIOS:
        rows, _ = run_scenario(data_dir, scenario, measured_s)
        records += rows
    return records
