"""The built-in fault kinds. Add a kind with `@register_fault("name")` in any imported module."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from aiohttp import web

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
