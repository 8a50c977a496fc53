"""The built-in fault kinds. Add a kind with `@register_fault("name")` in any imported module."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime
from typing import Any

from aiohttp import web

from cryptopipe_dagster.simulator.drift import drift_rows
from cryptopipe_dagster.simulator.faults import (
    DUPLICATE_ROWS,
    DUPLICATES_APPLIED,
    FaultContext,
    Produce,
    register_fault,
)

_GARBAGE: tuple[Any, ...] = (None, "NaN", "garbage", "", -1, 1e308, [], {})
_COPIED_HEADERS = ("Retry-After", "cb-after", "cb-before")


@register_fault("rate_limit")
async def rate_limit(ctx: FaultContext, produce: Produce) -> web.Response:
    """HTTP 429 with a Retry-After header (seconds)."""
    return ctx.venue.throttle_error(429, ctx.settings.retry_after_s)


@register_fault("ip_ban")
async def ip_ban(ctx: FaultContext, produce: Produce) -> web.Response:
    """HTTP 418 ("I'm a teapot", what Binance-style bans use) with a Retry-After header."""
    return ctx.venue.throttle_error(418, ctx.settings.retry_after_s)


@register_fault("server_error")
async def server_error(ctx: FaultContext, produce: Produce) -> web.Response:
    """HTTP 500, 502 or 503, in the venue's error body."""
    return ctx.venue.server_error(ctx.rng.choice((500, 502, 503)))


@register_fault("slow")
async def slow(ctx: FaultContext, produce: Produce) -> web.Response:
    """Answer correctly, but only after `slow_seconds`, so a client with a shorter timeout gives up."""
    await asyncio.sleep(ctx.settings.slow_seconds)
    return await produce()


