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

from starlette.websockets import WebSocket, WebSocketDisconnect

from ticker.client import Client
from ticker.hub import Hub
from ticker.subscriber import Subscriber

log = logging.getLogger("ticker.ws")


class WebSocketSettings:
    def __init__(self, send_timeout: float, max_lag: int, max_frame_ticks: int,
                 max_symbols: int) -> None:
        self.send_timeout = send_timeout
        self.max_lag = max_lag
        self.max_frame_ticks = max_frame_ticks
        self.max_symbols = max_symbols


def wall_clock_ms() -> float:
    return time.time() * 1000.0


async def serve_websocket(websocket: WebSocket, hub: Hub, settings: WebSocketSettings) -> None:
    await websocket.accept()
    subscriber = Subscriber(settings.max_lag, settings.max_frame_ticks)
    client = Client(hub, subscriber, settings.max_symbols, wall_clock_ms)
    client.open()
    reader = asyncio.create_task(_read(websocket, client))
    writer = asyncio.create_task(_write(websocket, subscriber, settings.send_timeout))
    try:
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        client.close()
        for task in (reader, writer):
            task.cancel()
        for task in (reader, writer):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError,
                                     RuntimeError):
                await task


async def _read(websocket: WebSocket, client: Client) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        client.handle(text if text is not None else message.get("bytes") or b"")


async def _write(websocket: WebSocket, subscriber: Subscriber, send_timeout: float) -> None:
    while True:
        await subscriber.wait()
        for frame in subscriber.drain():
            try:
                await asyncio.wait_for(websocket.send_text(frame.decode()), send_timeout)
            except TimeoutError:
                log.warning("dropping a client that took over %.1f s to accept one frame",
                            send_timeout)
                return
        request = subscriber.close_request
        if request is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(websocket.close(request.code, request.reason),
                                       send_timeout)
            return
