"""Per-connection replay at /ws/replay: each connection plays its own slice of a recording.

The connection gets a private hub fed by its own ReplayFeed through the same pump code as the
live market, so it speaks protocol v1 unchanged. The URL's ``symbols`` are subscribed at connect
(a subscribe adds more), and nothing plays before the connection has a subscription. Four controls:
``{"op":"pause"}``, ``{"op":"resume"}``, ``{"op":"speed","speed":2}``, ``{"op":"seek","ts":<ms>}``.
Each is answered with a ``replay`` state message; the end of the recording sends ``replay_end``.
Recordings are addressed by name inside the configured directory: no client path reaches the
filesystem.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from starlette.websockets import WebSocket

from feeds.catalog import RecordingCatalog
from feeds.recording import RecordingNameError, RecordingNotFound
from feeds.replay import ReplayFeed, parse_speed
from ticker.api import error
from ticker.errors import TickerError
from ticker.hub import Hub
from ticker.model import FeedEvent, FeedStart
from ticker.protocol import BAD_REQUEST, encode_error, name_list, parse_symbol_list
from ticker.pump import run_feed
from ticker.session import Session
from ticker.stats import Stats
from ticker.transport.denial import send_denial
from ticker.transport.janitor import Janitor
from ticker.transport.ws import (
    WebSocketSettings,
    check_origin,
    protocol_v1,
    serve_websocket,
)

log = logging.getLogger("ticker.replay")

CONTROL_OPS = ("pause", "resume", "speed", "seek")


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    catalog: RecordingCatalog
    snapshot_size: int
    history_size: int
    bars_kept: int
    ws: WebSocketSettings
    idle_timeout: float


async def serve_replay(websocket: WebSocket, settings: ReplaySettings) -> None:
    if not await check_origin(websocket, settings.ws.origins):
        return
    try:
        feed, symbols = await asyncio.to_thread(_open_feed, websocket.query_params,
                                                settings.catalog, settings.ws.stats)
    except RecordingNotFound as problem:
        await send_denial(websocket, error(404, "unknown_recording", str(problem)))
        return
    except (RecordingNameError, TickerError, ValueError) as problem:
        await send_denial(websocket, error(400, BAD_REQUEST, str(problem)))
        return
    # Nothing plays before the client has subscribed: a short or fast recording would be over
    # before the client could ask for it (the run starts, so the hello can name its symbols).
    feed.hold()
    hub = Hub(settings.snapshot_size, settings.history_size, settings.bars_kept)
    publisher = _HubPublisher(hub)
    ended, restart = asyncio.Event(), asyncio.Event()
    player = asyncio.create_task(_play(feed, publisher, hub, ended, restart))
    janitor = Janitor(hub, settings.ws.send_timeout, settings.idle_timeout, settings.ws.stats,
                      settings.ws.ping_interval)
    watchdog = asyncio.create_task(janitor.run())
    started = asyncio.create_task(publisher.started.wait())
    try:
        await asyncio.wait((started, player), return_when=asyncio.FIRST_COMPLETED)
        if not hub.ready:
            await send_denial(websocket, error(
                400, BAD_REQUEST, "the recording has no ticks in the requested range"))
            return
        controls = _Controls(feed, ended, restart, symbols)
        await serve_websocket(websocket, hub, settings.ws, controls.handle, controls.open,
                              transport="replay")
    finally:
        for task in (started, player, watchdog):
            task.cancel()
        for task in (started, player, watchdog):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _open_feed(params: Any, catalog: RecordingCatalog,
               stats: Stats) -> tuple[ReplayFeed, tuple[str, ...]]:
    name = params.get("recording")
    if not name:
        raise ValueError("missing parameter: recording (a name from /api/recordings)")
    path: Path = catalog.resolve(name)
    symbols = parse_symbol_list(params["symbols"]) if params.get("symbols") else ()
    feed = ReplayFeed(path, parse_speed(params.get("speed", "1")), loop=False,
                      from_ts=params.get("from") or None, to_ts=params.get("to") or None,
                      on_unreadable=stats.unreadable_line)
    recorded = {info.symbol for info in feed.symbols}
    unknown = [symbol for symbol in symbols if symbol not in recorded]
    if unknown:
        raise ValueError(f"not in the recording: {name_list(unknown)}")
    return feed, symbols


class _HubPublisher:
    """Where a private replay publishes: straight into the connection's hub, its one listener.
    So when the feed ends, the hub has every tick, and replay_end can be queued after them."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self.started = asyncio.Event()

    async def publish(self, event: FeedEvent) -> None:
        self._hub.ingest(event)
        if isinstance(event, FeedStart):
            self.started.set()


async def _play(feed: ReplayFeed, publisher: _HubPublisher, hub: Hub, ended: asyncio.Event,
                restart: asyncio.Event) -> None:
    """Play to the end, say so after the last tick, and play again from wherever a later seek
    points."""
    while True:
        await run_feed(lambda: feed, publisher, restart_delay=1.0)
        if not hub.ready:
            return  # nothing to play at all
        ended.set()
        hub.broadcast(orjson.dumps({"type": "replay_end", "position": feed.position}),
                      after_ticks=True)
        await restart.wait()
        restart.clear()
        ended.clear()


class _Controls:
    def __init__(self, feed: ReplayFeed, ended: asyncio.Event, restart: asyncio.Event,
                 symbols: tuple[str, ...]) -> None:
        self.feed = feed
        self.ended = ended
        self.restart = restart
        self.symbols = symbols

    def open(self, client: Session) -> None:
        """The URL's symbols are subscribed at connect, as if the client had asked first."""
        if self.symbols:
            protocol_v1(client, orjson.dumps({"op": "subscribe", "symbols": self.symbols}))
            self._release_once_subscribed(client)

    def _release_once_subscribed(self, client: Session) -> None:
        if self.feed.held and client.subscriber.symbols:
            self.feed.release()

    def handle(self, client: Session, raw: str | bytes) -> None:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            message = None
        op = message.get("op") if isinstance(message, dict) else None
        if op not in CONTROL_OPS:
            protocol_v1(client, raw)
            self._release_once_subscribed(client)
            return
        assert isinstance(message, dict)
        request_id = message.get("id")
        try:
            self._apply(op, message)
        except (ValueError, TypeError) as problem:
            client.subscriber.put_message(encode_error(BAD_REQUEST, str(problem), request_id))
            return
        state: dict[str, Any] = {"type": "replay", "paused": self.feed.paused,
                                 "speed": self.feed.speed, "position": self.feed.position,
                                 "ended": self.ended.is_set()}
        if request_id is not None:
            state["id"] = request_id
        client.subscriber.put_message(orjson.dumps(state), after_ticks=True)

    def _apply(self, op: str, message: dict[str, Any]) -> None:
        if op == "pause":
            self.feed.pause()
        elif op == "resume":
            self.feed.resume()
        elif op == "speed":
            speed = message.get("speed")
            if isinstance(speed, bool) or not isinstance(speed, int | float | str):
                raise ValueError("\"speed\" must be a positive number or \"max\"")
            self.feed.set_speed(speed if isinstance(speed, str) else float(speed))
        else:
            ts = message.get("ts")
            if isinstance(ts, bool) or not isinstance(ts, int | float | str):
                raise ValueError("\"ts\" must be Unix milliseconds or an ISO 8601 time")
            self.feed.seek(ts if isinstance(ts, str) else float(ts))
            if self.ended.is_set():
                self.restart.set()  # after the end, a seek plays again from there
                self.ended.clear()
