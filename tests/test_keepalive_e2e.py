"""Keep-alive on a real server (ticker/transport/keepalive.py): the janitor pings only quiet
WebSockets, a peer that does not answer is failed with 1011, connections with traffic get no ping
and no per-connection timer, and the kernel is told to end a connection whose data goes
unacknowledged. The clients are raw sockets speaking RFC 6455 (ticker.bench.wsframes), so every
ping the server sends is seen."""

from __future__ import annotations

import asyncio
import socket

import httpx
import orjson
import pytest

from tests.servers import UNIT, make_config, running_server
from ticker.bench.wsframes import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameCutter,
    client_frame,
    close_code,
    handshake_request,
    handshake_response,
)
from ticker.transport.keepalive import TCP_USER_TIMEOUT

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

INTERVAL = 0.4  # server.ws_ping_interval of these tests


class RawClient:
    """One WebSocket client on a plain socket that counts the pings it gets and may answer."""

    def __init__(self, answers_pings: bool) -> None:
        self.answers_pings = answers_pings
        self.pings = 0
        self.ticks = 0
        self.close_code: int | None = None
        self.symbols: list[str] = []
        self._cutter = FrameCutter()
        self._reader: asyncio.StreamReader
        self._writer: asyncio.StreamWriter

    async def open(self, port: int) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", port)
        request, key = handshake_request(f"127.0.0.1:{port}", "/ws")
        self._writer.write(request)
        head = b""
        while (end := handshake_response(head, key)) is None:
            head += await self._chunk()
        self._take(head[end:])
        while not self.symbols:
            self._take(await self._chunk())

    async def _chunk(self) -> bytes:
        data = await asyncio.wait_for(self._reader.read(65536), 10 * UNIT)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def send(self, message: dict[str, object]) -> None:
        self._writer.write(client_frame(OP_TEXT, orjson.dumps(message)))

    async def read_for(self, seconds: float) -> None:
        """Read (answering pings if it does) for ``seconds`` or until the server closes."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while self.close_code is None and (left := until - loop.time()) > 0:
            try:
                data = await asyncio.wait_for(self._reader.read(65536), left)
            except TimeoutError:
                return
            if not data:
                return
            self._take(data)

    def _take(self, data: bytes) -> None:
        for opcode, payload in self._cutter.feed(data):
            if opcode == OP_PING:
                self.pings += 1
                if self.answers_pings:
                    self._writer.write(client_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self.close_code = close_code(payload)
            elif opcode == OP_TEXT:
                message = orjson.loads(payload)
                if message["type"] == "hello":
                    self.symbols = message["symbols"]
                elif message["type"] == "ticks":
                    self.ticks += len(message["ticks"])

    def close(self) -> None:
        self._writer.close()


async def test_only_quiet_connections_are_pinged_and_silent_ones_are_failed() -> None:
    config = make_config(**{"server.ws_ping_interval": INTERVAL, "server.idle_timeout": 60.0})
    with running_server(config) as server:
        busy, quiet, silent = RawClient(True), RawClient(True), RawClient(False)
        for client in (busy, quiet, silent):
            await client.open(server.port)
        busy.send({"op": "subscribe", "symbols": busy.symbols})  # every tick of the feed
        # quiet and silent subscribe to nothing: nothing is written to them after the hello
        await asyncio.gather(busy.read_for(8 * INTERVAL), quiet.read_for(8 * INTERVAL),
                             silent.read_for(8 * INTERVAL))
        stats = server.node.stats
        assert busy.ticks > 100 and busy.pings == 0, (busy.ticks, busy.pings)
        assert quiet.pings >= 4 and quiet.close_code is None, quiet.pings
        # silent got one ping, did not answer, and was failed on its next turn, as uvicorn would
        assert silent.pings >= 1 and silent.close_code == 1011, (silent.pings, silent.close_code)
        assert stats.unanswered_pings == 1 and stats.pings >= quiet.pings + silent.pings
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{server.http_url}/metrics")).text
        assert "ticker_keepalive_timeouts_total 1.0" in metrics
        pings = next(float(line.split()[1]) for line in metrics.splitlines()
                     if line.startswith("ticker_keepalive_pings_total "))
        assert pings >= quiet.pings + silent.pings  # the quiet one may get more meanwhile
        # No connection has a keep-alive timer of uvicorn's, and the kernel ends one whose data
        # stays unacknowledged for two intervals.
        protocols = list(server.server.server_state.connections)
        live = [p for p in protocols if hasattr(p, "ping_timer") and not p.transport.is_closing()]
        assert len(live) == 2
        for protocol in live:
            assert protocol.ping_timer is None and protocol.pong_timer is None
            sock = protocol.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT) == 2 * INTERVAL * 1000
        for client in (busy, quiet, silent):
            client.close()


# uvicorn's legacy protocol is deprecated, and so is websockets.legacy, which it imports.
@pytest.mark.filterwarnings("ignore:The `websockets` implementation is deprecated")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_on_uvicorns_legacy_protocol_uvicorn_keeps_pinging_every_connection() -> None:
    config = make_config(**{"server.ws_ping_interval": INTERVAL, "server.idle_timeout": 60.0,
                            "server.ws_implementation": "websockets"})
    with running_server(config) as server:
        busy, quiet = RawClient(True), RawClient(True)
        for client in (busy, quiet):
            await client.open(server.port)
        busy.send({"op": "subscribe", "symbols": busy.symbols})
        await asyncio.gather(busy.read_for(6 * INTERVAL * UNIT), quiet.read_for(6 * INTERVAL))
        assert busy.ticks > 100 and busy.pings >= 3 and quiet.pings >= 3, (busy.pings,
                                                                           quiet.pings)
        assert server.node.stats.pings == 0  # ours stayed out of it
        for client in (busy, quiet):
            client.close()