@register_fault("truncated")
async def truncated(ctx: FaultContext, produce: Produce) -> web.StreamResponse:
    """The connection drops halfway through the body: headers promise the full Content-Length,
    half the JSON arrives, then the socket closes (what a dying upstream or proxy does)."""
    response = await produce()
    body = bytes(response.body or b"")
    stream = web.StreamResponse(status=response.status, headers=_copied_headers(response))
    stream.content_type, stream.content_length = response.content_type, len(body)
    await stream.prepare(ctx.request)
    await stream.write(body[: len(body) // 2])
    # close() flushes what was written, then ends the connection before the promised length.
    if ctx.request.transport is not None:
        ctx.request.transport.close()
    return stream


@register_fault("truncated_body")
async def truncated_body(ctx: FaultContext, produce: Produce) -> web.Response:
    """A well-framed 200 whose JSON body is cut in half (Content-Length matches the cut body)."""
    response = await produce()
    body = bytes(response.body or b"")
    return _with_body(response, body[: len(body) // 2])


@register_fault("malformed")
async def malformed(ctx: FaultContext, produce: Produce) -> web.Response:
    """Valid JSON that is wrong: either the wrong shape, or garbage values in a few rows."""
    response = await produce()
    try:
        data = json.loads(response.body or b"null")
    except ValueError:
        return response
    if ctx.rng.random() < 0.3:
        data = _wrong_shape(data, ctx.rng)
    else:
        _garbage_values(data, ctx.rng)
    return _with_body(response, json.dumps(data).encode())


@register_fault("duplicate_rows")
async def duplicate_rows(ctx: FaultContext, produce: Produce) -> web.Response:
    """Rows repeated inside the page; candle pages also repeat the tail of the previous page."""
    ctx.request[DUPLICATE_ROWS] = ctx.rng
    response = await produce()
    if ctx.request.get(DUPLICATES_APPLIED):
        return response
    try:
        data = json.loads(response.body or b"null")
    except ValueError:
        return response
    rows = _main_rows(data)
    if rows:
        repeat_rows(rows, ctx.rng)
    return _with_body(response, json.dumps(data).encode())


@register_fault("payload_drift")
async def payload_drift(ctx: FaultContext, produce: Produce) -> web.Response:
    """The venue changed its format: in a share of the answer's rows a field is renamed, retyped
    or added (FaultSettings.drift_change, drift_fields, drift_share; see drift.py)."""
    response = await produce()
    try:
        data = json.loads(response.body or b"null")
    except ValueError:
        return response
    rows = _main_rows(data)
    if not rows:
        return response
    settings = ctx.settings
    drift_rows(rows, settings.drift_change, settings.drift_fields, settings.drift_share, ctx.rng)
    return _with_body(response, json.dumps(data).encode())


def repeat_rows(rows: list, rng: random.Random) -> None:
    """Insert copies of 1-3 random rows right after themselves (in place)."""
    for index in sorted(rng.sample(range(len(rows)), k=min(len(rows), rng.randint(1, 3))), reverse=True):
        rows.insert(index + 1, rows[index])


def _copied_headers(response: web.Response) -> dict[str, str]:
    return {k: response.headers[k] for k in _COPIED_HEADERS if k in response.headers}


def _with_body(response: web.Response, body: bytes) -> web.Response:
    return web.Response(
        body=body,
        status=response.status,
        headers=_copied_headers(response),
        content_type=response.content_type,
        charset=response.charset,
    )


def _main_rows(data: Any) -> list | None:
    """The largest list in the answer: the rows a client iterates over."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        lists = [found for value in data.values() if (found := _main_rows(value)) is not None]
        return max(lists, key=len, default=None)
    return None


def _wrong_shape(data: Any, rng: random.Random) -> Any:
    rows = _main_rows(data)
    if isinstance(data, list):
        return {"data": data} if rng.random() < 0.5 else [{"row": row} for row in data]
    if isinstance(data, dict) and rows is not None:
        return {"result": rows}
    return [data]


def _garbage_values(data: Any, rng: random.Random) -> None:
    rows = _main_rows(data)
    if not rows:
        return
    for index in rng.sample(range(len(rows)), k=min(len(rows), rng.randint(1, 3))):
        row = rows[index]
        if isinstance(row, list) and row:
            row = rows[index] = list(row)
            row[rng.randrange(len(row))] = rng.choice(_GARBAGE)
        elif isinstance(row, dict) and row:
            row = rows[index] = dict(row)
            key = rng.choice(sorted(row))
            if rng.random() < 0.25:
                del row[key]
            else:
                row[key] = rng.choice(_GARBAGE)


HIDDEN_SPAN_HITS = "hidden_span_hits"


@register_fault("hidden_span")
async def hidden_span(ctx: FaultContext, produce: Produce) -> web.Response:
    """A transient hole: OHLCV and trade rows timed in [hide_from_ms, hide_to_ms) are left out of
    the first `hide_requests` answers that hold any of them; later answers are whole again. Use it
    with probability 1 (`hidden_span:1`) so every request is looked at."""
    # Imported here: state imports the venues, which import this module.
    from cryptopipe_dagster.simulator.state import SIM_STATE

    response = await produce()
    counters = ctx.request.app[SIM_STATE].faults.counters
    settings = ctx.settings
    if counters.get(HIDDEN_SPAN_HITS, 0) >= settings.hide_requests:
        return response
    try:
        data = json.loads(response.body or b"null")
    except ValueError:
        return response
    rows = _main_rows(data)
    if not rows:
        return response
    hidden_from, hidden_to = settings.hide_from_ms, settings.hide_to_ms
    kept = [row for row in rows if not hidden_from <= (_row_time_ms(row) or -1) < hidden_to]
    if len(kept) == len(rows):
        return response
    counters[HIDDEN_SPAN_HITS] = counters.get(HIDDEN_SPAN_HITS, 0) + 1
    rows[:] = kept
    return _with_body(response, json.dumps(data).encode())


def _row_time_ms(row: Any) -> int | None:
    """A candle's or trade's time in ms, in any venue's shape: [seconds, ...] candles, Kraken's
    [price, volume, seconds, ...] trades, or a dict with timestamp / date (seconds) or time (ISO)."""
    if isinstance(row, list):
        for value in row[:1] + row[2:3]:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return int(value * 1000)
        return None
    if not isinstance(row, dict):
        return None
    for name in ("timestamp", "date"):
        if str(row.get(name, "")).replace(".", "", 1).isdigit():
            return int(float(row[name]) * 1000)
    text = row.get("time")
    if isinstance(text, str):
        try:
            return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None
    return None
