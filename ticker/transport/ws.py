"""The WebSocket transport at /ws: a reader feeds the Session, a writer drains its Subscriber.

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
from dataclasses import dataclass

import orjson
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from ticker.hub import Hub
from ticker.pacing import FramePacer
from ticker.protocol import CLOSE_TRY_AGAIN_LATER, CLOSE_UNSUPPORTED_DATA
from ticker.ratelimit import OpRateLimiter
from ticker.session import Session
from ticker.stats import Stats
from ticker.subscriber import Close, Subscriber
from ticker.transport.denial import send_denial
from ticker.transport.flusher import Flusher
from ticker.transport.frames import DirectFrames, cap_send_buffer, release_handshake
from ticker.transport.keepalive import Pinger, set_user_timeout
from ticker.transport.origin import OriginPolicy

log = logging.getLogger("ticker.ws")


@dataclass(frozen=True, slots=True)
class OpRate:
    per_second: float
    burst: int
    strikes: int

    def limiter(self) -> OpRateLimiter:
        return OpRateLimiter(self.per_second, self.burst, self.strikes, time.monotonic())


class WebSocketSettings:
    def __init__(self, send_timeout: float, max_lag: int, max_frame_ticks: int,
                 max_symbols: int, origins: OriginPolicy | None = None,
                 pacer: FramePacer | None = None, max_connections: int = 10_000,
                 op_rate: OpRate | None = None, stats: Stats | None = None,
                 flusher: Flusher | None = None, send_buffer: int = 0,
                 ping_interval: float | None = None) -> None:
        self.origins = origins or OriginPolicy(())
        self.pacer = pacer or FramePacer(0.0)
        self.send_timeout = send_timeout
        self.max_lag = max_lag
        self.max_frame_ticks = max_frame_ticks
        self.max_symbols = max_symbols
        self.max_connections = max_connections
        self.op_rate = op_rate
        self.stats = stats or Stats()
        self.flusher = flusher
        self.send_buffer = send_buffer
        self.ping_interval = ping_interval  # the janitor pings quiet connections; None: uvicorn
        # Why this node has no feed yet, for the 1013 a client then gets (a live upstream away).
        self.not_ready_reason: Callable[[], str | None] = lambda: None


MAX_CLOSE_REASON = 123  # bytes: RFC 6455 leaves a close frame's reason 123 of its 125


def not_ready_close_reason(why: str | None) -> str:
    """"no feed yet: retry shortly", with the reason when there is one, cut to fit a close frame
    (a page shows it while it waits; /readyz has it whole)."""
    text = "no feed yet: retry shortly" + (f" ({why})" if why else "")
    data = text.encode()
    if len(data) <= MAX_CLOSE_REASON:
        return text
    return data[:MAX_CLOSE_REASON - 3].decode("utf-8", "ignore") + "..."


def wall_clock_ms() -> float:
    return time.time() * 1000.0


Handler = Callable[[Session, str | bytes], None]


def protocol_v1(client: Session, raw: str | bytes) -> None:
    client.handle(raw)


async def serve_websocket(websocket: WebSocket, hub: Hub, settings: WebSocketSettings,
                          handle: Handler = protocol_v1,
                          on_open: Callable[[Session], None] | None = None,
                          transport: str = "ws") -> None:
    """One connection's whole life; ``handle`` applies each client message (protocol v1, or v1
    plus the replay controls); ``on_open`` runs once the client is registered with the hub."""
    stats = settings.stats
    if not await check_origin(websocket, settings.origins):
        stats.refused["origin"] += 1
        return
    if stats.open_connections() >= settings.max_connections:
        stats.refused["capacity"] += 1
        await deny(websocket, 503, "server_full",
                   f"this server holds its maximum of {settings.max_connections} connections: "
                   "retry later or elsewhere")
        return
    await websocket.accept()
    release_handshake(websocket)
    cap_send_buffer(websocket, settings.send_buffer)
    if not hub.ready:
        # A relay node whose feed has not started: nothing to describe in a hello yet.
        await websocket.close(CLOSE_TRY_AGAIN_LATER, not_ready_close_reason(
            settings.not_ready_reason()))
        return
    transport_stats = stats.transports[transport]
    subscriber = Subscriber(settings.max_lag, settings.max_frame_ticks, transport_stats,
                            takes_frames=True)
    subscriber.opened_at = asyncio.get_running_loop().time()
    keep_alive(websocket, subscriber, settings.ping_interval)
    limiter = settings.op_rate.limiter() if settings.op_rate is not None else None
    session = Session(hub, subscriber, settings.max_symbols, wall_clock_ms, limiter, stats.errors)
    session.open()
    transport_stats.connections += 1
    if on_open is not None:
        on_open(session)
    # The reader runs in this task. The writer is the flusher while the connection takes
    # frames directly, with no task of its own (one task per connection matters at 10,000
    # connections), and a task only while it must wait for the socket or is closing. When
    # that task ends the connection (close sent, or a stalled client), it stops the reader by
    # cancelling this task.
    this_task = asyncio.current_task()
    assert this_task is not None
    reading = True
    direct = DirectFrames.of(websocket, transport_stats)
    flusher = settings.flusher if direct is not None else None
    writer_ended = False

    def write() -> None:
        """(Re)start writing: from the flusher where it can, else in a writer task."""
        if flusher is not None and direct is not None and subscriber.close_request is None \
                and direct.ready():
            flusher.serve(subscriber, direct, write)
            return
        task = asyncio.create_task(_write(websocket, subscriber, settings.pacer, stats, direct,
                                          flusher, write))
        subscriber.writer = task
        task.add_done_callback(writer_done)

    def writer_done(task: asyncio.Task[bool]) -> None:
        nonlocal writer_ended
        if subscriber.writer is task:
            subscriber.writer = None
        if task.cancelled() or task.exception() is not None or task.result():
            writer_ended = True
            if reading:
                this_task.cancel()

    write()
    try:
        await _read(websocket, session, handle)
    except asyncio.CancelledError:
        if not writer_ended or this_task.cancelling() > 1:
            raise  # cancelled from outside (server shutdown), not by our writer
        this_task.uncancel()
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass  # the client went away mid-read
    finally:
        reading = False
        transport_stats.connections -= 1
        subscriber.on_wake = None  # the flusher lets go of it
        session.close()
        writer = subscriber.writer
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError,
                                     RuntimeError):
                await writer


def keep_alive(websocket: WebSocket, subscriber: Subscriber, ping_interval: float | None) -> None:
    """Let the janitor ping ``subscriber`` when quiet, and the kernel end it when its peer stops
    acknowledging data (ticker/transport/keepalive.py); nothing without ``ping_interval``."""
    if ping_interval:
        subscriber.pinger = Pinger.of(websocket)
        set_user_timeout(websocket, 2 * ping_interval)


async def check_origin(websocket: WebSocket, origins: OriginPolicy) -> bool:
    """Refuse a cross-site handshake with 403, before any hub state exists for it."""
    origin = websocket.headers.get("origin")
    if origins.allows(origin, websocket.headers.get("host")):
        return True
    log.warning("refused a WebSocket from origin %s", origin)
    await deny(websocket, 403, "forbidden_origin", f"pages from {origin} may not connect here")
    return False


async def deny(websocket: WebSocket, status: int, code: str, message: str) -> None:
    """Refuse the handshake with an HTTP error (before accept: no hub state exists for it)."""
    await send_denial(websocket, Response(
        orjson.dumps({"type": "error", "code": code, "message": message}),
        status_code=status, media_type="application/json",
        headers={"X-Content-Type-Options": "nosniff"}))


async def _read(websocket: WebSocket, client: Session, handle: Handler) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if client.subscriber.close_request is not None:
            continue  # closing: the writer sends the close frame, then stops this reader
        text = message.get("text")
        if text is None:
            # The protocol is JSON text; bytes would be a client speaking something else.
            client.subscriber.close(Close(CLOSE_UNSUPPORTED_DATA,
                                          "binary frames are not accepted: send JSON text"))
            continue
        if client.admit(text):
            handle(client, text)


async def _write(websocket: WebSocket, subscriber: Subscriber, pacer: FramePacer,
                 stats: Stats, direct: DirectFrames | None, flusher: Flusher | None,
                 handback: Callable[[], None]) -> bool:
    """Send as soon as there is something and the connection is idle; but no sooner than the
    pacer's interval after the previous send, so that under load ticks share frames (each frame
    costs a system call) instead of the server spending itself on frame overhead. When the
    server is not busy the interval is 0: every tick goes out at once.

    Returns True once the close is sent; False when the connection can be written directly
    again and goes back to the flusher (``handback``), which ends this task."""
    loop = asyncio.get_running_loop()
    last_send = 0.0
    counts = subscriber.stats
    while True:
        if (flusher is not None and direct is not None and subscriber.close_request is None
                and direct.ready()):
            handback()
            return False
        await subscriber.wait()
        early = last_send + pacer.interval - loop.time()
        if early > 0:
            await asyncio.sleep(early)
        last_send = loop.time()
        for frame in subscriber.drain():
            subscriber.wrote_at = last_send
            if direct is not None and direct.ready():
                direct.write(frame)  # no await, and counted: see ticker/transport/frames.py
                continue
            # No timer per frame (a timeout costs more than a small send): the janitor checks
            # the connections in a send once a second.
            subscriber.begin_send(loop.time())
            await websocket.send_text(frame.decode())
            subscriber.end_send()
            counts.frames += 1
            counts.bytes += len(frame)
        request = subscriber.close_request
        if request is not None:
            stats.closes[request.code] += 1
            subscriber.begin_send(loop.time())
            await websocket.close(request.code, request.reason)
            return True
