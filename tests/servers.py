"""A real uvicorn server in a background thread, on a free port, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

from ticker.app import create_app
from ticker.config import Config, load_config
from ticker.server import TickerServer, uvicorn_config

# Every wait in the tests is a multiple of this unit; raise it on a slow machine.
UNIT = float(os.environ.get("TICKER_TEST_TIMEOUT_UNIT", "1.0"))


def make_config(**overrides: Any) -> Config:
    base = {"server.log_level": "warning", "feed.tick_rate": 400.0, "feed.seed": 7}
    return load_config(overrides={**base, **overrides})


class RunningServer:
    def __init__(self, server: TickerServer, port: int, thread: threading.Thread) -> None:
        self.server = server
        self.port = port
        self.thread = thread
        self.node = server.node

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, function: Any, *args: Any) -> Any:
        """Run ``function(*args)`` on the server's event loop and return its result."""
        loop = self.server_loop
        future: asyncio.Future[Any] = asyncio.run_coroutine_threadsafe(_call(function, *args), loop)
        return future.result(timeout=5 * UNIT)

    server_loop: asyncio.AbstractEventLoop


async def _call(function: Any, *args: Any) -> Any:
    return function(*args)


@contextlib.contextmanager
def running_server(config: Config | None = None, port: int = 0,
                   **create_args: Any) -> Iterator[RunningServer]:
    """``port=0`` picks a free port; pass a previous server's port to restart "the same" server."""
    config = config or make_config()
    app = create_app(config, **create_args)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    server = TickerServer(uvicorn_config(app, config.server), app.state.node)
    loops: list[asyncio.AbstractEventLoop] = []

    def run() -> None:
        async def serve() -> None:
            loops.append(asyncio.get_running_loop())
            await server.serve(sockets=[sock])

        asyncio.run(serve())

    thread = threading.Thread(target=run, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    deadline = 10 * UNIT
    waited = 0.0
    while not server.started and thread.is_alive() and waited < deadline:
        threading.Event().wait(0.01)
        waited += 0.01
    if not server.started:
        raise RuntimeError("test server did not start")
    running = RunningServer(server, port, thread)
    running.server_loop = loops[0]
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=10 * UNIT)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("test server did not stop")


__all__ = ["UNIT", "RunningServer", "make_config", "running_server"]
