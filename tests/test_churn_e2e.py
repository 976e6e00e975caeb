"""Thousands of clients come and go, some politely and some killed without a close: afterwards
the server holds no connection, subscription or task it did not hold before, and a client that
stayed all along missed nothing."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.servers import UNIT, RunningServer, make_config, running_server
from tests.wsclient import Watcher

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

POLITE = 2000
KILLED = 300
SSE_DROPPED = 50
AT_ONCE = 50


def _server_tasks() -> int:
    return len(asyncio.all_tasks())


async def _polite(server: RunningServer, n: int) -> None:
    async with connect(server.ws_url) as ws:
        await ws.recv()  # hello
        await ws.send(f'{{"op":"subscribe","symbols":["AAPL","KO","S{n % 3}"],"id":1}}')
        while b'"subscribed"' not in (await ws.recv()).encode():
            pass


async def _killed(server: RunningServer) -> None:
    ws = await connect(server.ws_url)
    await ws.recv()
    await ws.send('{"op":"subscribe","symbols":["AAPL","MSFT","NVDA"]}')
    await ws.recv()
    ws.transport.abort()  # a reset, no close frame: a crashed client or a pulled cable


async def _sse_dropped(http: httpx.AsyncClient) -> None:
    async with http.stream("GET", "/sse?symbols=AAPL,MSFT") as response:
        async for _ in response.aiter_bytes():
            break  # the stream started; leave without a word


async def test_churn_leaves_nothing_behind() -> None:
    with running_server(make_config(**{"feed.tick_rate": 1000.0})) as server:
        hub, stats = server.node.hub, server.node.stats
        baseline = server.call(_server_tasks)
        async with Watcher(server.ws_url, ["AAPL", "KO"]) as watcher:
            started = time.monotonic()
            for first in range(0, POLITE, AT_ONCE):
                await asyncio.gather(*(_polite(server, n) for n in range(first, first + AT_ONCE)))
            for _ in range(0, KILLED, AT_ONCE):
                await asyncio.gather(*(_killed(server) for _ in range(AT_ONCE)))
            async with httpx.AsyncClient(base_url=server.http_url, timeout=5 * UNIT) as http:
                await asyncio.gather(*(_sse_dropped(http) for _ in range(SSE_DROPPED)))
            churned = time.monotonic() - started

            deadline = time.monotonic() + 20 * UNIT
            while time.monotonic() < deadline and (
                    hub.connections != 1 or stats.open_connections() != 1
                    or server.call(_server_tasks) > baseline + 2):
                await asyncio.sleep(0.05)
            # Only the watcher is left: its connection, its subscriptions, its reader and writer.
            assert hub.connections == 1
            assert stats.open_connections() == 1
            assert hub.subscription_count() == 2
            assert server.call(_server_tasks) <= baseline + 2
            await watcher.keeps_receiving()
            assert watcher.received > 100
        print(f"{POLITE + KILLED + SSE_DROPPED} clients churned in {churned:.1f} s")
