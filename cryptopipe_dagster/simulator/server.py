"""The exchange simulator's HTTP server: one port, each exchange under /<ccxt id>, controls under /_sim.

`create_app` builds the aiohttp app, `run_simulator` serves it in the foreground, `SimulatorServer`
runs it on a background thread (tests, benchmarks, the demo). Each venue's WebSocket feed is on the
same port at the path ccxt.pro ends up with after `point_exchange_at`
(ws://host/coinbaseexchange, ws://host/bitstamp, ws://host/kraken/v2).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from cryptopipe_dagster.simulator.clock import SimClock
from cryptopipe_dagster.simulator.control import control_routes, describe
from cryptopipe_dagster.simulator.derived import derived_markets as derive_markets
from cryptopipe_dagster.simulator.faults import FaultInjector, FaultSettings, parse_fault_spec
from cryptopipe_dagster.simulator.flash_crash import FlashCrash, crashed_market, parse_flash_crash
from cryptopipe_dagster.simulator.hub import StreamHub
from cryptopipe_dagster.simulator.market_data import cached_store
from cryptopipe_dagster.simulator.state import SIM_STATE, SimState, with_faults
from cryptopipe_dagster.simulator.stream_conn import websocket_handler
from cryptopipe_dagster.simulator.stream_control import stream_routes
from cryptopipe_dagster.simulator.tape import stream_config
from cryptopipe_dagster.simulator.venues import STREAMS, VENUES, venues_for
from cryptopipe_dagster.simulator.venues.common import Venue

log = logging.getLogger("cryptopipe.simulator")


def create_app(
    data_dir: Path,
    *,
    seed: int = 0,
    faults: str = "",
    now: datetime | None = None,
    retry_after_s: float = 1.0,
    slow_seconds: float = 3.0,
    include_markets: bool = False,
    stall_seconds: float = 2.0,
    burst_messages: int = 50,
    burst_factor: float = 100.0,
    stream_speed: float | str | None = 1.0,
    stream_start: datetime | str | None = None,
    stream_stop_after: int | str | datetime | None = None,
    derived_markets: int = 0,
    flash_crash: FlashCrash | str | None = None,
) -> web.Application:
    """The simulator app serving every recording in `data_dir` under its exchange's real API.

    `faults` is a spec such as "rate_limit:0.05,slow@3,ws_disconnect@500" (ValueError naming a bad
    token); `now` freezes the clock (default: wall clock); `include_markets` also faults the markets
    endpoints. Streams replay at `stream_speed` (1 = real time, 10, or "max") from `stream_start`
    (default: the clock when a feed starts), optionally stopping after `stream_stop_after` trades
    (an int) or at an instant. `derived_markets` (default 0: only the recordings) adds that many
    markets derived from the recordings (S001/USD, ... spread over the venues; see derived.py).
    `flash_crash` (a FlashCrash or its spec text, flash_crash.py) makes one served market crash and
    rebound within minutes, in its candles of every size and its trades alike.
    """
    settings = FaultSettings(
        retry_after_s, slow_seconds, include_markets, stall_seconds, int(burst_messages), burst_factor
    )
    injector = FaultInjector(seed=seed, plan=parse_fault_spec(faults), settings=settings)
    clock = SimClock(now)
    hub = StreamHub(clock, injector, stream_config(stream_speed, stream_start, stream_stop_after))
    state = SimState(store=cached_store(Path(data_dir), seed), clock=clock, faults=injector, streams=hub)
    app = web.Application()
    app[SIM_STATE] = state
    recorded = state.store.exchanges()
    for exchange in sorted(set(recorded) - {venue.source_exchange() for venue in VENUES.values()}):
        log.warning("simulator_skip exchange=%s reason=no_api_for_venue", exchange)
    derived = derive_markets(state.store, derived_markets)
    crash = parse_flash_crash(flash_crash) if isinstance(flash_crash, str) else flash_crash
    for venue_class in venues_for(recorded):
        venue = venue_class(state.store, state.clock)
        venue.add_markets([m for m in derived if m.exchange == venue.exchange_id])
        if crash is not None and crash.exchange == venue.exchange_id:
            served = venue.market(crash.symbol)
            if served is None:
                raise ValueError(f"flash crash: {crash.exchange} serves no {crash.symbol}")
            venue.replace_market(crashed_market(served, crash))
        _add_venue(app, state, venue)
    app.router.add_routes(control_routes())
    app.router.add_routes(stream_routes())
    app.on_shutdown.append(_close_streams)
    return app


def _add_venue(app: web.Application, state: SimState, venue: Venue) -> None:
    """Mount a venue's REST routes under /<id> and, when it has one, its WebSocket dialect."""
    exchange = venue.exchange_id
    venue.horizon = state.streams
    state.venues[exchange] = venue
    for route in venue.routes():
        app.router.add_route(route.method, f"/{exchange}{route.path}", with_faults(state, venue, route))
    stream_class = STREAMS.get(exchange)
    if stream_class is None:
        return
    hub = state.streams
    stream = stream_class(venue, hub)
    hub.add_venue(exchange, venue.markets, stream.channels())
    handler = websocket_handler(stream, hub.connections.add, hub.connections.discard)
    app.router.add_get(f"/{exchange}{stream.path}", handler)


