"""The WebSocket transport at /ws: a reader feeds the Client, a writer drains its Subscriber.

The writer sends as soon as it is idle and, while a send is in progress, lets whatever arrives pile
up for the next drain: no timer, so frames are small and immediate at light load and grow (fewer
sends per tick) under heavy load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import orjson
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from ticker.client import Client
from ticker.hub import Hub
from ticker.pacing import FramePacer
from ticker.protocol import CLOSE_TRY_AGAIN_LATER
from ticker.subscriber import Subscriber
from ticker.transport.origin import OriginPolicy

log = logging.getLogger("ticker.ws")


class WebSocketSettings:
    def __init__(self, send_timeout: float, max_lag: int, max_frame_ticks: int,
                 max_symbols: int, origins: OriginPolicy | None = None,
                 pacer: FramePacer | None = None) -> None:
        self.origins = origins or OriginPolicy(())
        self.pacer = pacer or FramePacer(0.0)
        self.send_timeout = send_timeout
        self.max_lag = max_lag
        self.max_frame_ticks = max_frame_ticks
        self.max_symbols = max_symbols


def wall_clock_ms() -> float:
    return time.time() * 1000.0


Handler = Callable[[Client, str | bytes], None]


def protocol_v1(client: Client, raw: str | bytes) -> None:
    client.handle(raw)


async def serve_websocket(websocket: WebSocket, hub: Hub, settings: WebSocketSettings,
                          handle: Handler = protocol_v1,
                          on_open: Callable[[], None] | None = None) -> None:
    """One connection's whole life; ``handle`` applies each client message (protocol v1, or v1
    plus the replay controls); ``on_open`` runs once the client is registered with the hub."""
    if not await check_origin(websocket, settings.origins):
        return
    await websocket.accept()
    if not hub.ready:
        # A relay node whose feed has not started: nothing to describe in a hello yet.
        await websocket.close(CLOSE_TRY_AGAIN_LATER, "no feed yet: retry shortly")
        return
    subscriber = Subscriber(settings.max_lag, settings.max_frame_ticks)
    client = Client(hub, subscriber, settings.max_symbols, wall_clock_ms)
    client.open()
    if on_open is not None:
        on_open()
    # The reader runs in this task and the writer in its own; one task fewer per connection
    # matters at 10,000 connections. When the writer ends (close sent, or a stalled client), it
    # stops the reader by cancelling this task.
    this_task = asyncio.current_task()
    assert this_task is not None
    reading = True

    def stop_reading(_: asyncio.Task[None]) -> None:
        if reading:
            this_task.cancel()

    writer = asyncio.create_task(_write(websocket, subscriber, settings.pacer))
    subscriber.writer = writer
    writer.add_done_callback(stop_reading)
    try:
        await _read(websocket, client, handle)
    except asyncio.CancelledError:
        if not writer.done() or this_task.cancelling() > 1:
            raise  # cancelled from outside (server shutdown), not by our writer
        this_task.uncancel()
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass  # the client went away mid-read
    finally:
        reading = False
        client.close()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError,
                                 RuntimeError):
            await writer


async def check_origin(websocket: WebSocket, origins: OriginPolicy) -> bool:
    """Refuse a cross-site handshake with 403, before any hub state exists for it."""
    origin = websocket.headers.get("origin")
    if origins.allows(origin, websocket.headers.get("host")):
        return True
    log.warning("refused a WebSocket from origin %s", origin)
    await websocket.send_denial_response(Response(
        orjson.dumps({"type": "error", "code": "forbidden_origin",
                      "message": f"pages from {origin} may not connect here"}),
        status_code=403, media_type="application/json"))
    return False


async def _read(websocket: WebSocket, client: Client, handle: Handler) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        handle(client, text if text is not None else message.get("bytes") or b"")


async def _write(websocket: WebSocket, subscriber: Subscriber, pacer: FramePacer) -> None:
    """Send as soon as there is something and the connection is idle; but no sooner than the
    pacer's interval after the previous send, so that under load ticks share frames (each frame
    costs a system call) instead of the server spending itself on frame overhead. When the
    server is not busy the interval is 0: every tick goes out at once."""
    loop = asyncio.get_running_loop()
    last_send = 0.0
    while True:
        await subscriber.wait()
        early = last_send + pacer.interval - loop.time()
        if early > 0:
            await asyncio.sleep(early)
        last_send = loop.time()
        for frame in subscriber.drain():
            # No timer per frame (a timeout costs more than a small send): watch_stalls() checks
            # sending_since for every connection once a second.
            subscriber.sending_since = loop.time()
            await websocket.send_text(frame.decode())
            subscriber.sending_since = 0.0
        request = subscriber.close_request
        if request is not None:
            subscriber.sending_since = loop.time()
            await websocket.close(request.code, request.reason)
            return


async def watch_stalls(hub: Hub, send_timeout: float, period: float = 1.0) -> None:
    """Drop any client whose current send has not completed within ``send_timeout``: it stopped
    reading, and its socket buffers are full."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(period)
        now = loop.time()
        for subscriber in hub.subscribers():
            since = subscriber.sending_since
            if since and now - since > send_timeout and subscriber.writer is not None:
                log.warning("dropping a client that took over %.1f s to accept one frame",
                            send_timeout)
                subscriber.sending_since = 0.0
                subscriber.writer.cancel()
