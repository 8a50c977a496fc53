"""One client WebSocket of the simulator, and the aiohttp handler that serves a venue's stream protocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import WSMsgType, web

log = logging.getLogger("cryptopipe.simulator")


class Subscribable(Protocol):
    """What a connection is subscribed to (a feed's channel stream)."""

    subscribers: set[Connection]


class Connection:
    """A client socket: sends never raise (a failed send marks it dead), and the server can drop it."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        self.channels: set[Subscribable] = set()
        self.last_sent = time.monotonic()
        self.dead = False
        self.scratch: dict[str, Any] = {}  # per-connection protocol state (e.g. request ids)

    async def send(self, text: str) -> bool:
        """Send one text frame; False (and dead from then on) when the socket is gone."""
        if self.dead or self.ws.closed:
            self.dead = True
            return False
        try:
            await self.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            self.dead = True
            return False
        self.last_sent = time.monotonic()
        return True

    async def send_json(self, data: Any) -> bool:
        """Send a JSON message."""
        return await self.send(json.dumps(data, separators=(",", ":")))

    def subscribe(self, channel: Subscribable) -> None:
        """Start receiving a channel's messages."""
        channel.subscribers.add(self)
        self.channels.add(channel)

    def unsubscribe(self, channel: Subscribable) -> None:
        """Stop receiving a channel's messages."""
        channel.subscribers.discard(self)
        self.channels.discard(channel)

    def detach(self) -> None:
        """Leave every channel (the socket is gone or being dropped)."""
        self.dead = True
        for channel in tuple(self.channels):
            self.unsubscribe(channel)

    def drop(self, *, graceful: bool, code: int = 1011) -> None:
        """End the connection from the server side without waiting: a close frame with `code`, or
        (graceful=False) the TCP connection just ends, as when a load balancer drops it."""
        self.detach()
        if graceful:
            asyncio.ensure_future(self._close(code))
        elif self.request.transport is not None:
            self.request.transport.close()

    async def _close(self, code: int) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError, asyncio.TimeoutError):
            await self.ws.close(code=code, message=b"simulated disconnect")


class StreamProtocol(Protocol):
    """A venue's WebSocket dialect: what happens on connect and on each client message."""

    async def on_open(self, conn: Connection) -> None: ...

    async def on_message(self, conn: Connection, data: Any, raw: str) -> None: ...

    async def on_close(self, conn: Connection) -> None: ...


Registry = Callable[[Connection], None]


def websocket_handler(
    protocol: StreamProtocol, opened: Registry, closed: Registry
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler serving `protocol`; `opened` / `closed` keep the hub's connection list."""

    async def handle(request: web.Request) -> web.StreamResponse:
        # compress=False: ccxt offers permessage-deflate, and deflating every small message would cap
        # the stream far below the benchmark rate; a server may decline the extension.
        ws = web.WebSocketResponse(compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Connection(ws, request)
        opened(conn)
        try:
            await protocol.on_open(conn)
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(message.data)
                except ValueError:
                    data = None  # the protocol answers with its own error message
                await protocol.on_message(conn, data, message.data)
        except (ConnectionError, RuntimeError) as exc:
            log.info("simulator_ws_closed path=%s reason=%s", request.path, exc)
        finally:
            conn.detach()
            closed(conn)
            await protocol.on_close(conn)
        return ws

    return handle
