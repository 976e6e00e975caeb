"""One connected client's session: protocol v1 commands applied to the hub, replies queued.

Transport-agnostic and free of I/O: a transport feeds received text to :meth:`Client.handle`
and writes whatever the outbox yields. Every bad message gets an error reply and the session goes
on; nothing a client sends can end it.
"""

from __future__ import annotations

from collections.abc import Callable

from ticker import protocol
from ticker.errors import ProtocolError
from ticker.hub import Hub
from ticker.outbox import Outbox
from ticker.protocol import Ping, Subscribe, Unsubscribe


class Client:
    def __init__(self, hub: Hub, outbox: Outbox, max_symbols: int,
                 clock_ms: Callable[[], float]) -> None:
        self.hub = hub
        self.outbox = outbox
        self.symbols: set[str] = set()
        self._max_symbols = max_symbols
        self._clock_ms = clock_ms

    def open(self) -> None:
        self.hub.connect(self.outbox)

    def close(self) -> None:
        self.hub.disconnect(self.outbox)
        self.symbols.clear()

    def handle(self, raw: str | bytes) -> None:
        try:
            command = protocol.parse_command(raw)
            if isinstance(command, Subscribe):
                self._subscribe(command)
            elif isinstance(command, Unsubscribe):
                self._unsubscribe(command)
            elif isinstance(command, Ping):
                self.outbox.put_message(protocol.encode_pong(command.id, self._clock_ms()))
        except ProtocolError as error:
            self.outbox.put_message(protocol.encode_error(error.code, error.message,
                                                          error.request_id))

    def _subscribe(self, command: Subscribe) -> None:
        unknown = self.hub.unknown(command.symbols)
        known = tuple(s for s in command.symbols if s not in unknown and s not in self.symbols)
        if len(self.symbols) + len(known) > self._max_symbols:
            raise ProtocolError(
                protocol.TOO_MANY_SYMBOLS,
                f"a connection may subscribe to at most {self._max_symbols} symbols; it has "
                f"{len(self.symbols)} and asked for {len(known)} more; nothing was subscribed",
                command.id)
        already = [s for s in command.symbols if s in self.symbols]
        catchups = self.hub.subscribe(self.outbox, known, command.resume)
        self.symbols.update(known)
        if known or already:
            resumed = [c.symbol for c in catchups if c.snapshot is None]
            self.outbox.put_message(protocol.encode_subscribed(
                [s for s in command.symbols if s not in unknown], command.id, resumed))
        for catchup in catchups:
            if catchup.snapshot is not None:
                self.outbox.put_message(catchup.snapshot)
            else:
                self.outbox.put_backlog(catchup.backlog)
        if unknown:
            subscribed = "; the others were subscribed" if known or already else ""
            raise ProtocolError(
                protocol.UNKNOWN_SYMBOL,
                f"unknown symbol(s): {', '.join(unknown)}{subscribed}", command.id)

    def _unsubscribe(self, command: Unsubscribe) -> None:
        self.hub.unsubscribe(self.outbox, command.symbols)
        self.symbols.difference_update(command.symbols)
        self.outbox.put_message(protocol.encode_unsubscribed(command.symbols, command.id))
