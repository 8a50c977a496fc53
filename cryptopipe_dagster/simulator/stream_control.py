"""Control endpoints of the streams under /_sim/stream (never faulted): status, replay config, ledger."""

from __future__ import annotations

from aiohttp import web

from cryptopipe_dagster.simulator.hub import StreamHub
from cryptopipe_dagster.simulator.state import SIM_STATE
from cryptopipe_dagster.simulator.tape import stream_config
from cryptopipe_dagster.simulator.venues.common import json_response

_CONFIG_KEYS = ("speed", "start", "stop_after")


def stream_routes() -> list[web.RouteDef]:
    """The /_sim/stream routes."""
    return [
        web.get("/_sim/stream", status),
        web.post("/_sim/stream", configure),
        web.get("/_sim/stream/emitted", emitted),
    ]


def _hub(request: web.Request) -> StreamHub:
    return request.app[SIM_STATE].streams


async def status(request: web.Request) -> web.Response:
    """GET /_sim/stream: replay config, streamable markets, every feed's position and counters."""
    return json_response(_hub(request).describe())


async def configure(request: web.Request) -> web.Response:
    """POST /_sim/stream {"speed": 10 | "max", "start": ISO | null, "stop_after": N | ISO | null}.

    Keys left out keep their value. Every feed then restarts from the (new) start with an empty
    ledger; subscribed sockets stay and receive the new replay."""
    hub = _hub(request)
    try:
        body = await request.json() if request.can_read_body else {}
        if not isinstance(body, dict) or set(body) - set(_CONFIG_KEYS):
            raise ValueError(f"expected a JSON object with keys among {', '.join(_CONFIG_KEYS)}")
        current = hub.config.describe()
        config = stream_config(**{key: body.get(key, current[key]) for key in _CONFIG_KEYS})
    except ValueError as exc:
        return json_response({"error": str(exc)}, 400)
    hub.configure(config)
    return json_response(config.describe())


async def emitted(request: web.Request) -> web.Response:
    """GET /_sim/stream/emitted?exchange=&symbol=&offset=0&limit=: the emitted-trades ledger of one
    market: count, first/last trade id and time, and the ids (all of them unless `limit`)."""
    exchange, symbol = request.query.get("exchange", ""), request.query.get("symbol", "")
    try:
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query["limit"]) if request.query.get("limit") else None
    except ValueError:
        return json_response({"error": "offset and limit must be integers"}, 400)
    ledger = _hub(request).ledger(exchange, symbol)
    if ledger is None:
        return json_response({"error": f"no stream for exchange={exchange!r} symbol={symbol!r}"}, 404)
    return json_response({"exchange": exchange, "symbol": symbol, **ledger.describe(max(offset, 0), limit)})
