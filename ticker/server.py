"""Runs an app under uvicorn, closing WebSocket clients with 1001 (going away) on shutdown.

uvicorn itself closes open WebSockets with 1012 and only then runs the lifespan shutdown, so the
hub is told first, here, and gets a moment to send its close frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette

from ticker.app import Node
from ticker.collector import Collector
from ticker.config import Config, ServerConfig
from ticker.logs import log_config

log = logging.getLogger("ticker.server")

# The shutdown budget (server.shutdown_timeout) is spent in three steps: clients get 1001 and up
# to CLOSE_GRACE_SECONDS to close; uvicorn then waits for the rest (clients that stopped reading
# never finish) and cancels them; last, the lifespan closes the recording (flush and fsync), for
# which RECORDING_RESERVE_SECONDS are kept.
CLOSE_GRACE_SECONDS = 1.0
RECORDING_RESERVE_SECONDS = 1.0


def uvicorn_shutdown_timeout(shutdown_timeout: float) -> int:
    """uvicorn takes whole seconds; at least one."""
    return max(1, math.floor(shutdown_timeout - CLOSE_GRACE_SECONDS - RECORDING_RESERVE_SECONDS))


class TickerServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, node: Node) -> None:
        super().__init__(config)
        self.node = node
        thaw_interval = node.config.server.gc_thaw_interval
        self.collector = Collector(thaw_interval) if thaw_interval > 0 else None
        self._collector_task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the captured SIGINT/SIGTERM after a graceful shutdown, which turns a
        # clean stop into a KeyboardInterrupt traceback or a death by signal: the shutdown is
        # complete by then, so the process exits normally instead.
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self.collector is not None:
            # Its first full collection pauses the loop: before listening, that is nobody's wait.
            self.collector.start()
            self._collector_task = asyncio.create_task(self.collector.run(), name="collector")
        await super().startup(sockets)
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
                log.info("dashboard: http://%s:%d/   websocket: ws://%s:%d/ws", shown, port,
                         shown, port)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.node.going_away()
        grace = min(CLOSE_GRACE_SECONDS, self.node.config.server.shutdown_timeout / 4)
        deadline = asyncio.get_running_loop().time() + grace
        # A short poll: shutdown happens once, and the hub has no reason to signal "empty".
        while self.node.hub.connections and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await super().shutdown(sockets)
        if self._collector_task is not None:
            self._collector_task.cancel()


def uvicorn_config(app: Starlette, server: ServerConfig, **extra: Any) -> uvicorn.Config:
    inherited = os.environ.get(LISTEN_FD_ENV)
    if inherited is not None:
        extra.setdefault("fd", int(inherited))  # a worker of serve_workers
    return uvicorn.Config(
        app,
        host=server.host,
        port=server.port,
        log_level=server.log_level,
        log_config=log_config(server.log_level, server.log_format),
        ws=server.ws_implementation,
        ws_max_size=server.ws_max_message_bytes,
        ws_per_message_deflate=server.ws_compression,
        # On websockets-sansio our janitor pings only the quiet connections instead.
        ws_ping_interval=None if server.janitor_pings else server.ws_ping_interval,
        ws_ping_timeout=None if server.janitor_pings else server.ws_ping_interval,
        timeout_graceful_shutdown=uvicorn_shutdown_timeout(server.shutdown_timeout),
        lifespan="on",
        **extra,
    )


def serve(app: Starlette, server: ServerConfig) -> None:
    TickerServer(uvicorn_config(app, server), app.state.node).run()


def serve_workers(config: Config, workers: int, argv: list[str]) -> int:
    """N server processes accepting on one listening socket (the kernel spreads connections);
    each is a relay node of the shared broker. Signals are passed on to every worker."""
    listener = socket.socket(socket.AF_INET6 if ":" in config.server.host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((config.server.host, config.server.port))
    listener.listen(2048)
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    child_args = _without_workers(argv)
    env = {**os.environ, LISTEN_FD_ENV: str(listener.fileno())}
    children = [subprocess.Popen([sys.executable, "-m", "ticker", *child_args],
                                 pass_fds=(listener.fileno(),), env=env)
                for _ in range(workers)]
    log.info("%d workers on port %d", workers, port)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    codes = [child.wait() for child in children]
    listener.close()
    return max(codes, key=abs)


LISTEN_FD_ENV = "TICKER_LISTEN_FD"


def _without_workers(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out
