"""The Alpaca-compatible WebSocket at /v2/{feed}: a reader feeds the Session, a writer sends.

The same shape as protocol v1's transport (ticker/transport/ws.py): the reader runs in the
connection's task, the writer in its own, and the stall watchdog drops a client whose socket
stopped taking frames. Replies go through a small outbox so that they reach the socket in order
with the data, from the one writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from starlette.websockets import WebSocket, WebSocketDisconnect

from ticker.alpaca import protocol
from ticker.alpaca.protocol import Auth, Codec, Message
from ticker.alpaca.session import ConnectionLedger, Credentials, Session
from ticker.alpaca.stream import AlpacaStream
from ticker.config import Config
from ticker.errors import AlpacaError
from ticker.hub import Hub
from ticker.pacing import FramePacer
from ticker.protocol import CLOSE_SLOW_CONSUMER, CLOSE_TRY_AGAIN_LATER, quote
from ticker.stats import Stats
from ticker.subscriber import Close, Subscriber
from ticker.transport.frames import release_handshake
from ticker.transport.origin import OriginPolicy
from ticker.transport.ws import WebSocketSettings, check_origin, deny, keep_alive

log = logging.getLogger("ticker.alpaca")

CLOSE_POLICY_VIOLATION = 1008  # the auth deadline passed
KEY_HEADER = "APCA-API-KEY-ID"
SECRET_HEADER = "APCA-API-SECRET-KEY"


@dataclass(slots=True)
class AlpacaSettings:
    credentials: Credentials
    ledger: ConnectionLedger
    max_symbols: int
    auth_timeout: float
    max_lag: int
    max_frame_items: int
    origins: OriginPolicy = field(default_factory=lambda: OriginPolicy(()))
    pacer: FramePacer = field(default_factory=lambda: FramePacer(0.0))
    max_connections: int = 10_000  # all transports together (server.max_connections)
    stats: Stats = field(default_factory=Stats)
    ping_interval: float | None = None  # the janitor pings quiet connections; None: uvicorn


def alpaca_settings(config: Config, ws: WebSocketSettings) -> AlpacaSettings:
    """From the [alpaca] section, sharing protocol v1's origin policy and frame pacer."""
    section = config.alpaca
    return AlpacaSettings(Credentials(section.keys),
                          ConnectionLedger(section.max_connections_per_key), section.max_symbols,
                          section.auth_timeout, config.max_lag, config.server.max_frame_ticks,
                          ws.origins, ws.pacer, ws.max_connections, ws.stats, ws.ping_interval)


class _Outbox:
    """Control messages waiting for the writer, already encoded, one per frame (Alpaca sends
    control messages alone)."""

    def __init__(self, subscriber: Subscriber, codec: Codec) -> None:
        self._subscriber = subscriber
        self._codec = codec
        self._frames: list[bytes] = []

    def put(self, message: Message) -> None:
        self._frames.append(protocol.encode([message], self._codec))
        self._subscriber.wake()

    def take(self) -> list[bytes]:
        frames, self._frames = self._frames, []
        return frames


