"""The composition root: builds the Starlette app from a Config.

The lifespan owns everything long-lived: the broker, the hub's listener and the feed pump. Routes
reach them through ``app.state.node`` rather than module globals, so tests can run several apps.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from feeds.base import Feed
from feeds.catalog import RecordingCatalog
from feeds.recorder import Recorder
from ticker import api
from ticker.alpaca.endpoint import alpaca_settings, serve_alpaca
from ticker.auth import TokenPolicy
from ticker.brokers import Broker, broker_from_url
from ticker.config import Config
from ticker.health import NodeState, readiness
from ticker.hub import Hub
from ticker.limits import fit_max_connections
from ticker.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ticker.metrics import registry_for
from ticker.metrics import render as render_metrics
from ticker.pacing import FramePacer
from ticker.protocol import CLOSE_GOING_AWAY
from ticker.pump import run_feed
from ticker.replay_session import ReplaySettings, serve_replay
from ticker.resources import web_dir
from ticker.sources import FeedFactory, feed_factory_for
from ticker.stats import Stats
from ticker.subscriber import Close
from ticker.transport.denial import send_denial
from ticker.transport.flusher import Flusher
from ticker.transport.janitor import Janitor
from ticker.transport.origin import OriginPolicy
from ticker.transport.poll import PollSettings, serve_poll
from ticker.transport.sse import SseSettings, serve_sse
from ticker.transport.ws import OpRate, WebSocketSettings, serve_websocket

log = logging.getLogger("ticker.app")

class Node:
    """One server process: its hub, broker and background tasks."""

    def __init__(self, config: Config, feed_factory: FeedFactory | None,
                 stats: Stats | None = None) -> None:
        self.config = config
        self.hub = Hub(config.hub.snapshot_size, config.hub.history_size, config.hub.bars_kept)
        self.broker: Broker = broker_from_url(config.broker.url, config.broker.prefix,
                                              config.broker.window, config.broker.wait_at_start)
        self.feed_factory = feed_factory
        server = config.server
        self.stats = stats or Stats()
        self.pacer = FramePacer(server.max_frame_interval)
        max_connections = fit_max_connections(server.max_connections)
        self.ws_settings = WebSocketSettings(
            server.send_timeout, config.max_lag, server.max_frame_ticks,
            server.max_symbols_per_connection, OriginPolicy(server.allowed_origins), self.pacer,
            max_connections,
            OpRate(server.ops_per_second, server.ops_burst, server.rate_limit_strikes),
            self.stats, Flusher(), server.ws_send_buffer,
            server.ws_ping_interval if server.janitor_pings else None)
        self.sse_settings = SseSettings(config.max_lag, server.max_frame_ticks,
                                        server.max_symbols_per_connection, server.sse_keepalive,
                                        max_connections, self.stats)
        self.poll_settings = PollSettings(server.max_symbols_per_connection,
                                          config.hub.history_size, max_connections,
                                          self.stats)
        self.ws_settings.not_ready_reason = lambda: getattr(self.feed, "problem", None)
        self.alpaca_settings = alpaca_settings(config, self.ws_settings)
        self.catalog = RecordingCatalog(config.recordings.dir)
        self.replay_settings = ReplaySettings(self.catalog, config.hub.snapshot_size,
                                              config.hub.history_size, config.hub.bars_kept,
                                              self.ws_settings, server.idle_timeout)
        self.recorder: Recorder | None = None
        self.feed: Feed | None = None  # the feed running now, for its health (live feeds)
        self.feed_ended = False
        self.metrics = registry_for(self.hub, self.stats, self._recorded)
        self._tasks: list[asyncio.Task[None]] = []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        await self.broker.connect()
        self._spawn(self._listen(), "hub listener")
        server = self.config.server
        janitor = Janitor(self.hub, server.send_timeout, server.idle_timeout, self.stats,
                          self.ws_settings.ping_interval)
        self._spawn(janitor.run(), "connection janitor")
        if self.pacer.max_interval:
            self._spawn(self.pacer.run(), "frame pacer")
        if self.feed_factory is not None:
            open_feed = self.feed_factory
            if self.config.recordings.record:
                open_feed = self._start_recording(open_feed)
            self._spawn(self._pump(open_feed), "feed pump")
        try:
            if self.feed_factory is not None:
                await self._wait_ready(timeout=10.0)  # a relay node starts before its feed
            yield
        finally:
            self.going_away()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.broker.disconnect()
            if self.recorder is not None:
                await asyncio.to_thread(self.recorder.close)
                log.info("recording closed: %d ticks written", self.recorder.written)

    def _start_recording(self, open_feed: FeedFactory) -> FeedFactory:
        """Opens the first feed now, as the recording's header names its symbols."""
        first = [open_feed()]
        settings = self.config.recordings
        self.recorder = Recorder(settings.dir, first[0].kind, first[0].symbols,
                                 rotate_bytes=settings.rotate_bytes,
                                 rotate_seconds=settings.rotate_seconds, gzip=settings.gzip)
        log.info("recording every tick to %s", Path(settings.dir).resolve())
        return lambda: first.pop() if first else open_feed()

    async def _pump(self, open_feed: FeedFactory) -> None:
        def open_and_keep() -> Feed:
            self.feed = open_feed()
            return self.feed

        await run_feed(open_and_keep, self.broker, self.config.feed.restart_delay, self.recorder,
                       self.stats)
        self.feed_ended = True  # a replay that played to its end: not a stall

    def _recorded(self) -> int | None:
        return self.recorder.written if self.recorder is not None else None

    def state(self) -> NodeState:
        hub, recorder = self.hub, self.recorder
        failure = recorder.failure if recorder is not None else None
        live = self.feed is not None and hasattr(self.feed, "problem")
        return NodeState(
            broker_connected=self.broker.connected, feed_started=hub.ready,
            feed_running=not self.feed_ended,
            seconds_since_tick=time.monotonic() - hub.last_tick_at if hub.last_tick_at else None,
            recorder_failure=str(failure) if failure is not None else None,
            upstream_problem=getattr(self.feed, "problem", None) if live else None, live=live,
            epoch=hub.epoch, feed=hub.feed, connections=self.stats.open_connections())

    def going_away(self) -> None:
        """Close every client with 1001 so it knows to reconnect elsewhere or later."""
        self.hub.close_all(Close(CLOSE_GOING_AWAY, "server shutting down"))

    async def _listen(self) -> None:
        async for event in self.broker.listen():
            self.hub.ingest(event)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(_report_crash)
        self._tasks.append(task)

    async def _wait_ready(self, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.hub.ready:
            if self.feed is not None and hasattr(self.feed, "problem"):
                return  # a live feed: serve (and say why not ready) while its upstream is away
            for task in self._tasks:
                if task.done():
                    raise RuntimeError(f"{task.get_name()} stopped before the feed started")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"no feed started within {timeout:.0f} s")
            await asyncio.sleep(0.01)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s crashed", task.get_name(), exc_info=task.exception())


