"""Server-Sent Events at /sse: the same hub subscription as /ws, framed as an event stream.

Every event carries an ``id:`` holding the epoch and the last seq of each subscribed symbol, so a
browser EventSource that reconnects (sending Last-Event-ID) continues with no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ticker.api import error, refuse_when_full
from ticker.errors import ProtocolError
from ticker.feed_order import feed_order
from ticker.hub import Hub
from ticker.protocol import TICKS_PREFIX, TICKS_SUFFIX, Resume, parse_max_rate
from ticker.stats import Stats
from ticker.subscriber import Subscriber
from ticker.transport.positions import event_id, parse_event_id
from ticker.transport.query import QueryError, subscription_symbols

KEEPALIVE_SECONDS = 15.0
RETRY_MS = 1000
# A resume point no epoch can match: a bogus Last-Event-ID gets snapshots marked reset.
_NOWHERE = "-"


class SseSettings:
    def __init__(self, max_lag: int, max_frame_ticks: int, max_symbols: int,
                 keepalive: float = KEEPALIVE_SECONDS, max_connections: int = 10_000,
                 stats: Stats | None = None) -> None:
        self.max_lag = max_lag
        self.max_frame_ticks = max_frame_ticks
        self.max_symbols = max_symbols
        self.keepalive = keepalive
        self.max_connections = max_connections
        self.stats = stats or Stats()


def serve_sse(request: Request, hub: Hub, settings: SseSettings) -> Response:
    if settings.stats.open_connections() >= settings.max_connections:
        return refuse_when_full(settings.stats, settings.max_connections)
    try:
        symbols = subscription_symbols(request, hub, settings.max_symbols)
        max_rate = parse_max_rate(request.query_params.get("max_rate"))
    except QueryError as problem:
        return error(problem.status, problem.code, problem.message)
    except ProtocolError as problem:
        return error(400, problem.code, problem.message)
    resume = None
    # A page that reopens the stream itself cannot set the header: it may pass the id in the URL.
    last_event_id = request.headers.get("last-event-id",
                                        request.query_params.get("last_event_id"))
    if last_event_id is not None:
        resume = parse_event_id(last_event_id, symbols) or Resume(
            _NOWHERE, dict.fromkeys(symbols, 0))
    return StreamingResponse(
        _events(hub, settings, symbols, resume, max_rate),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _events(hub: Hub, settings: SseSettings, symbols: tuple[str, ...],
                  resume: Resume | None, max_rate: float) -> AsyncIterator[bytes]:
    counts = settings.stats.transports["sse"]
    subscriber = Subscriber(settings.max_lag, settings.max_frame_ticks, counts)
    # The response is sent from this generator's task: the stall watchdog cancels it if a yield
    # (a send) does not complete in time.
    subscriber.writer = asyncio.current_task()
    loop = asyncio.get_running_loop()
    hub.connect(subscriber)
    counts.connections += 1
    try:
        for _, snapshot in hub.subscribe(subscriber, symbols, resume, max_rate):
            if snapshot is not None:
                subscriber.put_message(snapshot)
        yield f"retry: {RETRY_MS}\n\n".encode()
        while subscriber.close_request is None:
            try:
                await asyncio.wait_for(subscriber.wait(), settings.keepalive)
            except TimeoutError:
                # A comment keeps proxies from timing out; the named event lets a page see it.
                yield b": keep-alive\nevent: keepalive\ndata: {}\n\n"
                continue
            chunk = render(hub.epoch, symbols, subscriber, settings.max_frame_ticks)
            if chunk:
                subscriber.begin_send(loop.time())
                yield chunk
                subscriber.end_send()
                counts.frames += chunk.count(b"\n\n")
                counts.bytes += len(chunk)
    finally:
        counts.connections -= 1
        hub.disconnect(subscriber)


def render(epoch: str, symbols: Sequence[str], subscriber: Subscriber, max_ticks: int) -> bytes:
    """Everything due as SSE events, each with the position it leaves the client at."""
    positions = subscriber.positions()
    out = [_event(_message_type(message), event_id(epoch, symbols, positions), message)
           for message in subscriber.take_messages()]
    runs = subscriber.take_ticks()
    due = [(symbol, first_seq + offset, tick) for symbol, first_seq, ticks, *_ in runs
           for offset, tick in enumerate(ticks)]
    order = feed_order(runs)
    if order is not None:
        due = [due[index] for index in order]
    # Events of at most max_ticks, in feed order; positions advance as each is cut, so every
    # event's id is exactly where the client stands once it has that event.
    for start in range(0, len(due), max_ticks):
        chunk = due[start:start + max_ticks]
        for symbol, seq, _ in chunk:
            positions[symbol] = seq
        out.append(_event(b"ticks", event_id(epoch, symbols, positions),
                          TICKS_PREFIX + b",".join([tick for _, _, tick in chunk])
                          + TICKS_SUFFIX))
    return b"".join(out)


def _event(kind: bytes, identifier: str, data: bytes) -> bytes:
    return b"event: " + kind + b"\nid: " + identifier.encode() + b"\ndata: " + data + b"\n\n"


def _message_type(message: bytes) -> bytes:
    # Server messages are encoded with "type" first: {"type":"snapshot",...}
    return message[9:message.index(b'"', 9)]
