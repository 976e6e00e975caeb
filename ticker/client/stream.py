"""A subscription that survives its connection: reconnects, resumes, and says when it cannot."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import orjson
from websockets.exceptions import WebSocketException

from ticker.client.backoff import Backoff
from ticker.client.state import Event, ServerError, StreamState
from ticker.client.transports import (
    Closed,
    Connection,
    NoWebSocket,
    SseConnection,
    WebSocketConnection,
    endpoints,
)

log = logging.getLogger("ticker.client")

Transport = Literal["auto", "ws", "sse"]


class StreamClosed(Exception):
    """The stream stopped for good: the server said not to reconnect (a refused token, a close
    code of the "do not reconnect" range) or refused what was asked (an unknown symbol)."""


class Stream:
    """Iterate for events: :class:`~ticker.model.Tick`, :class:`Reset` (and :class:`Snapshot`
    when asked for), in the order the server sent them. See :func:`ticker.client.connect`."""

    def __init__(self, url: str, symbols: Iterable[str] | None, *, token: str | None = None,
                 max_rate: float = 0.0, transport: Transport = "auto", snapshot: bool = False,
                 backoff: Backoff | None = None, open_timeout: float = 10.0,
                 on_skip: Callable[[], None] | None = None) -> None:
        if transport not in ("auto", "ws", "sse"):
            raise ValueError(f"transport must be auto, ws or sse, got {transport!r}")
        self._ws_url, self._sse_url = endpoints(url)
        # A token in the URL, as the dashboard takes it (?token=...), works here too.
        self._token = token or dict(parse_qsl(urlsplit(url).query)).get("token")
        self._transport: Transport = transport
        self._everything = symbols is None  # follow every symbol the server offers
        self.state = StreamState(snapshots=snapshot)
        if symbols is not None:
            self.state.want(symbols, max_rate)
            if not self.state.symbols:
                raise ValueError("name at least one symbol, or None for all of them")
        self._max_rate = max_rate
        self._backoff = backoff or Backoff()
        self._open_timeout = open_timeout
        self._connection: Connection | None = None
        self._pending: deque[Event] = deque()
        self._closed = False
        self._asked = False  # whether this connection was sent our subscriptions
        self._first_ids: set[str] = set()  # our subscribes of the first connection
        self._unanswered: set[str] = set()  # ids of our subscribes not yet answered
        self.connections = 0  # connections opened, the first included
        self.skipped = 0  # server messages that were not protocol v1, skipped
        self._on_skip = on_skip
        self.problem: str | None = "not connected yet"  # why it is not live, or None

    # -- what a program sees ---------------------------------------------------------------------

    @property
    def epoch(self) -> str:
        return self.state.epoch

    @property
    def feed(self) -> str:
        return self.state.feed

    @property
    def available(self) -> tuple[str, ...]:
        """Every symbol the server offers (its latest hello)."""
        return self.state.available

    @property
    def symbols(self) -> list[str]:
        return list(self.state.symbols)

    @property
    def transport(self) -> str:
        """The transport of the connection now ("ws", "sse"), or "" between connections."""
        return self._connection.kind if self._connection is not None else ""

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Event:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            await self._receive_once()
        return self._pending.popleft()

    async def subscribe(self, symbols: Iterable[str], max_rate: float | None = None) -> None:
        """Add symbols while running (their snapshots come first, as for the first ones)."""
        added = self.state.want(symbols, self._max_rate if max_rate is None else max_rate)
        if not added or self._connection is None:
            return
        if self._connection.kind == "sse":
            await self._drop_connection("the symbols changed")  # the URL holds them
            return
        if not self._asked:
            return  # the hello to come asks for them with the rest
        for message in self.state.subscribe_messages(added):
            self._unanswered.add(message["id"])
            await self._connection.send(message)

    async def unsubscribe(self, symbols: Iterable[str]) -> None:
        dropped = self.state.drop(symbols)
        if not dropped or self._connection is None:
            return
        if self._connection.kind == "sse":
            await self._drop_connection("the symbols changed")
            return
        await self._connection.send({"op": "unsubscribe", "symbols": dropped})

    async def close(self) -> None:
        self._closed = True
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.close()

    # -- the connection ------------------------------------------------------------------------

    async def _receive_once(self) -> None:
        if self._connection is None:
            await self._connect()
            return
        try:
            message = await self._connection.receive()
        except Closed as closed:
            await self._lost(closed)
            return
        except (OSError, WebSocketException) as error:
            await self._lost(Closed(f"{type(error).__name__}: {error}"))
            return
        except orjson.JSONDecodeError as error:
            self._skip(error, "(not JSON)")
            return
        try:
            events = self.state.receive(message)
        except ServerError as error:
            self._server_error(message, error)
            return
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            self._skip(error, message)
            return
        if message.get("type") == "hello":
            await self._ask()
            if self._connection is not None and self._connection.kind == "sse":
                self.problem = None  # its URL asked: the stream is live once it says hello
        if message.get("type") == "subscribed":
            self._unanswered.discard(str(message.get("id")))
            if not self._unanswered:
                self.problem = None
        if events:
            self._backoff.reset()  # a connection that delivers is a working one
            self._pending.extend(events)

    async def _connect(self) -> None:
        """Open a connection and ask for the symbols (resuming where we stand); on failure,
        wait the backoff. Raises StreamClosed when the server refuses us for good."""
        try:
            self._connection = await self._open()
        except Closed as closed:
            await self._lost(closed)
            return
        except (OSError, TimeoutError, WebSocketException) as error:
            await self._lost(Closed(f"cannot connect: {type(error).__name__}: {error}"))
            return
        self.connections += 1
        self._asked = self._connection.kind == "sse"  # the URL asked already

    async def _open(self) -> Connection:
        if self._transport != "sse":
            try:
                return await WebSocketConnection.open(self._ws_url, self._token,
                                                      self._open_timeout)
            except NoWebSocket:
                if self._transport == "ws":
                    raise
                log.warning("no WebSocket at %s: falling back to SSE", self._ws_url)
                self._transport = "sse"
        symbols = list(self.state.symbols)
        if not symbols:
            raise Closed("SSE needs the symbols named: pass them to connect()", terminal=True)
        return await SseConnection.open(self._sse_url, symbols, self._max_rate,
                                        self.state.last_event_id(symbols), self._token,
                                        self._open_timeout)

    async def _ask(self) -> None:
        """After a hello: a new connection asks for every symbol (resuming where it can); one
        that follows everything also asks for symbols the hello names for the first time."""
        new = self.state.want(self.state.available, self._max_rate) if self._everything else []
        if self._connection is None or self._connection.kind != "ws":
            return
        symbols = None if not self._asked else new
        self._asked = True
        if symbols == []:
            return
        for message in self.state.subscribe_messages(symbols):
            self._unanswered.add(message["id"])
            if self.connections == 1:
                self._first_ids.add(message["id"])
            await self._connection.send(message)

    def _skip(self, error: Exception, message: object) -> None:
        """A message that is not protocol v1: skipped, counted, and the connection goes on."""
        self.skipped += 1
        if self._on_skip is not None:
            self._on_skip()
        log.warning("skipped a server message that is not protocol v1 (%s): %.200r", error,
                    message)

    def _server_error(self, message: dict[str, Any], error: ServerError) -> None:
        """An error reply: to the first subscription it ends the stream (the program asked for
        something that does not exist); later (a symbol gone after a restart) it is logged."""
        first = str(message.get("id", "")) in self._first_ids
        if first and error.code in ("unknown_symbol", "too_many_symbols", "bad_request"):
            self._closed = True
            raise StreamClosed(f"the server refused the subscription: {error}") from None
        log.warning("the server answered with an error: %s", error)

    async def _lost(self, closed: Closed) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()
        self.problem = closed.reason
        self._unanswered.clear()
        if closed.terminal:
            self._closed = True
            raise StreamClosed(closed.reason)
        if isinstance(closed, NoWebSocket) and self._transport == "ws":
            self._closed = True
            raise StreamClosed(closed.reason)
        delay = self._backoff.next_delay()
        log.warning("%s; reconnecting in %.1f s", closed.reason, delay)
        await asyncio.sleep(delay)

    async def _drop_connection(self, why: str) -> None:
        """Reconnect at once (resuming), e.g. for an SSE stream whose symbols changed."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()
        self.problem = why