def plotly_js_path() -> Path:
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the plotly package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


class TickerApp(Starlette):
    """Starlette, except that /ws connections go straight to their handler.

    Through the router, Starlette's middleware and routing frames stay alive for a WebSocket's
    whole life: about 4 KB per connection, measured, and a server holding 10,000 connections
    should not pay 40 MB for frames that only matter when a request starts.
    """

    websocket_handler: Callable[[WebSocket], Awaitable[None]] | None = None
    tokens: TokenPolicy = TokenPolicy(())
    stats: Stats | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self.tokens.admits(scope):
            await self._refuse_unauthorized(scope, receive, send)
            return
        if (scope["type"] == "websocket" and scope["path"] == "/ws"
                and self.websocket_handler is not None):
            scope["app"] = self
            await self.websocket_handler(WebSocket(scope, receive, send))
            return
        await super().__call__(scope, receive, send)

    async def _refuse_unauthorized(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.stats is not None:
            self.stats.refused["auth"] += 1
        response = api.error(401, "unauthorized", "a valid token is required: ?token=... or "
                             "an \"Authorization: Bearer ...\" header")
        response.headers["WWW-Authenticate"] = 'Bearer realm="ticker"'
        if scope["type"] == "websocket":
            await send_denial(WebSocket(scope, receive, send), response)
        else:
            await response(scope, receive, send)


def create_app(config: Config, feed_factory: FeedFactory | None = None,
               run_feed_here: bool = True) -> Starlette:
    """``feed_factory`` defaults to the configured simulated feed; ``run_feed_here=False`` makes
    a node that only relays what the broker carries."""
    stats = Stats()
    if run_feed_here and feed_factory is None:
        feed_factory = feed_factory_for(config.feed, stats.unreadable_line, stats.upstream_skip)
    node = Node(config, feed_factory if run_feed_here else None, stats)
    plotly_js = plotly_js_path()

    async def websocket(ws: WebSocket) -> None:
        await serve_websocket(ws, node.hub, node.ws_settings)

    async def sse(request: Request) -> Response:
        return serve_sse(request, node.hub, node.sse_settings)

    async def poll(request: Request) -> Response:
        return await serve_poll(request, node.hub, node.poll_settings)

    async def alpaca(ws: WebSocket) -> None:
        await serve_alpaca(ws, node.hub, node.alpaca_settings)

    async def replay(ws: WebSocket) -> None:
        await serve_replay(ws, node.replay_settings)

    async def recordings(request: Request) -> Response:
        return await api.recordings(node.catalog)

    async def symbols(request: Request) -> Response:
        return api.symbols(node.hub)

    async def bars(request: Request) -> Response:
        return api.bars(request, node.hub, config.hub.bars_kept)

    async def health(request: Request) -> Response:
        return api.health()

    async def ready(request: Request) -> Response:
        ok, body = readiness(node.state(), config.server.feed_stall_timeout)
        return api.JSONResponse(body, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(render_metrics(node.metrics), media_type=METRICS_CONTENT_TYPE)

    async def plotly(request: Request) -> Response:
        return FileResponse(plotly_js, media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with node.running():
            yield

    transports = config.server.transports
    routes = [
        *([WebSocketRoute("/ws", websocket)] if "ws" in transports else []),
        *([Route("/sse", sse)] if "sse" in transports else []),
        *([Route("/poll", poll)] if "poll" in transports else []),
    ]
    app = TickerApp(
        routes=[
            *routes,
            WebSocketRoute("/ws/replay", replay),
            *([WebSocketRoute("/v2/{feed}", alpaca)] if config.alpaca.enabled else []),
            Route("/api/recordings", recordings),
            Route("/api/symbols", symbols),
            Route("/api/bars", bars),
            Route("/livez", health),
            Route("/healthz", health),
            Route("/readyz", ready),
            Route("/metrics", metrics),
            Route("/vendor/plotly.min.js", plotly),
            Mount("/", StaticFiles(directory=web_dir(), html=True)),
        ],
        lifespan=lifespan,
    )
    app.state.node = node
    app.tokens = TokenPolicy(config.auth.tokens)
    app.stats = node.stats
    if "ws" in transports:
        app.websocket_handler = websocket  # the fast path, see TickerApp
    return app
