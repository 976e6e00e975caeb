"""A protocol v1 test client over a real WebSocket: receives, and checks seq continuity."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

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
