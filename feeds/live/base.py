"""A feed from a live upstream (an exchange, a data vendor): the part every adapter shares.

An adapter (:class:`Upstream`) knows one upstream's protocol: it opens one connection, does the
handshake and turns the upstream's messages into :class:`Trade` lists, and it says where it cannot
vouch for continuity (:class:`Gap`). :class:`LiveFeed` does the rest, the same for all of them:
reconnects with capped, jittered backoff, numbers each symbol's trades (our own seqs, 1, 2, 3...),
starts a new run (a new epoch, an explicit reset for clients) when every symbol lost trades, skips
one seq of a symbol that alone lost trades (the hub then resets that symbol for its clients), and
reports what is wrong while the upstream is away (``problem``, shown by /readyz).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from websockets.exceptions import WebSocketException

from ticker.client.backoff import Backoff
from ticker.model import SymbolInfo, Tick

log = logging.getLogger("ticker.upstream")


@dataclass(frozen=True, slots=True)
class Trade:
    """One upstream trade, before it gets its seq. ``ts`` in Unix milliseconds."""

    symbol: str
    ts: float
    price: float
    size: float
    bid: float
    ask: float


@dataclass(frozen=True, slots=True)
class Connected:
    """A session is up (handshake done, subscriptions confirmed); ``symbols`` as the upstream
    describes them (name, sector, reference price where it has them)."""

    symbols: tuple[SymbolInfo, ...]


@dataclass(frozen=True, slots=True)
class Gap:
    """Trades of ``symbols`` were lost and cannot be recovered; ``None``: of every symbol."""

    symbols: tuple[str, ...] | None
    reason: str


UpstreamEvent = Connected | Gap | list[Trade]


class UpstreamError(Exception):
    """The session cannot go on (a protocol error, silence); the feed reconnects."""


class UpstreamRefused(UpstreamError):
    """The upstream refused us (bad credentials, unknown symbol, too many connections): trying
    again soon would be refused again, so the feed waits the backoff's cap between attempts."""


class Skips:
    """Upstream messages that were skipped because they could not be used: counted, logged
    (the first ten, then one in a thousand), never passed on."""

    def __init__(self, label: str, on_skip: Callable[[], None] | None = None) -> None:
        self.label = label
        self.count = 0
        self._on_skip = on_skip

    def skip(self, why: str, raw: str | bytes = "") -> None:
        self.count += 1
        if self._on_skip is not None:
            self._on_skip()
        if self.count <= 10 or self.count % 1000 == 0:
            shown = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            log.warning("%s: skipped a message (%d so far): %s%s", self.label, self.count, why,
                        f": {shown[:200]!r}" if shown else "")


class Upstream(Protocol):
    kind: str  # what hello's "feed" says: "coinbase", "alpaca-iex", ...
    label: str  # who it is, for logs and /readyz: "Coinbase (wss://ws-feed.exchange.coinbase.com)"

    @property
    def symbols(self) -> Sequence[SymbolInfo]:
        """The symbols asked for, known before any connection."""
        ...

    def session(self, skips: Skips) -> AsyncGenerator[UpstreamEvent, None]:
        """One connection: connect, handshake, yield :class:`Connected` (once, first: nothing
        comes before it), then the trades (and any :class:`Gap`, such as the one a reconnect
        leaves) until the connection ends; raise :class:`UpstreamError`, OSError or a websockets
        error when it fails."""
        ...


class LiveFeed:
    """A Feed (feeds.base) over an :class:`Upstream`, with the runs a replay also has."""

    def __init__(self, upstream: Upstream, backoff: Backoff | None = None,
                 on_skip: Callable[[], None] | None = None) -> None:
        self.upstream = upstream
        self.kind = upstream.kind
        self._symbols: tuple[SymbolInfo, ...] = tuple(upstream.symbols)
        self._backoff = backoff or Backoff()
        self.skips = Skips(upstream.label, on_skip)
        self.problem: str | None = f"{upstream.label}: not connected yet"
        self.away_since: float | None = time.monotonic()
        self.sessions = 0  # connections that got as far as Connected

    @property
    def symbols(self) -> Sequence[SymbolInfo]:
        return self._symbols

    def batches(self) -> AsyncIterator[list[Tick]]:
        raise TypeError("a live feed is read through runs(): each run is one epoch")

    async def runs(self) -> AsyncGenerator[AsyncIterator[list[Tick]], None]:
        """The first run starts once the upstream is connected; a :class:`Gap` of every symbol
        ends a run and starts the next."""
        events = self._events()
        try:
            async for event in events:
                if isinstance(event, Connected):
                    self._symbols = event.symbols
                    break
            while True:
                yield self._run(events)
        finally:
            await events.aclose()

    async def _run(self, events: AsyncIterator[UpstreamEvent]) -> AsyncIterator[list[Tick]]:
        known = {info.symbol for info in self._symbols}
        seqs: dict[str, int] = {}
        async for event in events:
            if isinstance(event, Connected):
                changed = {info.symbol for info in event.symbols} != known
                self._symbols = event.symbols  # names learnt later serve the next run
                if changed:
                    log.info("%s: the symbols changed; a new run starts", self.upstream.label)
                    return
            elif isinstance(event, Gap):
                if event.symbols is None:
                    log.warning("%s: %s; every symbol starts over (a new epoch)",
                                self.upstream.label, event.reason)
                    return
                for symbol in event.symbols:
                    if seqs.get(symbol):
                        # One seq left out: the hub sees the jump and resets the symbol for its
                        # clients, as it does for any gap upstream of it.
                        seqs[symbol] += 1
                        log.warning("%s: %s: %s starts over", self.upstream.label,
                                    event.reason, symbol)
            else:
                batch = []
                for trade in sorted(event, key=_ts):
                    if trade.symbol not in known:
                        self.skips.skip(f"a trade of {trade.symbol!r}, which was not asked for")
                        continue
                    seq = seqs[trade.symbol] = seqs.get(trade.symbol, 0) + 1
                    batch.append(Tick(trade.symbol, seq, trade.ts, trade.price, trade.size,
                                      trade.bid, trade.ask))
                if batch:
                    yield batch

    async def _events(self) -> AsyncGenerator[UpstreamEvent, None]:
        """Every session's events, one session after another, for ever."""
        label = self.upstream.label
        while True:
            refused = False
            try:
                # Closed with the loop, not left to the garbage collector: its socket goes too.
                async with contextlib.aclosing(self.upstream.session(self.skips)) as session:
                    async for event in session:
                        if isinstance(event, Connected):
                            self.sessions += 1
                            self.problem = self.away_since = None
                            log.info("%s: connected", label)
                        elif isinstance(event, list) and event:
                            # Only a session that delivers is a working one: an upstream that
                            # accepts and then drops us at once stays on the backoff.
                            self._backoff.reset()
                        yield event
                reason = "the upstream closed the connection"
            except UpstreamRefused as error:
                reason, refused = f"refused: {error}", True
            except (UpstreamError, OSError, TimeoutError, WebSocketException) as error:
                reason = describe(error)
            if self.away_since is None:
                self.away_since = time.monotonic()
            self.problem = f"{label}: {reason}"
            delay = self._backoff.cap if refused else self._backoff.next_delay()
            log.warning("%s: %s; reconnecting in %.1f s", label, reason, delay)
            await asyncio.sleep(delay)


def describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if isinstance(error, UpstreamError) else f"{type(error).__name__}: {text}"


def _ts(trade: Trade) -> float:
    return trade.ts