async def serve_alpaca(websocket: WebSocket, hub: Hub, settings: AlpacaSettings) -> None:
    """One connection's whole life."""
    feed = websocket.path_params.get("feed")
    if feed not in protocol.FEEDS:
        feeds = ", ".join(sorted(protocol.FEEDS))
        await deny(websocket, 404, "unknown_feed",
                   f"no feed {quote(feed)} here; the feeds are {feeds}")
        return
    if not await check_origin(websocket, settings.origins):
        settings.stats.refused["origin"] += 1
        return
    if settings.stats.open_connections() >= settings.max_connections:
        settings.stats.refused["capacity"] += 1
        await deny(websocket, 503, "server_full", f"this server holds its maximum of "
                   f"{settings.max_connections} connections: retry later or elsewhere")
        return
    codec = Codec.for_content_type(websocket.headers.get("content-type"))
    await websocket.accept()
    release_handshake(websocket)
    if not hub.ready:
        await websocket.close(CLOSE_TRY_AGAIN_LATER, "no feed yet: retry shortly")
        return
    counts = settings.stats.transports["alpaca"]
    subscriber = Subscriber(settings.max_lag, settings.max_frame_items, counts)
    keep_alive(websocket, subscriber, settings.ping_interval)
    session = Session(settings.credentials, settings.ledger, settings.max_symbols,
                      lambda: [info.symbol for info in hub.symbols])
    stream = AlpacaStream(hub, subscriber, session, codec, settings.max_frame_items)
    outbox = _Outbox(subscriber, codec)
    hub.connect(subscriber, hello=False)
    counts.connections += 1
    outbox.put(protocol.CONNECTED)
    key, secret = websocket.headers.get(KEY_HEADER), websocket.headers.get(SECRET_HEADER)
    if key is not None and secret is not None:  # Alpaca's other way to authenticate
        _apply(Auth(key, secret), session, stream, outbox)

    def time_out() -> None:
        message = session.time_out()
        if message is not None:
            outbox.put(message)
            subscriber.close(Close(CLOSE_POLICY_VIOLATION, "auth timeout"))

    deadline = asyncio.get_running_loop().call_later(settings.auth_timeout, time_out)
    this_task = asyncio.current_task()
    assert this_task is not None
    reading = True

    def stop_reading(_: asyncio.Task[None]) -> None:
        if reading:
            this_task.cancel()

    writer = asyncio.create_task(_write(websocket, subscriber, stream, outbox, codec,
                                        settings.pacer))
    subscriber.writer = writer
    writer.add_done_callback(stop_reading)
    try:
        await _read(websocket, codec, session, stream, outbox)
    except asyncio.CancelledError:
        if not writer.done() or this_task.cancelling() > 1:
            raise  # cancelled from outside (server shutdown), not by our writer
        this_task.uncancel()
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass  # the client went away mid-read
    finally:
        reading = False
        counts.connections -= 1
        deadline.cancel()
        session.close()
        hub.disconnect(subscriber)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError,
                                 RuntimeError):
            await writer


async def _read(websocket: WebSocket, codec: Codec, session: Session, stream: AlpacaStream,
                outbox: _Outbox) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        raw: str | bytes = text if text is not None else message.get("bytes") or b""
        try:
            command = protocol.parse_action(raw, codec)
        except AlpacaError as problem:
            _refuse(problem, outbox)
            continue
        _apply(command, session, stream, outbox)


def _apply(command: protocol.Command, session: Session, stream: AlpacaStream,
           outbox: _Outbox) -> None:
    try:
        reply = session.handle(command)
    except AlpacaError as problem:
        _refuse(problem, outbox)
        return
    if not isinstance(command, Auth):
        stream.sync()
    outbox.put(reply)


def _refuse(problem: AlpacaError, outbox: _Outbox) -> None:
    log.debug("refused a message: %s (%s)", problem, problem.detail)
    outbox.put(protocol.error(problem.code))


async def _write(websocket: WebSocket, subscriber: Subscriber, stream: AlpacaStream,
                 outbox: _Outbox, codec: Codec, pacer: FramePacer) -> None:
    """As protocol v1's writer: send as soon as there is something and the connection is idle,
    no sooner than the pacer's interval after the previous send."""
    loop = asyncio.get_running_loop()
    last_send = 0.0

    async def send(frame: bytes) -> None:
        # No timer per frame: the janitor checks the connections in a send.
        subscriber.wrote_at = now = loop.time()
        subscriber.begin_send(now)
        if codec is Codec.MSGPACK:
            await websocket.send_bytes(frame)
        else:
            await websocket.send_text(frame.decode())
        subscriber.end_send()
        subscriber.stats.frames += 1
        subscriber.stats.bytes += len(frame)

    while True:
        await subscriber.wait()
        early = last_send + pacer.interval - loop.time()
        if early > 0:
            await asyncio.sleep(early)
        last_send = loop.time()
        for frame in outbox.take() + stream.take():
            await send(frame)
        request = subscriber.close_request
        if request is not None:
            if request.code == CLOSE_SLOW_CONSUMER:
                # Fell too far behind: Alpaca's 407 says so, then the connection ends (the
                # client reconnects and subscribes again).
                await send(protocol.encode([protocol.error(protocol.SLOW_CLIENT)], codec))
            subscriber.begin_send(loop.time())
            await websocket.close(request.code, request.reason)
            return
