"""One connected client's session: protocol v1 commands applied to the hub, replies queued.

Transport-agnostic and free of I/O: a transport feeds received text to
:meth:`Session.handle` and writes whatever the subscriber's drain yields. Every bad message
gets an error reply and the session goes on; nothing a client sends can end it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from ticker import protocol
from ticker.errors import ProtocolError
from ticker.hub import Hub
from ticker.protocol import CLOSE_POLICY_VIOLATION, Ping, Subscribe, Unsubscribe
from ticker.ratelimit import OpRateLimiter, Verdict
from ticker.subscriber import Close, Subscriber


class Session:
    """``limiter`` caps how fast commands are applied (none: no cap); ``errors`` counts the
    error replies by code, for /metrics."""

    def __init__(self, hub: Hub, subscriber: Subscriber, max_symbols: int,
                 clock_ms: Callable[[], float], limiter: OpRateLimiter | None = None,
                 errors: Counter[str] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.hub = hub
        self.subscriber = subscriber
        self.symbols: set[str] = set()
        self._max_symbols = max_symbols
        self._clock_ms = clock_ms
        self._limiter = limiter
        self._monotonic = monotonic
        self.errors: Counter[str] = Counter() if errors is None else errors

    def open(self) -> None:
        self.hub.connect(self.subscriber)

    def close(self) -> None:
        self.hub.disconnect(self.subscriber)
        self.symbols.clear()

    def admit(self, raw: str | bytes) -> bool:
        """Whether a message may be applied now under the rate limit; when not, the client has
        been answered (rate_limited) or, if it keeps on, told to go (1008)."""
        return self._limiter is None or self._within_rate(self._limiter, raw)

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
            self._reply_error(error)

    def _within_rate(self, limiter: OpRateLimiter, raw: str | bytes) -> bool:
        verdict = limiter.check(self._monotonic())
        if verdict is Verdict.ALLOW:
            return True
        if verdict is Verdict.DISCONNECT:
            self.subscriber.close(Close(CLOSE_POLICY_VIOLATION,
                                        "too many commands over the rate limit"))
        else:
            self._reply_error(ProtocolError(
                protocol.RATE_LIMITED, f"too many commands: this one was ignored; retry in "
                f"{limiter.retry_after():.2f} s", protocol.request_id_of(raw)))
        return False

    def _reply_error(self, error: ProtocolError) -> None:
        self.errors[error.code] += 1
        self.subscriber.put_message(protocol.encode_error(error.code, error.message,
                                                          error.request_id))

    def _subscribe(self, command: Subscribe) -> None:
        # The count first, known or not: a request over the limit is refused as such, without
        # looking up (or listing back) hundreds of names.
        new = [s for s in command.symbols if s not in self.symbols]
        if len(self.symbols) + len(new) > self._max_symbols:
            raise ProtocolError(
                protocol.TOO_MANY_SYMBOLS,
                f"a connection may subscribe to at most {self._max_symbols} symbols; it has "
                f"{len(self.symbols)} and asked for {len(new)} more; nothing was subscribed",
                command.id)
        unknown = self.hub.unknown(command.symbols)
        known = tuple(s for s in new if s not in unknown)
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
                f"unknown symbol(s): {protocol.name_list(unknown)}{subscribed}", command.id)

    def _unsubscribe(self, command: Unsubscribe) -> None:
        self.hub.unsubscribe(self.subscriber, command.symbols)
        self.symbols.difference_update(command.symbols)
        self.subscriber.put_message(protocol.encode_unsubscribed(command.symbols, command.id))
