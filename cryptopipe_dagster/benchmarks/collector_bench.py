"""collector: WebSocket trade received -> Pub/Sub confirmed latency, and trades per CPU-second.

Setup: the exchange simulator in a child process (`cryptopipe sim`, as in the demo) replays the
five streamable markets from BENCH_START = 2019-10-15T12:00Z (not the demo's 2019-10-17T05:00Z: the
Coinbase recording, which Kraken's feed also derives from, ends at 2019-10-17T10:00Z, so at 100x
those two feeds would run dry after 3 s; from BENCH_START every feed has 46 h of tape, the 30 h a
full 100x run reads included); the collector runs in this process on a
CollectorThread with its default settings and publishes to the Pub/Sub emulator (a JVM child).
The simulator's speed 1 is the recorded rate: about 0.155 trades/s per market, 0.78 trades/s for
the five, too few to measure a per-message cost. So "1x" is the base speed BASE_SPEED (60: a minute of
tape per second, ~48 trades/s for the five markets) and the multiples 1, 10, 100 replay at
BASE_SPEED, 10 * BASE_SPEED and 100 * BASE_SPEED; `details` carries the absolute speeds and rates.

- messages_per_s_per_core (size = the multiple): trades the collector received from its sockets
  in a measurement window (after a warm-up) / CPU seconds (user + system) this process spent in
  that window (getrusage(RUSAGE_SELF) deltas: the collector's event loop plus the Pub/Sub client's
  threads; the simulator and the emulator are other processes). Baseline bare_ccxt_pro: the same
  replay read by an unmodified ccxt.pro `watch_trades` loop per market that only counts the trades.
- p50/p95/p99_ms (size = the absolute replay speed): per trade, from `watch_trades` handing it to
  the collector (after ccxt parsed the frame) to Pub/Sub's confirmation of the batch that carries
  it (the publish future's done-callback, not the 20 ms settle tick). Measured by wrapping the
  collector's MarketOutbox (a subclass patched into the service module for the run: two
  timestamps per trade, no change to the collector's code). No baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from unittest import mock

from cryptopipe_dagster.benchmarks.harness import Record, latency_records, say
from cryptopipe_dagster.cli.simulator_process import running_simulator
from cryptopipe_dagster.lib.collector import service
from cryptopipe_dagster.lib.collector.background import CollectorThread
from cryptopipe_dagster.lib.collector.outbox import MarketOutbox
from cryptopipe_dagster.lib.collector.service import Collector
from cryptopipe_dagster.lib.collector.settings import CollectorSettings, parse_market
from cryptopipe_dagster.lib.pubsub.emulator import PubSubEmulator
from cryptopipe_dagster.lib.pubsub.topology import ensure_topology
from cryptopipe_dagster.simulator.clock import parse_instant
from cryptopipe_dagster.simulator.derived import streamable_markets

NAME = "collector"
START = "2019-10-17T05:00:00Z"  # the demo's replay start (freshness.py)
BENCH_START = "2019-10-15T12:00:00Z"  # this benchmark's: 46 h of tape on every feed
MARKETS = (
    "coinbaseexchange:BTC/USD",
    "bitstamp:BTC/USD",
    "bitstamp:ETH/USD",
    "bitstamp:LTC/USD",
    "kraken:BTC/USD",
)
RECORDED_TRADES_PER_S = 0.78  # the five markets' tape at speed 1 from BENCH_START (~0.155 per market)
BASE_SPEED = 60
MULTIPLES = (1, 10, 100)
SEED = 7
PROJECT = "cryptopipe-bench"


# -- the simulator in a child process, driven over its control endpoints ---------------------------
def sim_post(base_url: str, path: str, body: dict) -> dict:
    """POST a JSON body to a /_sim control endpoint."""
    request = urllib.request.Request(
        f"{base_url}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def sim_get(base_url: str, path: str) -> dict:
    """GET a /_sim control endpoint as a dict."""
    with urllib.request.urlopen(f"{base_url}{path}", timeout=10) as response:
        return json.loads(response.read())


def start_replay(
    base_url: str, speed: float, stop_after: int | str | None = None, start: str = START
) -> None:
    """As cli/live.py: freeze the simulator clock at `start` (REST answers up to the replay position)
    and restart every feed from `start` at `speed`; a feed starts when its first socket subscribes."""
    sim_post(base_url, "/_sim/clock", {"now": start})
    sim_post(base_url, "/_sim/stream", {"speed": speed, "start": start, "stop_after": stop_after})


def simulator_process(data_dir: Path):
    """The simulator in a child process (see running_simulator)."""
    return running_simulator(data_dir, seed=SEED)


def feed_counts(base_url: str) -> dict[str, int]:
    """Trades each feed has emitted in the current replay."""
    return {
        f"{feed['exchange']}:{feed['symbol']}": int(feed["emitted"])
        for feed in sim_get(base_url, "/_sim/stream")["feeds"]
    }


@dataclass(frozen=True)
class FeedAnchor:
    """A running feed's schedule: the trade at tape time t (ms) is due at wall time
    wall0 + (t - start_ms) / (speed * 1000) (epoch seconds, this machine's clock)."""

    start_ms: int
    wall0: float
    error_s: float  # half the round trip of the status request the estimate came from

    def emitted_at(self, ts_ms, speed: float):
        """Scheduled wall time (epoch s) of trades with event times ts_ms (scalar or array)."""
        return self.wall0 + (ts_ms - self.start_ms) / (speed * 1000.0)


def feed_anchors(base_url: str, speed: float, samples: int = 15) -> dict[str, FeedAnchor]:
    """Anchor of every running feed from GET /_sim/stream: the server computes a feed's position
    as start + (loop time - start wall time) * speed, so wall0 = t - (position - start) / speed for
    the wall time t the request was served at (taken as the middle of the round trip; the sample
    with the shortest round trip wins). Exact while the feed keeps its schedule (no faults, and the
    simulator keeping up, which it does at these rates)."""
    best: dict[str, FeedAnchor] = {}
    for _ in range(samples):
        sent = time.time()
        status = sim_get(base_url, "/_sim/stream")
        received = time.time()
        served, half = (sent + received) / 2, (received - sent) / 2
        for feed in status["feeds"]:
            if feed["state"] != "running" or not feed["position"] or not feed["start"]:
                continue
            start_ms, position_ms = _epoch_ms(feed["start"]), _epoch_ms(feed["position"])
            key = f"{feed['exchange']}:{feed['symbol']}"
            anchor = FeedAnchor(start_ms, served - (position_ms - start_ms) / (speed * 1000.0), half)
            if key not in best or half < best[key].error_s:
                best[key] = anchor
        time.sleep(0.01)
    return best


def _epoch_ms(iso: str) -> int:
    return int(parse_instant(iso))


# -- the collector, timed ---------------------------------------------------------------------------
@dataclass
class Probe:
    """Receive and confirm times of the trades the collector streams (shared by its outboxes)."""

    arrivals: dict = field(default_factory=dict)  # (market, trade id) -> perf_counter at receipt
    received: list = field(default_factory=list)  # (perf_counter, trades) per watch_trades result
    latencies: list = field(default_factory=list)  # (receipt perf_counter, seconds to confirmation)

    def on_received(self, market: str, trades: list) -> None:
        now = time.perf_counter()
        self.received.append((now, len(trades)))
        for trade in trades:
            self.arrivals[(market, str(trade.get("id")))] = now

    def on_confirmed(self, market: str, trade_ids: list[str], future) -> None:
        now = time.perf_counter()
        if future.cancelled() or future.exception() is not None:
            return  # the collector publishes it again; its latency is not measured
        for trade_id in trade_ids:
            arrived = self.arrivals.pop((market, trade_id), None)
            if arrived is not None:
                self.latencies.append((arrived, now - arrived))

    def received_between(self, begin: float, end: float) -> int:
        return sum(n for at, n in list(self.received) if begin <= at < end)

    def latencies_between(self, begin: float, end: float) -> list[float]:
        return [seconds for at, seconds in list(self.latencies) if begin <= at < end]


def timed_outbox(probe: Probe) -> type[MarketOutbox]:
    """A MarketOutbox that reports to `probe`; otherwise the collector's own."""

    class TimedOutbox(MarketOutbox):
        def add_trades(self, trades: list, transport: str) -> None:
            if transport == "ws" and trades:
                probe.on_received(self.spec.key, trades)
            super().add_trades(trades, transport)

        def _publish(self, records, kind, *args, **kwargs) -> None:
            super()._publish(records, kind, *args, **kwargs)
            if kind == "trades":
                ids = [str(trade_id) for trade_id in records["trade_id"].to_pylist()]
                self._in_flight[-1].future.add_done_callback(partial(probe.on_confirmed, self.spec.key, ids))

    return TimedOutbox


def collector_settings(
    base_url: str, project: str, markets: tuple[str, ...] = MARKETS, **overrides
) -> CollectorSettings:
    """The collector's defaults on `markets` (the five streamable ones by default; trades only)."""
    return CollectorSettings(
        markets=tuple(parse_market(m) for m in markets),
        project_id=project,
        exchange_api_url=base_url,
        **overrides,
    )


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _thread_cpu_s(name: str) -> float:
    for thread in threading.enumerate():
        if thread.name == name and thread.ident is not None:
            with contextlib.suppress(OSError, AttributeError):
                return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return 0.0


@dataclass
class Window:
    """One measurement window of one client at one speed."""

    speed: float
    messages: int
    cpu_s: float
    wall_s: float
    emitted: int
    loop_thread_cpu_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    report: dict = field(default_factory=dict)

    @property
    def per_core(self) -> float:
        return self.messages / self.cpu_s if self.cpu_s > 0 else 0.0

    def facts(self) -> dict:
        return {
            "speed": self.speed,
            "window_s": round(self.wall_s, 2),
            "trades_received": self.messages,
            "trades_emitted_by_simulator": self.emitted,
            "received_per_s_wall": round(self.messages / self.wall_s, 1),
            "emitted_per_s_wall": round(self.emitted / self.wall_s, 1),
            "cpu_s": round(self.cpu_s, 3),
            "cpu_utilisation": round(self.cpu_s / self.wall_s, 3),
            "event_loop_thread_cpu_s": round(self.loop_thread_cpu_s, 3),
        }


def measure_collector(
    base_url: str,
    project: str,
    speed: float,
    warmup_s: float,
    window_s: float,
    markets: tuple[str, ...] = MARKETS,
) -> Window:
    """The collector on the replay at `speed`: counts, CPU and latencies inside the window."""
    start_replay(base_url, speed, start=BENCH_START)
    probe = Probe()
    collector = Collector(collector_settings(base_url, project, markets))
    with mock.patch.object(service, "MarketOutbox", timed_outbox(probe)):
        running = CollectorThread(collector).start()
        try:
            time.sleep(warmup_s)
            emitted0, cpu0 = sum(feed_counts(base_url).values()), _cpu_s()
            loop0, began = _thread_cpu_s("cryptopipe-collector"), time.perf_counter()
            time.sleep(window_s)
            cpu1, loop1, ended = _cpu_s(), _thread_cpu_s("cryptopipe-collector"), time.perf_counter()
            emitted1 = sum(feed_counts(base_url).values())
        finally:
            report = running.stop()
    return Window(
        speed=speed,
        messages=probe.received_between(began, ended),
        cpu_s=cpu1 - cpu0,
        wall_s=ended - began,
        emitted=emitted1 - emitted0,
        loop_thread_cpu_s=loop1 - loop0,
        latencies=probe.latencies_between(began, ended),
        report=report.as_dict(),
    )


# -- the baseline: bare ccxt.pro ------------------------------------------------------------------
class BareCcxt:
    """One unmodified ccxt.pro client per market (configured as the collector configures its own),
    each in a `watch_trades` loop that only counts, on a thread with its own event loop."""

    THREAD = "bare-ccxt-pro"

    def __init__(self, make_exchange) -> None:
        self.make_exchange = make_exchange
        self.received: list = []  # (perf_counter, trades)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=self.THREAD, daemon=True)

    def __enter__(self) -> BareCcxt:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._run())
        finally:
            self._loop.close()

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        self._ready.set()
        markets = [m.split(":") for m in MARKETS]
        exchanges = [self.make_exchange(exchange) for exchange, _symbol in markets]
        tasks = [
            asyncio.create_task(self._watch(ex, symbol))
            for ex, (_exchange, symbol) in zip(exchanges, markets, strict=True)
        ]
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for exchange in exchanges:
            with contextlib.suppress(Exception):
                await exchange.close()

    async def _watch(self, exchange, symbol: str) -> None:
        while True:
            trades = await exchange.watch_trades(symbol)
            self.received.append((time.perf_counter(), len(trades)))


