"""A client that stops reading must not hold up anyone else, and is dropped in bounded time."""

from __future__ import annotations

import asyncio
import os
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
        lateness: list[float] = []
        started = time.monotonic()
        dropped_after = None
        while (dropped_after is None or len(lateness) < 500) \
                and time.monotonic() - started < 20 * UNIT:
            message = await healthy.recv()
            if message["type"] == "ticks":
                now = time.time() * 1000
                lateness.extend(now - tick["ts"] for tick in message["ticks"])
            if dropped_after is None and server.node.hub.connections == 1:
                dropped_after = time.monotonic() - started
        assert dropped_after is not None, "the stalled client was never dropped"
        assert dropped_after < 15 * UNIT
        await healthy.until_ticks("KO", len(healthy.ticks["KO"]) + 50)  # still contiguous
        lateness.sort()
        assert len(lateness) >= 500
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


def server_side_send_buffer(client_address: tuple[str, int]) -> int | None:
    """SO_SNDBUF of this process's socket whose peer is ``client_address`` (the server runs in a
    thread of the test process, so its sockets are ours to look at)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            probe = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue  # not a socket
        with probe:
            try:
                if probe.getpeername() == client_address:
                    return probe.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            except OSError:
                continue
    return None


@pytest.mark.parametrize("cap", [65536, 0])
async def test_the_kernel_send_buffer_of_each_websocket_is_capped(cap: int) -> None:
    # Without a cap Linux grows it to megabytes, and a client that stopped reading is served
    # into it for seconds before the slow-client policy can see it.
    with running_server(make_config(**{"server.ws_send_buffer": cap})) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        client = await connect(server.ws_url, sock=sock)
        await client.recv()  # the hello: the server has accepted, and set its options
        size = await asyncio.to_thread(server_side_send_buffer, sock.getsockname())
        await client.close()
    assert size is not None, "the server's end of the connection was not found"
    if cap:
        assert cap <= size <= 2 * cap  # Linux books twice what was asked
    else:
        assert size != 2 * 65536 and size > 0  # the kernel's own
