"""Shared state of one simulator app (store, clock, faults, stats) and the fault-applying route wrapper."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from aiohttp import web

from cryptopipe_dagster.simulator.clock import SimClock
from cryptopipe_dagster.simulator.faults import FAULT_HANDLERS, FaultContext, FaultInjector
from cryptopipe_dagster.simulator.hub import StreamHub
from cryptopipe_dagster.simulator.market_data import MarketStore
from cryptopipe_dagster.simulator.venues.common import Handler, Route, Venue


@dataclass
class SimStats:
    """Counters behind GET /_sim/stats."""

    requests: int = 0
    data_requests: int = 0
    per_path: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    faults_per_path: defaultdict = field(default_factory=lambda: defaultdict(Counter))

    def snapshot(self) -> dict:
        """JSON-ready copy."""
        return {
            "requests": self.requests,
            "data_requests": self.data_requests,
            "per_path": dict(self.per_path),
            "faults": dict(self.faults),
            "faults_injected": sum(self.faults.values()),
            "faults_per_path": {path: dict(kinds) for path, kinds in self.faults_per_path.items()},
        }


@dataclass
class SimState:
    """Everything the handlers of one simulator app share."""

    store: MarketStore
    clock: SimClock
    faults: FaultInjector
    stats: SimStats = field(default_factory=SimStats)
    streams: StreamHub | None = None  # WebSocket feeds (set by create_app)
    venues: dict[str, Venue] = field(default_factory=dict)  # by ccxt id


SIM_STATE = web.AppKey("sim_state", SimState)


def with_faults(state: SimState, venue: Venue, route: Route) -> Handler:
    """Wrap a venue handler: count it, and let the fault plan decide about data requests."""

    async def handle(request: web.Request) -> web.Response:
        state.stats.requests += 1
        state.stats.per_path[request.path] += 1
        faultable = route.category == "data" or state.faults.settings.include_markets
        if not faultable:
            return await route.handler(request)
        state.stats.data_requests += route.category == "data"
        kind, rng = state.faults.next_decision()
        if kind is None:
            return await route.handler(request)
        state.stats.faults[kind] += 1
        state.stats.faults_per_path[request.path][kind] += 1
        context = FaultContext(request, rng, state.faults.settings, venue)
        return await FAULT_HANDLERS[kind](context, lambda: route.handler(request))

    handle.__name__ = getattr(route.handler, "__name__", "handle")
    return handle
