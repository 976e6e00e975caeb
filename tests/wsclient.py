"""A protocol v1 test client over a real WebSocket: receives, and checks seq continuity."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.servers import UNIT


class TickerClient:
    """Wraps a connection; every tick it sees is checked: per symbol, seqs rise by exactly 1."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.hello: dict[str, Any] = {}
        self.last_seq: dict[str, int] = {}
        self.ticks: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.messages: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, url: str) -> TickerClient:
        # An unbounded queue keeps the client reading while a test is not, so close() is prompt.
        client = cls(await connect(url, max_size=2**24, max_queue=None))
        client.hello = await client.recv()
        assert client.hello["type"] == "hello"
        return client

    async def close(self) -> None:
        await self.ws.close()

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        message: dict[str, Any] = orjson.loads(await asyncio.wait_for(self.ws.recv(),
                                                                      timeout * UNIT))
        self.messages.append(message)
        if message["type"] == "snapshot":
            if message["reset"] or message["symbol"] not in self.last_seq:
                self.last_seq.pop(message["symbol"], None)
            self._take(message["ticks"])
        elif message["type"] == "ticks":
            self._take(message["ticks"])
        return message

    def _take(self, ticks: list[dict[str, Any]]) -> None:
        for tick in ticks:
            symbol, seq = tick["symbol"], tick["seq"]
            previous = self.last_seq.get(symbol)
            assert previous is None or seq == previous + 1, (
                f"{symbol}: seq {seq} after {previous} (gap or duplicate)")
            self.last_seq[symbol] = seq
            self.ticks[symbol].append(tick)

    async def recv_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """Receive until a message of ``kind`` arrives (ticks before it are still checked)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout * UNIT
        while True:
            message = await self.recv(max(0.01, deadline - loop.time()))
            if message["type"] == kind:
                return message

    async def recv_type_in(self, kinds: tuple[str, ...], timeout: float = 5.0) -> dict[str, Any]:
        """Receive until a message of one of ``kinds`` arrives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout * UNIT
        while True:
            message = await self.recv(max(0.01, deadline - loop.time()))
            if message["type"] in kinds:
                return message

    async def collect(self, seconds: float) -> list[dict[str, Any]]:
        """Receive everything for ``seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        received = []
        while (left := deadline - loop.time()) > 0:
            try:
                received.append(await self.recv(left / UNIT))
            except TimeoutError:
                break
        return received

    async def until_ticks(self, symbol: str, count: int, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout * UNIT
        while len(self.ticks[symbol]) < count:
            await self.recv(max(0.01, deadline - loop.time()))


class Watcher:
    """A well-behaved client next to a misbehaving one: it reads everything in the background
    (every seq checked by TickerClient) and must keep receiving, with no gap, whatever the other
    client does."""

    def __init__(self, url: str, symbols: list[str]) -> None:
        self._url = url
        self._symbols = symbols
        self.client: TickerClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        self.client = await TickerClient.open(self._url)
        await self.client.send({"op": "subscribe", "symbols": self._symbols})
        await self.client.recv_type("subscribed")
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.client is not None
        while True:
            await self.client.recv(timeout=3600)

    @property
    def received(self) -> int:
        assert self.client is not None
        return sum(len(ticks) for ticks in self.client.ticks.values())

    async def keeps_receiving(self, count: int = 20, timeout: float = 10.0) -> None:
        """Wait until ``count`` more ticks have arrived (seqs still contiguous)."""
        start = self.received
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout * UNIT
        while self.received < start + count:
            assert self._task is not None
            if self._task.done():
                self._task.result()  # raises what stopped it: a gap, or a closed connection
                raise AssertionError("the well-behaved client stopped reading")
            assert loop.time() < deadline, f"the well-behaved client got only " \
                f"{self.received - start} of {count} ticks in {timeout} s"
            await asyncio.sleep(0.01)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None and self.client is not None
        failed = self._task.done() and not self._task.cancelled() and self._task.exception()
        # Closing ends the reader's recv() with ConnectionClosed; cancelling a recv() in flight
        # can leave websockets' reader waiting forever.
        await self.client.close()
        with contextlib.suppress(ConnectionClosed):
            await asyncio.wait_for(self._task, 10 * UNIT)
        if failed:
            raise failed