def measure_bare(base_url: str, project: str, speed: float, warmup_s: float, window_s: float) -> Window:
    """The bare ccxt.pro loops on the same replay at `speed`."""
    start_replay(base_url, speed, start=BENCH_START)
    factory = Collector(collector_settings(base_url, project)).make_exchange
    with BareCcxt(factory) as bare:
        time.sleep(warmup_s)
        emitted0, cpu0 = sum(feed_counts(base_url).values()), _cpu_s()
        loop0, began = _thread_cpu_s(BareCcxt.THREAD), time.perf_counter()
        time.sleep(window_s)
        cpu1, loop1, ended = _cpu_s(), _thread_cpu_s(BareCcxt.THREAD), time.perf_counter()
        emitted1 = sum(feed_counts(base_url).values())
    messages = sum(n for at, n in list(bare.received) if began <= at < ended)
    return Window(speed, messages, cpu1 - cpu0, ended - began, emitted1 - emitted0, loop1 - loop0)


# -- many markets at their recorded rates -----------------------------------------------------------
MANY_MARKETS = 100
MANY_TARGETS = {"cpu_share_of_one_core": 0.5, "p99_ms": 500.0}


def many_markets_records(data_dir: Path, quick: bool) -> list[Record]:
    """The collector on MANY_MARKETS markets (5 recorded + derived ones, simulator/derived.py) at
    speed 1, the tape's own pace: CPU share of one core and receive -> confirmed latency, measured.
    (Its peak RSS is the memory benchmark's, in a fresh child process.)"""
    warmup_s, window_s = (5.0, 10.0) if quick else (10.0, 40.0)
    markets = tuple(streamable_markets(MANY_MARKETS, data_dir))
    derived = MANY_MARKETS - len(MARKETS)
    with running_simulator(data_dir, seed=SEED, derived_markets=derived) as base_url, PubSubEmulator():
        ensure_topology(PROJECT)
        ours = measure_collector(base_url, PROJECT, 1.0, warmup_s, window_s, markets)
    share = ours.cpu_s / ours.wall_s
    say(
        f"{NAME}: {MANY_MARKETS} markets at speed 1: {share:.1%} of one core, "
        f"{ours.messages:,} trades in {ours.wall_s:.0f} s"
    )
    details = {
        "note": f"{MANY_MARKETS} markets at their recorded rates (speed 1)",
        "markets": f"{len(MARKETS)} recorded + {derived} derived (simulator/derived.py)",
        "cpu": "getrusage(RUSAGE_SELF) over the window: the collector's event loop and the Pub/Sub "
        "client's threads (simulator and emulator are other processes)",
        "target": f"<= {MANY_TARGETS['cpu_share_of_one_core']:.0%} of one core",
        **ours.facts(),
    }
    records = [Record(NAME, MANY_MARKETS, "cpu_share_of_one_core", share, details=details)]
    if ours.latencies:
        latency_details = {
            **details,
            "target": f"p99 < {MANY_TARGETS['p99_ms']:.0f} ms",
            "trades": len(ours.latencies),
        }
        latency_details.pop("cpu")
        records += latency_records(
            NAME, MANY_MARKETS, ours.latencies, None, None, latency_details, "_100_markets"
        )
    return records


