"""The hub: per-symbol state (history, snapshot, bars) and fan-out to subscribed connections.

It consumes the feed's events as they come out of the broker and knows nothing of transports:
a connection is represented by its Outbox, to which the hub appends each tick's bytes, encoded
once, without waiting. Subscribing registers the outbox and takes its snapshot (or resume
backlog) in one synchronous step, so no tick can fall between the two.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TypedDict

from ticker.bars import INTERVALS_MS, Bar, BarSeries
from ticker.model import FeedEvent, FeedStart, SymbolInfo, Tick, TickBatch
from ticker.outbox import Close, Outbox
from ticker.protocol import Resume, encode_hello, encode_snapshot, encode_tick

log = logging.getLogger("ticker.hub")


class History:
    """The last ``capacity`` encoded ticks of one symbol, addressed by seq (a ring buffer)."""

    __slots__ = ("_capacity", "_origin", "_ring", "first", "last")

    def __init__(self, capacity: int) -> None:
        self._ring: list[bytes] = []
        self._capacity = capacity
        self._origin = 0  # seq stored at index 0 when the ring (re)started
        self.first = 0  # seq of the oldest tick kept; 0 while empty
        self.last = 0

    def append(self, seq: int, data: bytes) -> None:
        if self.last and seq != self.last + 1:
            log.warning("seq jumped from %d to %d; history restarts there", self.last, seq)
            self._ring.clear()
            self.last = 0
        ring = self._ring
        if not self.last:
            self._origin = self.first = seq
        if len(ring) < self._capacity:
            ring.append(data)
        else:
            ring[(seq - self._origin) % self._capacity] = data
            self.first = seq - self._capacity + 1
        self.last = seq

    def since(self, seq: int) -> list[bytes] | None:
        """Every tick after ``seq``, or None when history no longer (or never) reaches back."""
        if seq > self.last or (self.last and seq < self.first - 1):
            return None
        return self._range(seq + 1)

    def latest(self, count: int) -> list[bytes]:
        return self._range(max(self.first, self.last - count + 1)) if self.last else []

    def _range(self, start: int) -> list[bytes]:
        ring, origin, capacity = self._ring, self._origin, self._capacity
        return [ring[(s - origin) % capacity] for s in range(start, self.last + 1)]


class SymbolSummary(TypedDict):
    symbol: str
    name: str
    sector: str
    price: float | None
    open: float | None
    change: float | None
    change_pct: float | None
    seq: int


class _SymbolState:
    __slots__ = ("bars", "history", "info", "last", "open", "subscribers")

    def __init__(self, info: SymbolInfo, history_size: int, bars_kept: int) -> None:
        self.info = info
        self.history = History(history_size)
        self.bars = {name: BarSeries(ms, bars_kept) for name, ms in INTERVALS_MS.items()}
        self.open: float | None = None
        self.last: Tick | None = None
        self.subscribers: set[Outbox] = set()


@dataclass(frozen=True, slots=True)
class Catchup:
    """What a new subscriber gets before live ticks: a snapshot message, or (after a successful
    resume) the backlog of ticks it missed."""

    symbol: str
    snapshot: bytes | None
    backlog: list[bytes]


class Hub:
    def __init__(self, snapshot_size: int, history_size: int, bars_kept: int) -> None:
        self._snapshot_size = snapshot_size
        self._history_size = history_size
        self._bars_kept = bars_kept
        self.epoch = ""
        self.feed = ""
        self.symbols: tuple[SymbolInfo, ...] = ()
        self._states: dict[str, _SymbolState] = {}
        self._outboxes: set[Outbox] = set()
        self.ticks_ingested = 0

    @property
    def ready(self) -> bool:
        return bool(self.epoch)

    def ingest(self, event: FeedEvent) -> None:
        if isinstance(event, FeedStart):
            self._start(event)
        elif event.epoch == self.epoch:
            self._fan_out(event)
        else:
            log.warning("dropped %d ticks of unknown epoch %s", len(event.ticks), event.epoch)

    def _start(self, start: FeedStart) -> None:
        subscriptions = {symbol: state.subscribers for symbol, state in self._states.items()}
        self.epoch, self.feed, self.symbols = start.epoch, start.feed, start.symbols
        self._states = {
            info.symbol: _SymbolState(info, self._history_size, self._bars_kept)
            for info in start.symbols
        }
        log.info("feed %s started: epoch %s, %d symbols", start.feed, start.epoch,
                 len(start.symbols))
        hello = encode_hello(self.epoch, self.feed, self.symbols)
        for outbox in self._outboxes:
            outbox.put_message(hello)
        # Connections keep their subscriptions across a restart; each is told to drop what it
        # holds for the old epoch with an empty snapshot marked reset.
        for symbol, subscribers in subscriptions.items():
            state = self._states.get(symbol)
            if state is None:
                continue
            state.subscribers = subscribers
            reset = encode_snapshot(symbol, self.epoch, (), reset=True)
            for outbox in subscribers:
                outbox.put_message(reset)

    def _fan_out(self, batch: TickBatch) -> None:
        states = self._states
        for tick in batch.ticks:
            state = states.get(tick.symbol)
            if state is None:
                continue
            data = encode_tick(tick)
            state.history.append(tick.seq, data)
            for series in state.bars.values():
                series.add(tick.ts, tick.price, tick.size)
            if state.open is None:
                state.open = tick.price
            state.last = tick
            for outbox in state.subscribers:
                outbox.put_tick(data)
        self.ticks_ingested += len(batch.ticks)

    # -- connections ---------------------------------------------------------------------------

    def connect(self, outbox: Outbox) -> None:
        self._outboxes.add(outbox)
        outbox.put_message(encode_hello(self.epoch, self.feed, self.symbols))

    def disconnect(self, outbox: Outbox) -> None:
        self._outboxes.discard(outbox)
        for state in self._states.values():
            state.subscribers.discard(outbox)

    def unknown(self, symbols: tuple[str, ...]) -> list[str]:
        return [symbol for symbol in symbols if symbol not in self._states]

    def subscribe(self, outbox: Outbox, symbols: tuple[str, ...],
                  resume: Resume | None = None) -> list[Catchup]:
        """Register ``outbox`` for known ``symbols`` and return what it must get first."""
        catchups = []
        for symbol in symbols:
            state = self._states[symbol]
            state.subscribers.add(outbox)
            seq = resume.seqs.get(symbol) if resume is not None else None
            if seq is not None and resume is not None and resume.epoch == self.epoch:
                backlog = state.history.since(seq)
                if backlog is not None:
                    catchups.append(Catchup(symbol, None, backlog))
                    continue
            ticks = state.history.latest(self._snapshot_size)
            snapshot = encode_snapshot(symbol, self.epoch, ticks, reset=seq is not None)
            catchups.append(Catchup(symbol, snapshot, []))
        return catchups

    def unsubscribe(self, outbox: Outbox, symbols: tuple[str, ...]) -> None:
        for symbol in symbols:
            state = self._states.get(symbol)
            if state is not None:
                state.subscribers.discard(outbox)

    def close_all(self, request: Close) -> None:
        for outbox in self._outboxes:
            outbox.close(request)

    @property
    def connections(self) -> int:
        return len(self._outboxes)

    # -- queries -------------------------------------------------------------------------------

    def summaries(self) -> list[SymbolSummary]:
        return [_summary(state) for state in self._states.values()]

    def bars(self, symbol: str, interval: str, limit: int) -> list[Bar]:
        """Raises KeyError for an unknown symbol or interval."""
        return self._states[symbol].bars[interval].last(limit)

    def has_symbol(self, symbol: str) -> bool:
        return symbol in self._states


def _summary(state: _SymbolState) -> SymbolSummary:
    price = state.last.price if state.last else None
    change = change_pct = None
    if price is not None and state.open:
        change = round(price - state.open, 2)
        change_pct = round(100.0 * (price - state.open) / state.open, 3)
    return SymbolSummary(symbol=state.info.symbol, name=state.info.name, sector=state.info.sector,
                         price=price, open=state.open, change=change, change_pct=change_pct,
                         seq=state.history.last)
