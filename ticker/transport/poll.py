"""Long polling at /poll (and short polling with wait=0): one request per batch of ticks.

Each reply carries an opaque cursor (epoch, symbols, last seq per symbol); the next request hands
it back and gets exactly the ticks after it, as soon as there are any or when ``wait`` runs out.
Consecutive polls with the returned cursors lose and repeat nothing while history reaches back.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ticker.api import error, refuse_when_full
from ticker.errors import ProtocolError
from ticker.feed_order import in_feed_order
from ticker.hub import Hub
from ticker.stats import Stats
from ticker.subscriber import Subscriber
from ticker.transport.positions import decode_cursor, encode_cursor
from ticker.transport.query import QueryError, number, subscription_symbols

MAX_WAIT_SECONDS = 60.0
DEFAULT_WAIT_SECONDS = 25.0


class PollSettings:
    def __init__(self, max_symbols: int, history_size: int, max_connections: int = 10_000,
                 stats: Stats | None = None) -> None:
        self.max_symbols = max_symbols
        self.history_size = history_size
        self.max_connections = max_connections
        self.stats = stats or Stats()


async def serve_poll(request: Request, hub: Hub, settings: PollSettings) -> Response:
    if settings.stats.open_connections() >= settings.max_connections:
        return refuse_when_full(settings.stats, settings.max_connections)
    try:
        symbols = subscription_symbols(request, hub, settings.max_symbols)
        wait = number(request, "wait", DEFAULT_WAIT_SECONDS, 0.0, MAX_WAIT_SECONDS)
        cursor = request.query_params.get("cursor")
        resume = decode_cursor(cursor, symbols) if cursor is not None else None
    except QueryError as problem:
        return error(problem.status, problem.code, problem.message)
    except ProtocolError as problem:
        return error(400, problem.code, problem.message)

    # A poller is not lagging while it is away between polls: only history bounds its backlog.
    counts = settings.stats.transports["poll"]
    subscriber = Subscriber(max_lag=settings.history_size, max_frame_ticks=settings.history_size,
                            stats=counts)
    hub.connect(subscriber, hello=False)
    counts.connections += 1
    try:
        snapshots = [snapshot for _, snapshot in hub.subscribe(subscriber, symbols, resume)
                     if snapshot is not None]
        runs = subscriber.take_ticks()
        if not runs and not snapshots and wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(subscriber.wait(), wait)
            runs = subscriber.take_ticks()
        if subscriber.close_request is not None:
            return error(503, "going_away", "the server is shutting down: poll again (another "
                         "server, or this one once back) with the same cursor")
        ticks = in_feed_order(runs)
        head: dict[str, object] = {
            "cursor": encode_cursor(hub.epoch, symbols, subscriber.positions()),
            "epoch": hub.epoch, "reset": resume is not None and bool(snapshots)}
        if resume is None:  # a first poll: what a hello would say
            head["feed"] = hub.feed
            head["symbols"] = [info.symbol for info in hub.symbols]
        body = orjson.dumps(head)[:-1]
        if snapshots:
            body += b',"snapshots":[' + b",".join(snapshots) + b"]"
        body += b',"ticks":[' + b",".join(ticks) + b"]}"
        counts.frames += 1
        counts.bytes += len(body)
        return Response(body, media_type="application/json",
                        headers={"Cache-Control": "no-store"})
    finally:
        counts.connections -= 1
        hub.disconnect(subscriber)