# -- the benchmark --------------------------------------------------------------------------------
def run(data_dir: Path, quick: bool = False) -> list[Record]:
    warmup_s, window_s = (2.0, 4.0) if quick else (3.0, 15.0)
    started = time.monotonic()
    records: list[Record] = []
    with simulator_process(data_dir) as base_url, PubSubEmulator() as emulator:
        ensure_topology(PROJECT)
        say(f"{NAME}: simulator {base_url}, Pub/Sub emulator {emulator.host}, {os.cpu_count()} cores")
        for multiple in MULTIPLES:
            speed = BASE_SPEED * multiple
            ours = measure_collector(base_url, PROJECT, speed, warmup_s, window_s)
            bare = measure_bare(base_url, PROJECT, speed, warmup_s, window_s)
            say(
                f"{NAME}: {multiple}x (speed {speed}): collector {ours.per_core:,.0f} trades/CPU-s "
                f"({ours.messages:,} trades, {ours.cpu_s:.2f} CPU-s), bare ccxt.pro {bare.per_core:,.0f} "
                f"({bare.messages:,} trades, {bare.cpu_s:.2f} CPU-s)"
            )
            offered = RECORDED_TRADES_PER_S * speed
            details = {
                "note": f"{multiple}x = speed {speed} (recorded rate = speed 1; base speed {BASE_SPEED})",
                "recorded_rate": f"speed 1 = the tape's own pace, ~{RECORDED_TRADES_PER_S} trades/s "
                f"for the {len(MARKETS)} markets",
                "base_speed": BASE_SPEED,
                "replay_start": BENCH_START,
                "speed": speed,
                "offered_trades_per_s_approx": round(offered),
                "markets": list(MARKETS),
                "warmup_s": warmup_s,
                "cpu": "getrusage(RUSAGE_SELF) user+system over the window: this process only "
                "(simulator and Pub/Sub emulator are child processes)",
                "ours": {
                    **ours.facts(),
                    "collector_report": {
                        k: v for k, v in ours.report.items() if k not in ("checkpoint", "markets")
                    },
                },
                "bare_ccxt_pro": bare.facts(),
            }
            records.append(
                Record(
                    NAME,
                    multiple,
                    "messages_per_s_per_core",
                    ours.per_core,
                    "bare_ccxt_pro",
                    bare.per_core,
                    details=details,
                )
            )
            if ours.latencies:
                latency_details = {
                    "note": f"received -> Pub/Sub confirmed, speed {speed} ({multiple}x)",
                    "scope": "watch_trades result -> publish future done (emulator on loopback)",
                    "trades": len(ours.latencies),
                    "batch_max_age_s": collector_settings(base_url, PROJECT).batch_max_age_s,
                    "speed": speed,
                    "multiple": multiple,
                }
                records += latency_records(NAME, speed, ours.latencies, None, None, latency_details)
                say(
                    f"{NAME}: speed {speed}: receive -> confirmed "
                    + ", ".join(f"{r.metric} {r.value:.0f}" for r in records[-3:])
                )
    records += many_markets_records(data_dir, quick)
    say(f"{NAME}: done in {time.monotonic() - started:.0f} s")
    return records
