"""A fake of Alpaca's market-data stream v2 on 127.0.0.1, for the adapter's tests
(feeds/live/alpaca.py): it does the handshake as Alpaca does, refuses when told to, and then
sends whatever frames the test hands to :class:`FakeSession`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.servers import UNIT

Message = dict[str, Any]

CONNECTED: Message = {"T": "success", "msg": "connected"}
AUTHENTICATED: Message = {"T": "success", "msg": "authenticated"}
ERRORS = {402: "auth failed", 404: "auth timeout", 406: "connection limit exceeded",
          407: "slow client", 409: "insufficient subscription"}

# Its own logger, never at DEBUG: websockets' frame dumps would show the auth frame's secret,
# and the tests check that no log line does.
_LOG = logging.getLogger("tests.alpaca_fake")
_LOG.setLevel(logging.INFO)


def error(code: int) -> Message:
    return {"T": "error", "code": code, "msg": ERRORS[code]}


def trade(symbol: str, price: float, size: float, t: str, i: int = 1) -> Message:
    return {"T": "t", "S": symbol, "i": i, "x": "V", "p": price, "s": size, "c": ["@"],
            "z": "C", "t": t}


def quote(symbol: str, bid: float, ask: float, t: str) -> Message:
    return {"T": "q", "S": symbol, "bx": "U", "bp": bid, "bs": 2, "ax": "Q", "ap": ask,
            "as": 4, "c": ["R"], "z": "C", "t": t}


class FakeSession:
    """One subscribed client connection."""

    def __init__(self, ws: ServerConnection, subscribe: Message) -> None:
        self.ws = ws
        self.subscribe = subscribe

    async def send(self, *messages: Message) -> None:
        """One frame holding ``messages``, as Alpaca batches data."""
        await self.ws.send(orjson.dumps(list(messages)).decode())

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def drop(self) -> None:
        """The connection breaks mid-stream (no closing handshake)."""
        self.ws.transport.abort()


class FakeAlpaca:
    """``async with FakeAlpaca() as alpaca``; ``alpaca.url`` is what AlpacaUpstream takes."""

    def __init__(self, key: str = "PKFAKEKEY", secret: str = "fake-s3cret-value",
                 port: int = 0) -> None:
        self.key = key
        self.secret = secret
        self.port = port
        self.auth_error: int | None = None  # refuse every auth with this code
        self.unconfirmed: set[str] = set()  # symbols left out of the subscription's trades
        self.paths: list[str] = []  # the path of every connection
        self.received: list[Message] = []  # every client message
        self._sessions: asyncio.Queue[FakeSession] = asyncio.Queue()
        self._server: Server | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", self.port, logger=_LOG)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeAlpaca:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def next_session(self, timeout: float = 5.0) -> FakeSession:
        """The next client that got as far as a confirmed subscription."""
        return await asyncio.wait_for(self._sessions.get(), timeout * UNIT)

    async def _handle(self, ws: ServerConnection) -> None:
        self.paths.append(ws.request.path if ws.request is not None else "")
        with contextlib.suppress(ConnectionClosed):
            await self._send(ws, CONNECTED)
            while True:
                action: Message = orjson.loads(await ws.recv())
                self.received.append(action)
                if action.get("action") == "auth":
                    refusal = self.auth_error or (
                        None if (action.get("key"), action.get("secret")) == (self.key,
                                                                              self.secret)
                        else 402)
                    # Alpaca leaves the connection open after 402 and 406.
                    await self._send(ws, error(refusal) if refusal else AUTHENTICATED)
                elif action.get("action") == "subscribe":
                    trades = [s for s in action.get("trades", []) if s not in self.unconfirmed]
                    await self._send(ws, {
                        "T": "subscription", "trades": trades,
                        "quotes": action.get("quotes", []), "bars": [], "updatedBars": [],
                        "dailyBars": [], "statuses": [], "lulds": [], "corrections": trades,
                        "cancelErrors": trades})
                    self._sessions.put_nowait(FakeSession(ws, action))
                    await ws.wait_closed()
                    return

    @staticmethod
    async def _send(ws: ServerConnection, message: Message) -> None:
        await ws.send(orjson.dumps([message]).decode())
