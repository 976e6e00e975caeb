"""One connected client's session: protocol v1 commands applied to the hub, replies queued.

Transport-agnostic and free of I/O: a transport feeds received text to
:meth:`Client.handle` and writes whatever the subscriber's drain yields. Every bad message
gets an error reply and the session goes on; nothing a client sends can end it.
"""

from __future__ import annotations

from collections.abc import Callable

from ticker import protocol
from ticker.errors import ProtocolError
from ticker.hub import Hub
from ticker.protocol import Ping, Subscribe, Unsubscribe
from ticker.subscriber import Subscriber


class Client:
    def __init__(self, hub: Hub, subscriber: Subscriber, max_symbols: int,
                 clock_ms: Callable[[], float]) -> None:
        self.hub = hub
        self.subscriber = subscriber
        self.symbols: set[str] = set()
        self._max_symbols = max_symbols
        self._clock_ms = clock_ms

    def open(self) -> None:
        self.hub.connect(self.subscriber)

    def close(self) -> None:
        self.hub.disconnect(self.subscriber)
        self.symbols.clear()

    def handle(self, raw: str | bytes) -> None:
        try:
            command = protocol.parse_command(raw)
            if isinstance(command, Subscribe):
                self._subscribe(command)
            elif isinstance(command, Unsubscribe):
                self._unsubscribe(command)
            elif isinstance(command, Ping):
                self.subscriber.put_message(protocol.encode_pong(command.id, self._clock_ms()))
        except ProtocolError as error:
            self.subscriber.put_message(protocol.encode_error(error.code, error.message,
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
        first_messages = self.hub.subscribe(self.subscriber, known, command.resume,
                                            command.max_rate)
        self.symbols.update(known)
        if known or already:
            resumed = [symbol for symbol, snapshot in first_messages if snapshot is None]
            self.subscriber.put_message(protocol.encode_subscribed(
                [s for s in command.symbols if s not in unknown], command.id, resumed))
        for _, snapshot in first_messages:
            if snapshot is not None:
                self.subscriber.put_message(snapshot)
        if unknown:
            subscribed = "; the others were subscribed" if known or already else ""
            raise ProtocolError(
                protocol.UNKNOWN_SYMBOL,
                f"unknown symbol(s): {', '.join(unknown)}{subscribed}", command.id)

    def _unsubscribe(self, command: Unsubscribe) -> None:
        self.hub.unsubscribe(self.subscriber, command.symbols)
        self.symbols.difference_update(command.symbols)
        self.subscriber.put_message(protocol.encode_unsubscribed(command.symbols, command.id))
