"""The WebSocket transport at /ws: a reader feeds the Client, a writer drains its Outbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from starlette.websockets import WebSocket, WebSocketDisconnect

from ticker.client import Client
from ticker.hub import Hub
from ticker.outbox import Outbox

log = logging.getLogger("ticker.ws")


class WebSocketSettings:
    def __init__(self, send_timeout: float, max_queue_bytes: int, max_frame_bytes: int,
                 max_symbols: int) -> None:
        self.send_timeout = send_timeout
        self.max_queue_bytes = max_queue_bytes
        self.max_frame_bytes = max_frame_bytes
        self.max_symbols = max_symbols


def wall_clock_ms() -> float:
    return time.time() * 1000.0


async def serve_websocket(websocket: WebSocket, hub: Hub, settings: WebSocketSettings) -> None:
    await websocket.accept()
    outbox = Outbox(settings.max_queue_bytes, settings.max_frame_bytes)
    client = Client(hub, outbox, settings.max_symbols, wall_clock_ms)
    client.open()
    reader = asyncio.create_task(_read(websocket, client))
    writer = asyncio.create_task(_write(websocket, outbox, settings.send_timeout))
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


async def _write(websocket: WebSocket, outbox: Outbox, send_timeout: float) -> None:
    while True:
        await outbox.wait()
        for frame in outbox.drain():
            try:
                await asyncio.wait_for(websocket.send_text(frame.decode()), send_timeout)
            except TimeoutError:
                log.warning("dropping a client that took over %.1f s to accept one frame",
                            send_timeout)
                return
        request = outbox.close_request
        if request is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(websocket.close(request.code, request.reason),
                                       send_timeout)
            return