async def _close_streams(app: web.Application) -> None:
    await app[SIM_STATE].streams.shutdown()


def served_markets(app: web.Application) -> list[str]:
    """`exchange:SYMBOL` for every market the app serves (Kraken's are Coinbase recordings; derived
    markets follow each venue's recorded ones)."""
    venues = app[SIM_STATE].venues
    return [f"{exchange}:{m.symbol}" for exchange, venue in venues.items() for m in venue.markets]


def run_simulator(
    host: str,
    port: int,
    data_dir: Path,
    *,
    seed: int = 0,
    faults: str = "",
    now: datetime | None = None,
    **options: Any,
) -> None:
    """Serve the simulator in the foreground until interrupted; logs one line with URL and markets.
    `options` are create_app's (stream_speed, derived_markets, ...)."""
    app = create_app(data_dir, seed=seed, faults=faults, now=now, **options)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way to stop it
        asyncio.run(_serve_forever(app, host, port, seed, faults))


async def _serve_forever(app: web.Application, host: str, port: int, seed: int, faults: str) -> None:
    runner, url = await _start(app, host, port)
    log.info(
        json.dumps(
            {
                "event": "simulator_started",
                "url": url,
                "markets": served_markets(app),
                "seed": seed,
                "faults": faults,
                "clock": app[SIM_STATE].clock.describe(),
                "stream": app[SIM_STATE].streams.config.describe(),
            }
        )
    )
    stop = asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def _start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    # handler_cancellation: a client that gave up on a `slow` answer must not keep a handler alive.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"


class SimulatorServer:
    """The simulator on a background thread and a free port; use as a context manager. `options` are
    create_app's (stream_speed, derived_markets, ...)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        faults: str = "",
        now: datetime | None = None,
        **options: Any,
    ) -> None:
        self.app = create_app(data_dir, seed=seed, faults=faults, now=now, **options)
        self.host, self.port = host, port
        self.base_url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="exchange-simulator", daemon=True)
        self._runner: web.AppRunner | None = None

    def start(self) -> SimulatorServer:
        """Bind, serve in the background and return self once requests are accepted."""
        self._thread.start()
        try:
            self._runner, self.base_url = self._call(_start(self.app, self.host, self.port))
        except BaseException:
            self.stop()  # e.g. the port is taken: do not leave the loop thread behind
            raise
        self.port = int(self.base_url.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        """Stop serving and end the background thread."""
        if self._runner is not None:
            self._call(self._runner.cleanup())
            self._runner = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def state(self) -> SimState:
        """The live state (mutate it only through the methods below: they run on the server's loop)."""
        return self.app[SIM_STATE]

    def set_faults(self, spec: str, **settings: Any) -> None:
        """Replace the fault plan (and optionally retry_after_s / slow_seconds / include_markets)."""
        current = self.state.faults.settings
        new = FaultSettings(**{**current.__dict__, **settings})
        self._call(_run(lambda: self.state.faults.replace(spec, new)))

    def set_now(self, now: datetime | str | None, *, running: bool = False) -> None:
        """Move the simulated clock (None: back to the wall clock)."""
        self._call(_run(lambda: self.state.clock.set(now, running=running)))

    def stats(self) -> dict:
        """GET /_sim/stats as a dict."""
        return self._call(_run(lambda: describe(self.state)))

    def set_stream(
        self,
        speed: float | str | None = 1.0,
        start: datetime | str | None = None,
        stop_after: int | str | datetime | None = None,
    ) -> None:
        """Replace the replay config (as POST /_sim/stream): every feed restarts with an empty ledger."""
        config = stream_config(speed, start, stop_after)
        self._call(_run(lambda: self.state.streams.configure(config)))

    def stream_status(self) -> dict:
        """GET /_sim/stream as a dict."""
        return self._call(_run(self.state.streams.describe))

    def emitted(self, exchange: str, symbol: str) -> dict:
        """GET /_sim/stream/emitted as a dict (count, first/last, every id); KeyError for unknown markets."""

        def read() -> dict:
            ledger = self.state.streams.ledger(exchange, symbol)
            if ledger is None:
                raise KeyError(f"no stream for {exchange}:{symbol}")
            return {"exchange": exchange, "symbol": symbol, **ledger.describe()}

        return self._call(_run(read))

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)


async def _run(function: Any) -> Any:
    return function()
