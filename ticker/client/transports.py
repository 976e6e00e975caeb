"""The two ways the client reaches a server: a WebSocket (/ws), or Server-Sent Events (/sse) for
networks that block WebSockets. Each hands over parsed server messages, one at a time."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import h11
import orjson
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ticker.protocol import is_terminal_close


class Closed(Exception):
    """The connection ended. ``terminal``: the server said not to come back (a close code in
    docs/protocol.md's "do not reconnect" range, a refused token, a bad request)."""

    def __init__(self, reason: str, terminal: bool = False, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.terminal = terminal
        self.code = code


class NoWebSocket(Closed):
    """The server (or a proxy on the way) answered the upgrade with a plain HTTP status: the
    WebSocket is blocked, try SSE."""


class Connection(Protocol):
    kind: str  # "ws" or "sse"

    async def receive(self) -> dict[str, Any]: ...

    async def send(self, message: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


def endpoints(url: str) -> tuple[str, str]:
    """(ws URL of /ws, http URL of /sse) from any of ws://H:P/ws, wss://H/ws, http://H:P."""
    parts = urlsplit(url)
    secure = parts.scheme in ("wss", "https")
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        raise ValueError(f"a server URL is ws://HOST:PORT/ws or http://HOST:PORT, got {url!r}")
    path = parts.path.rstrip("/")
    for suffix in ("/ws", "/sse"):
        if path.endswith(suffix):
            path = path[:-len(suffix)]
    base = f"{parts.netloc}{path}"
    return (f"{'wss' if secure else 'ws'}://{base}/ws", f"{'https' if secure else 'http'}://{base}/sse")


def _auth_headers(token: str | None) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {token}")] if token else []


class WebSocketConnection:
    kind = "ws"

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket

    @classmethod
    async def open(cls, url: str, token: str | None, timeout: float) -> WebSocketConnection:
        try:
            socket = await ws_connect(url, additional_headers=_auth_headers(token),
                                      open_timeout=timeout, max_size=2**24,
                                      ping_interval=20, ping_timeout=20)
        except InvalidStatus as error:
            raise _refusal(error.response.status_code, bytes(error.response.body or b""),
                           websocket=True) from None
        return cls(socket)

    async def receive(self) -> dict[str, Any]:
        try:
            frame = await self._socket.recv()
        except ConnectionClosed as closed:
            received = closed.rcvd
            if received is None:
                raise Closed("the connection dropped without a close frame", code=1006) from None
            raise Closed(f"closed by the server: {received.code} {received.reason}".rstrip(),
                         is_terminal_close(received.code), received.code) from None
        message: dict[str, Any] = orjson.loads(frame)
        return message

    async def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):  # receive() reports why
            await self._socket.send(orjson.dumps(message).decode())

    async def close(self) -> None:
        await self._socket.close()


def _refusal(status: int, body: bytes, websocket: bool = False) -> Closed:
    """What an HTTP status refusing us means: 401 and 4xx requests stop; 503 (full) retries."""
    try:
        detail = str(orjson.loads(body).get("message", ""))
    except (orjson.JSONDecodeError, AttributeError):
        detail = body[:200].decode("utf-8", "replace")
    reason = f"HTTP {status}" + (f": {detail}" if detail else "")
    if status == 401:
        return Closed(f"the server refused the token ({reason})", terminal=True, code=status)
    if status in (429, 503) or status >= 500:
        return Closed(reason, code=status)
    if websocket and 400 <= status < 500:
        # A plain refusal of the upgrade (a server without /ws answers 403, proxies 400, 404,
        # 426...): a WebSocket is not to be had here; SSE may be, and says so itself.
        return NoWebSocket(f"no WebSocket here ({reason})", code=status)
    return Closed(reason, terminal=True, code=status)


class HttpGet:
    """One GET over HTTP/1.1, parsed with h11 (uvicorn's own HTTP/1.1 parser) on an asyncio
    stream: the request is sent on :meth:`send`, then its response and body are read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._http = h11.Connection(h11.CLIENT)

    @classmethod
    async def send(cls, url: str, headers: list[tuple[str, str]], timeout: float) -> HttpGet:
        """Connect to ``url``'s host and send the GET of its path and query."""
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            parts.hostname or "localhost", parts.port or (443 if secure else 80),
            ssl=ssl.create_default_context() if secure else None), timeout)
        request = cls(reader, writer)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        writer.write(request._http.send(h11.Request(
            method="GET", target=target, headers=[("Host", parts.netloc), *headers])) or b"")
        writer.write(request._http.send(h11.EndOfMessage()) or b"")
        return request

    async def next_event(self) -> Any:
        while True:
            event = self._http.next_event()
            if event is h11.NEED_DATA:
                self._http.receive_data(await self._reader.read(65536))
                continue
            return event

    async def response(self) -> h11.Response:
        event = await self.next_event()
        if not isinstance(event, h11.Response):
            raise Closed(f"not an HTTP response: {type(event).__name__}")
        return event

    async def body(self) -> bytes:
        chunks = []
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            else:
                return b"".join(chunks)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class SseConnection:
    """GET /sse as an event stream. The server comments every 15 s on an idle stream, so
    silence for ``silence`` seconds means the connection is gone."""

    kind = "sse"

    def __init__(self, request: HttpGet, silence: float) -> None:
        self._request = request
        self._silence = silence
        self._buffer = b""
        self._events: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, url: str, symbols: Sequence[str], max_rate: float,
                   last_event_id: str | None, token: str | None, timeout: float,
                   silence: float = 45.0) -> SseConnection:
        query = f"symbols={quote(','.join(symbols), safe=',')}"
        if max_rate:
            query += f"&max_rate={max_rate:g}"
        headers = [("Accept", "text/event-stream"), ("Cache-Control", "no-store"),
                   *_auth_headers(token)]
        if last_event_id is not None:
            headers.append(("Last-Event-ID", last_event_id))
        request = await HttpGet.send(f"{url}?{query}", headers, timeout)
        try:
            response = await asyncio.wait_for(request.response(), timeout)
            if response.status_code != 200:
                raise _refusal(response.status_code,
                               await asyncio.wait_for(request.body(), timeout))
        except BaseException:
            await request.close()
            raise
        return cls(request, silence)

    async def receive(self) -> dict[str, Any]:
        while not self._events:
            try:
                event = await asyncio.wait_for(self._request.next_event(), self._silence)
            except TimeoutError:
                raise Closed(f"the event stream was silent for {self._silence:.0f} s") from None
            except h11.RemoteProtocolError as error:
                raise Closed(f"the event stream broke: {error}") from None
            if isinstance(event, h11.Data):
                self._buffer += bytes(event.data)
                self._parse()
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                raise Closed("the server ended the event stream")
        return self._events.pop(0)

    def _parse(self) -> None:
        """Complete events off the buffer; only their data matters (it is protocol v1 JSON)."""
        buffer = self._buffer.replace(b"\r\n", b"\n")
        *complete, self._buffer = buffer.split(b"\n\n")
        for block in complete:
            data = [line[5:].lstrip(b" ") for line in block.split(b"\n")
                    if line.startswith(b"data:")]
            if data:
                message = orjson.loads(b"\n".join(data))
                if isinstance(message, dict) and message.get("type"):
                    self._events.append(message)  # keep-alives ({}) carry no type

    async def send(self, message: dict[str, Any]) -> None:
        raise RuntimeError("an SSE stream takes no messages: reconnect with new symbols")

    async def close(self) -> None:
        await self._request.close()


async def get_json(url: str, token: str | None = None, timeout: float = 10.0) -> Any:
    """GET ``url`` (http or https) and parse its JSON body; raises Closed for a status other than
    200, OSError or TimeoutError when it cannot be reached."""
    request = await HttpGet.send(url, [("Accept", "application/json"), *_auth_headers(token)],
                                 timeout)
    try:
        response = await asyncio.wait_for(request.response(), timeout)
        body = await asyncio.wait_for(request.body(), timeout)
    finally:
        await request.close()
    if response.status_code != 200:
        raise _refusal(response.status_code, body)
    return orjson.loads(body)
