"""A client that stops reading must not hold up anyone else, and is dropped in bounded time."""

from __future__ import annotations

import asyncio
import socket
import time

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.servers import UNIT, make_config, running_server
from tests.wsclient import TickerClient

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_a_stalled_client_is_dropped_and_others_keep_their_pace() -> None:
    config = make_config(**{"feed.tick_rate": 6000.0, "server.max_lag_fraction": 0.2,
                            "server.send_timeout": 2.0})
    with running_server(config) as server:
        # A tiny receive window and a client-side queue of one message: this client soon stops
        # reading from its socket altogether.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        stalled = await connect(server.ws_url, sock=sock, max_queue=1)
        symbols = server.node.hub.symbols
        await stalled.send(orjson.dumps({"op": "subscribe",
                                         "symbols": [info.symbol for info in symbols]}).decode())

        healthy = await TickerClient.open(server.ws_url)
        await healthy.send({"op": "subscribe", "symbols": ["KO"]})
        lateness = []
        started = time.monotonic()
        while server.node.hub.connections > 1 and time.monotonic() - started < 20 * UNIT:
            message = await healthy.recv()
            if message["type"] == "ticks":
                now = time.time() * 1000
                lateness.extend(now - tick["ts"] for tick in message["ticks"])
        dropped_after = time.monotonic() - started
        assert server.node.hub.connections == 1, "the stalled client was never dropped"
        assert dropped_after < 15 * UNIT
        await healthy.until_ticks("KO", len(healthy.ticks["KO"]) + 50)  # still contiguous
        lateness.sort()
        assert len(lateness) > 500
        assert lateness[len(lateness) // 2] < 100 * UNIT, "median delivery slowed down"
        assert lateness[int(len(lateness) * 0.99)] < 500 * UNIT
        # Once it reads again, the stalled client finds its connection ended, and a reconnect
        # (with resume) is how it catches up.
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(read_until_closed(stalled), 10 * UNIT)
        await healthy.close()


async def read_until_closed(connection: ClientConnection) -> None:
    while True:
        await connection.recv()
