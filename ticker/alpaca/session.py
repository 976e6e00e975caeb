"""One Alpaca-protocol connection's state, with no I/O: authentication, subscriptions, limits.

The lifecycle is an explicit state machine::

    CONNECTED --auth ok--> AUTHENTICATED
        |                       |
        +--auth timeout--> CLOSED <--close()--+

What each error does to it mirrors Alpaca: 402 and 406 leave the connection unauthenticated but
open (the Go SDK retries auth on the same socket after 406), 404 (auth timeout) ends it, and
400, 401, 403, 405 and 410 change nothing. A failed subscription (405) leaves every channel as
it was.
"""

from __future__ import annotations

import enum
import hmac
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping

from ticker.alpaca import protocol
from ticker.alpaca.protocol import (
    CHANNELS,
    WILDCARD,
    Auth,
    Command,
    Message,
    Subscribe,
)
from ticker.errors import AlpacaError

# Channels whose data is made of ticks (the rest are made of bars, or never sent).
TICK_CHANNELS = ("trades", "quotes")
BAR_CHANNELS = ("bars", "dailyBars", "updatedBars")


class State(enum.Enum):
    CONNECTED = "connected"
    AUTHENTICATED = "authenticated"
    CLOSED = "closed"


class Credentials:
    """The configured "KEY:SECRET" pairs; none configured means any key and secret pass."""

    def __init__(self, pairs: Iterable[str] = ()) -> None:
        # Checked by the config (alpaca.keys): a secret may contain ":", a key may not.
        self._secrets = dict(pair.split(":", 1) for pair in pairs)

    def accept(self, key: str, secret: str) -> bool:
        if not self._secrets:
            return True
        expected = self._secrets.get(key)
        # compare_digest: how long the comparison takes says nothing about the secret.
        return expected is not None and hmac.compare_digest(expected.encode(), secret.encode())


class ConnectionLedger:
    """Authenticated connections per key, shared by the connections of one server process
    (Alpaca allows one per key on most plans). ``limit`` 0 means no limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def acquire(self, key: str) -> bool:
        if self.limit and self._open[key] >= self.limit:
            return False
        self._open[key] += 1
        return True

    def release(self, key: str) -> None:
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]

    def count(self, key: str) -> int:
        return self._open[key]


Universe = Callable[[], Collection[str]]
"""The symbols the market trades right now (what "*" stands for)."""


class Session:
    def __init__(self, credentials: Credentials, ledger: ConnectionLedger, max_symbols: int,
                 universe: Universe) -> None:
        self.state = State.CONNECTED
        self.key: str | None = None
        # Per channel, symbols in the order they were subscribed (a dict as an ordered set).
        self.channels: dict[str, dict[str, None]] = {channel: {} for channel in CHANNELS}
        self._credentials = credentials
        self._ledger = ledger
        self._max_symbols = max_symbols
        self._universe = universe

    def handle(self, command: Command) -> Message:
        """Apply one command; the reply to send, or AlpacaError with the error to send."""
        if self.state is State.CLOSED:
            raise AlpacaError(protocol.INTERNAL_ERROR, protocol.ERROR_MESSAGES[500],
                              "the session is closed")
        if isinstance(command, Auth):
            return self._authenticate(command)
        if self.state is not State.AUTHENTICATED:
            raise _error(protocol.NOT_AUTHENTICATED)
        if isinstance(command, Subscribe):
            self._subscribe(command.channels)
        else:
            for channel, symbols in command.channels.items():
                for symbol in symbols:
                    self.channels[channel].pop(symbol, None)
        return protocol.subscription({channel: list(symbols)
                                      for channel, symbols in self.channels.items()})

    def _authenticate(self, auth: Auth) -> Message:
        if self.state is State.AUTHENTICATED:
            raise _error(protocol.ALREADY_AUTHENTICATED)
        if not self._credentials.accept(auth.key, auth.secret):
            raise _error(protocol.AUTH_FAILED)
        if not self._ledger.acquire(auth.key):
            raise _error(protocol.CONNECTION_LIMIT_EXCEEDED)
        self.key = auth.key
        self.state = State.AUTHENTICATED
        return protocol.AUTHENTICATED

    def _subscribe(self, additions: Mapping[str, tuple[str, ...]]) -> None:
        merged = {channel: dict(symbols) for channel, symbols in self.channels.items()}
        for channel, symbols in additions.items():
            merged[channel].update(dict.fromkeys(symbols))
        wanted = len(_expand(merged["trades"], self._universe)
                     | _expand(merged["quotes"], self._universe))
        if wanted > self._max_symbols:
            raise AlpacaError(protocol.SYMBOL_LIMIT_EXCEEDED,
                              protocol.ERROR_MESSAGES[protocol.SYMBOL_LIMIT_EXCEEDED],
                              f"trades and quotes would cover {wanted} symbols; the limit is "
                              f"{self._max_symbols}")
        self.channels = merged

    def time_out(self) -> Message | None:
        """The auth deadline passed: the 404 to send before closing, or None if authenticated
        in time."""
        if self.state is not State.CONNECTED:
            return None
        self.state = State.CLOSED
        return protocol.error(protocol.AUTH_TIMEOUT)

    def close(self) -> None:
        """The connection ended: its key's connection slot is free again."""
        if self.state is State.AUTHENTICATED and self.key is not None:
            self._ledger.release(self.key)
        self.state = State.CLOSED

    # -- what to deliver -----------------------------------------------------------------------

    def wants(self, channel: str, symbol: str) -> bool:
        symbols = self.channels[channel]
        return symbol in symbols or WILDCARD in symbols

    def followed(self) -> set[str]:
        """The symbols whose ticks this connection needs (trades and quotes, "*" expanded)."""
        return (_expand(self.channels["trades"], self._universe)
                | _expand(self.channels["quotes"], self._universe))

    def bar_symbols(self) -> set[str]:
        """The symbols any bar channel covers, "*" expanded."""
        found: set[str] = set()
        for channel in BAR_CHANNELS:
            found |= _expand(self.channels[channel], self._universe)
        return found


def _expand(symbols: Collection[str], universe: Universe) -> set[str]:
    named = set(symbols)
    if WILDCARD in named:
        named.discard(WILDCARD)
        named.update(universe())
    return named


def _error(code: int) -> AlpacaError:
    return AlpacaError(code, protocol.ERROR_MESSAGES[code])
