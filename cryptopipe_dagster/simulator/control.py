"""Control endpoints under /_sim (never faulted): stats, fault plan, clock, markets served."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, replace

from aiohttp import web

from cryptopipe_dagster.simulator.clock import iso_ms
from cryptopipe_dagster.simulator.drift import DRIFT_CHANGES
from cryptopipe_dagster.simulator.faults import FaultSettings
from cryptopipe_dagster.simulator.market_data import Market
from cryptopipe_dagster.simulator.state import SIM_STATE, SimState
from cryptopipe_dagster.simulator.venues.common import json_response


def control_routes() -> list[web.RouteDef]:
    """The /_sim routes."""
    return [
        web.get("/_sim/stats", stats),
        web.get("/_sim/markets", markets),
        web.post("/_sim/faults", set_faults),
        web.post("/_sim/clock", set_clock),
    ]


async def stats(request: web.Request) -> web.Response:
    """GET /_sim/stats: requests served, faults injected per kind and per path, clock, fault plan."""
    return json_response(describe(request.app[SIM_STATE]))


def describe(state: SimState) -> dict:
    """Stats plus the active configuration, JSON-ready."""
    return {
        **state.stats.snapshot(),
        "clock": state.clock.describe(),
        "fault_spec": state.faults.plan.spec,
        "fault_settings": asdict(state.faults.settings),
        "seed": state.faults.seed,
    }


async def markets(request: web.Request) -> web.Response:
    """GET /_sim/markets: what is recorded, with its range and the venues serving it (`kraken`
    serves the Coinbase recording), then any derived markets with their source and price factor."""
    state = request.app[SIM_STATE]
    venues_of: dict[tuple[str, str], list[str]] = defaultdict(list)
    derived = []
    for exchange, venue in state.venues.items():
        for m in venue.markets:
            if m.derived_from:
                derived.append(m)
            else:
                venues_of[(venue.source_exchange(), m.symbol)].append(exchange)
    recorded = [
        _market_entry(m, venues_of.get((m.exchange, m.symbol), [])) for m in state.store.all_markets()
    ]
    extra = [
        {**_market_entry(m, [m.exchange]), "derived_from": m.derived_from, "price_factor": m.price_factor}
        for m in sorted(derived, key=lambda m: m.symbol)
    ]
    return json_response(recorded + extra)


def _market_entry(m: Market, venues: list[str]) -> dict:
    return {
        "exchange": m.exchange,
        "venues": venues,
        "symbol": m.symbol,
        "timeframe_s": m.timeframe_s,
        "bars": len(m.bars),
        "first": iso_ms(int(m.bars.ts[0]) * 1000),
        "last": iso_ms(int(m.bars.ts[-1]) * 1000),
    }


async def set_faults(request: web.Request) -> web.Response:
    """POST /_sim/faults {"spec": "...", optional retry_after_s, slow_seconds, include_markets,
    stall_seconds, burst_messages, burst_factor, hide_from_ms, hide_to_ms, hide_requests,
    drift_change, drift_fields, drift_share}."""
    state = request.app[SIM_STATE]
    try:
        body = await _json_object(request)
        spec = body.get("spec", "")
        if not isinstance(spec, str):
            raise ValueError("spec must be a string")
        settings = _settings(state.faults.settings, body)
        state.faults.replace(spec, settings)
    except ValueError as exc:
        return json_response({"error": str(exc)}, 400)
    return json_response({"spec": spec, "settings": asdict(state.faults.settings)})


async def set_clock(request: web.Request) -> web.Response:
    """POST /_sim/clock {"now": "ISO 8601" | null, optional "running": bool}."""
    state = request.app[SIM_STATE]
    try:
        body = await _json_object(request)
        if "now" not in body:
            raise ValueError('expected {"now": "<ISO 8601>"} (null: back to the wall clock)')
        state.clock.set(body["now"], running=bool(body.get("running", False)))
    except ValueError as exc:
        return json_response({"error": str(exc)}, 400)
    return json_response(state.clock.describe())


def _settings(current: FaultSettings, body: dict) -> FaultSettings:
    changes = {}
    for name in ("retry_after_s", "slow_seconds", "stall_seconds", "burst_factor", "burst_messages"):
        if name in body:
            value = body[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a non-negative number")
            changes[name] = int(value) if name == "burst_messages" else float(value)
    for name in ("hide_from_ms", "hide_to_ms", "hide_requests"):
        if name in body:
            value = body[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer")
            changes[name] = value
    changes |= _drift_settings(body)
    if "include_markets" in body:
        changes["include_markets"] = bool(body["include_markets"])
    return replace(current, **changes)


def _drift_settings(body: dict) -> dict:
    changes: dict = {}
    if "drift_change" in body:
        if body["drift_change"] not in DRIFT_CHANGES:
            raise ValueError(f"drift_change must be one of {', '.join(DRIFT_CHANGES)}")
        changes["drift_change"] = body["drift_change"]
    if "drift_fields" in body:
        fields = body["drift_fields"]
        if not isinstance(fields, list | tuple) or not all(isinstance(f, str) for f in fields):
            raise ValueError("drift_fields must be a list of field names")
        changes["drift_fields"] = tuple(fields)
    if "drift_share" in body:
        share = body["drift_share"]
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
            raise ValueError("drift_share must be a number in [0, 1]")
        changes["drift_share"] = float(share)
    return changes


async def _json_object(request: web.Request) -> dict:
    try:
        body = json.loads(await request.text() or "{}")
    except ValueError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body
