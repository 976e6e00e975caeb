"""`ticker:ws://HOST:PORT/ws`: another ticker server as the feed, through :mod:`ticker.client`.

An edge node relaying a central one without Redis. It passes the upstream's epoch and seqs on
unchanged, so the relay is transparent: its clients resume with the positions the upstream gave,
a relay that restarts picks up the upstream's run where its clients left it (the last
``hub.snapshot_size`` ticks of each symbol are fetched again), and a client may even move between
the upstream and its relays. The client library resumes after a lost upstream connection; what
the upstream cannot resume comes as a Reset: a new epoch upstream starts a new run here, a symbol
that lost ticks upstream jumps in seq, which the hub turns into that symbol's reset.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from ticker.client import Backoff, Reset, Snapshot, Stream, StreamClosed
from ticker.client.transports import Closed, endpoints, get_json
from ticker.errors import ConfigError
from ticker.model import SymbolInfo, Tick, is_sane

log = logging.getLogger("ticker.upstream")


class RelayFeed:
    kind = "relay"

    def __init__(self, url: str, token: str | None, reconnect_initial: float = 0.5,
                 reconnect_max: float = 20.0, on_skip: Callable[[], None] | None = None) -> None:
        self.url = url
        self._token = token
        self._backoff = Backoff(reconnect_initial, reconnect_max)
        self._on_skip = on_skip
        self.label = f"ticker ({redacted(url)})"  # shown in logs and /readyz: no token
        self._symbols: tuple[SymbolInfo, ...] = ()
        self.upstream_epoch: str | None = None  # the run's epoch: the upstream's (ticker.pump)
        self._stream: Stream | None = None
        self.skipped = 0
        self._pending: list[Tick] | None = None  # the first ticks of the next run
        self._pending_epoch = ""

    @staticmethod
    def check_url(url: str) -> None:
        try:
            endpoints(url)
        except ValueError as error:
            raise ConfigError("feed.source", f"ticker:URL needs a server URL: {error}") from None

    @property
    def symbols(self) -> Sequence[SymbolInfo]:
        return self._symbols

    @property
    def problem(self) -> str | None:
        if self._stream is None:
            return f"{self.label}: not connected yet"
        return None if self._stream.problem is None else f"{self.label}: {self._stream.problem}"

    def batches(self) -> AsyncIterator[list[Tick]]:
        raise TypeError("a relay is read through runs(): each run is one upstream epoch")

    async def runs(self) -> AsyncIterator[AsyncIterator[list[Tick]]]:
        stream = Stream(self.url, None, token=self._token, snapshot=True, backoff=self._backoff,
                        on_skip=self._on_skip)
        self._stream = stream
        async with stream:
            events = stream.__aiter__()
            try:
                first = await self._first_ticks(events)
            except StreamClosed as closed:
                log.error("%s: %s; the relay stops", self.label, closed)
                return
            while True:
                self.upstream_epoch = stream.epoch
                self._symbols = await self._describe(stream)
                yield self._run(events, first)
                if self._pending is None:
                    return  # the upstream refused us for good
                first, self._pending = self._pending, None

    async def _first_ticks(self, events: Stream) -> list[Tick]:
        """Every symbol's snapshot, gathered into the run's first batch: one batch lands in the
        hub with the run's start, so no client resumes against an empty history."""
        waiting = None
        ticks: list[Tick] = []
        while True:
            event = await anext(events)
            if waiting is None:
                waiting = set(events.symbols)
            if isinstance(event, Snapshot | Reset):
                ticks.extend(self._sane(event.ticks))
                waiting.discard(event.symbol)
                if not waiting:
                    return sorted(ticks, key=_ts)
            else:
                ticks.extend(self._sane((event,)))
                return sorted(ticks, key=_ts)

    async def _run(self, events: Stream, first: list[Tick]) -> AsyncIterator[list[Tick]]:
        epoch = self.upstream_epoch
        if first:
            yield first
        try:
            async for event in events:
                if isinstance(event, Tick):
                    batch = self._sane((event,))
                elif event.epoch != epoch:
                    # A new run upstream: this run ends; the next starts with the snapshots.
                    self._pending = await self._gather_reset(events, event)
                    return
                else:
                    batch = self._sane(event.ticks)  # lost upstream: the seq jump resets it
                if batch:
                    yield batch
        except StreamClosed as closed:
            log.error("%s: %s; the relay stops", self.label, closed)

    async def _gather_reset(self, events: Stream, reset: Reset | Snapshot) -> list[Tick]:
        waiting = set(events.symbols) - {reset.symbol}
        ticks = list(self._sane(reset.ticks))
        while waiting:
            event = await anext(events)
            if isinstance(event, Reset | Snapshot):
                ticks.extend(self._sane(event.ticks))
                waiting.discard(event.symbol)
            else:
                ticks.extend(self._sane((event,)))
                break
        return sorted(ticks, key=_ts)

    def _sane(self, ticks: Sequence[Tick]) -> list[Tick]:
        kept = [tick for tick in ticks if is_sane(tick)]
        if len(kept) != len(ticks):
            self.skipped += len(ticks) - len(kept)
            if self._on_skip is not None:
                for _ in range(len(ticks) - len(kept)):
                    self._on_skip()
            log.warning("%s: skipped %d impossible ticks", self.label, len(ticks) - len(kept))
        return kept

    async def _describe(self, stream: Stream) -> tuple[SymbolInfo, ...]:
        """Names, sectors and reference prices from the upstream's /api/symbols; just the names
        of its hello if that cannot be read."""
        base = endpoints(self.url)[1].removesuffix("/sse")
        try:
            rows: Any = await get_json(f"{base}/api/symbols", self._token)
            described = {row["symbol"]: SymbolInfo(str(row["symbol"]), str(row.get("name") or ""),
                                                   str(row.get("sector") or ""),
                                                   _price(row.get("open")))
                         for row in rows}
        except (OSError, TimeoutError, Closed, ValueError, KeyError, TypeError) as error:
            log.warning("%s: no symbol details (%s); names only", self.label, error)
            described = {}
        return tuple(described.get(symbol, SymbolInfo(symbol)) for symbol in stream.available)


def redacted(url: str) -> str:
    """``url`` without its query, where a ``?token=`` would be."""
    return url.split("?", 1)[0]


def _price(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _ts(tick: Tick) -> float:
    return tick.ts
