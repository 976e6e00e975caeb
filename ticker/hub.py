"""The hub: per-symbol state (history, snapshot, bars) and fan-out to subscribed connections.

It consumes the feed's events as they come out of the broker and knows nothing of transports: a
connection is a Subscriber, holding a cursor per symbol. The hub encodes each tick once, appends
it to its symbol's history and wakes that symbol's subscribers; it never waits on anyone.
Subscribing takes the snapshot and places the cursor in one synchronous step, so no tick can fall
between the two.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypedDict

from ticker.bars import DAY_MS, INTERVALS_MS, MINUTE_MS, Bar, BarSeries, TradeBar
from ticker.history import History
from ticker.model import FeedEvent, FeedStart, SymbolInfo, Tick, TickBatch
from ticker.protocol import Resume, encode_hello, encode_snapshot, encode_tick
from ticker.subscriber import Close, Cursor, Subscriber

log = logging.getLogger("ticker.hub")

compiled_wake_idle: Callable[[dict[Subscriber, Cursor]], int] | None
try:
    from ticker._wake import wake_idle as compiled_wake_idle
except ImportError:  # not built (no C compiler where it was installed): hatch_build.py
    compiled_wake_idle = None


def wake_idle_in_python(subscribers: dict[Subscriber, Cursor]) -> int:
    """Wake every subscriber not already pending (ticker/_wake.c does this where built)."""
    woken = 0
    for subscriber in subscribers:
        if not subscriber.pending:
            subscriber.wake()
            woken += 1
    return woken


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
    __slots__ = ("bars", "daily", "eager", "folded_until", "history", "info", "last", "open",
                 "subscribers")

    def __init__(self, info: SymbolInfo, history_size: int, bars_kept: int) -> None:
        self.info = info
        self.history = History(history_size)
        self.bars = {name: BarSeries(ms, bars_kept) for name, ms in INTERVALS_MS.items()}
        # The day so far (UTC days), made of closed minute bars only, so it always equals the
        # sum of the minute bars sent; folded_until is the start of the last minute folded in.
        self.daily = BarSeries(DAY_MS, 1)
        self.folded_until = 0.0
        self.open: float | None = info.open
        self.last: Tick | None = None
        # Each subscriber's cursor on this symbol, and those to wake on each tick: a cursor
        # whose conflation timer is armed (max_rate) leaves ``eager`` until its timer fires
        # (Cursor.arm), so a tick costs O(eager subscribers), not O(subscribers).
        self.subscribers: dict[Subscriber, Cursor] = {}
        self.eager: dict[Subscriber, Cursor] = {}

    def add(self, subscriber: Subscriber, cursor: Cursor) -> None:
        old = self.subscribers.get(subscriber)
        if old is not None:
            old.unwatch()
        self.subscribers[subscriber] = cursor
        cursor.watch(self.eager, subscriber)

    def remove(self, subscriber: Subscriber) -> None:
        cursor = self.subscribers.pop(subscriber, None)
        if cursor is not None:
            cursor.unwatch()


class Hub:
    def __init__(self, snapshot_size: int, history_size: int, bars_kept: int) -> None:
        self._snapshot_size = snapshot_size
        self._history_size = history_size
        self._bars_kept = bars_kept
        self.epoch = ""
        self.feed = ""
        self.symbols: tuple[SymbolInfo, ...] = ()
        self._states: dict[str, _SymbolState] = {}
        self._subscribers: set[Subscriber] = set()
        # For the janitor (ticker/transport/janitor.py), so that it looks only at what needs it:
        # connections with a send in progress (Subscriber.begin_send), and connections watched
        # for an idle timeout that may not have subscribed yet, in the order they opened.
        self.sending: set[Subscriber] = set()
        self.awaiting_subscription: dict[Subscriber, None] = {}
        self.ticks_ingested = 0
        # The market clock: the start of the minute the newest tick is in. Minute bars close
        # when it moves on (by the feed's time, so a replay at any speed closes them on cue).
        self.market_minute = 0.0
        self._minute_watchers: set[Subscriber] = set()
        self.last_tick_at = 0.0  # time.monotonic() of the newest batch: is the feed alive?

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
        self.market_minute = 0.0
        self._states = {
            info.symbol: _SymbolState(info, self._history_size, self._bars_kept)
            for info in start.symbols
        }
        log.info("feed %s started: epoch %s, %d symbols", start.feed, start.epoch,
                 len(start.symbols))
        hello = encode_hello(self.epoch, self.feed, self.symbols)
        for subscriber in self._subscribers:
            # The last ticks of the run that ended go out first, not dropped with its cursors.
            subscriber.put_message(hello, after_ticks=True)
        # Connections keep their subscriptions across a restart; each is told to drop what it
        # holds for the old epoch by an empty snapshot marked reset, then follows the new run.
        for symbol, subscribers in subscriptions.items():
            state = self._states.get(symbol)
            for subscriber, cursor in subscribers.items():
                if state is None:
                    subscriber.unfollow(symbol)
                    continue
                subscriber.put_message(encode_snapshot(symbol, self.epoch, (), True, 0))
                state.add(subscriber, subscriber.follow(symbol, state.history, 0,
                                                        cursor.max_rate))

    def _fan_out(self, batch: TickBatch) -> None:
        states = self._states
        touched: dict[str, _SymbolState] = {}
        place = self.ticks_ingested  # each tick's place in the feed, across symbols
        for tick in batch.ticks:
            state = states.get(tick.symbol)
            if state is None:
                continue
            if state.history.last and tick.seq != state.history.last + 1:
                self._restart_symbol(state, tick.seq)
            place += 1
            state.history.append(tick.seq, encode_tick(tick), place)
            for series in state.bars.values():
                series.add(tick.ts, tick.price, tick.size)
            if state.open is None:
                state.open = tick.price
            state.last = tick
            touched[tick.symbol] = state
        wake_idle = compiled_wake_idle or wake_idle_in_python
        for state in touched.values():
            wake_idle(state.eager)
        self.ticks_ingested += len(batch.ticks)
        self.last_tick_at = time.monotonic()
        if batch.ticks:  # ordered by ts: the last tick is the newest
            newest = batch.ticks[-1].ts
            if newest - self.market_minute >= MINUTE_MS:
                self._close_minutes(newest - newest % MINUTE_MS)

    def _close_minutes(self, minute: float) -> None:
        """The market clock reached ``minute``: every minute bar before it is final. Once a
        minute, so a pass over all symbols costs little."""
        self.market_minute = minute
        for state in self._states.values():
            for bar in state.bars["1m"].closed(state.folded_until, minute):
                state.daily.merge(bar)
                state.folded_until = bar.start
        for subscriber in self._minute_watchers:
            subscriber.wake()

    def _restart_symbol(self, state: _SymbolState, seq: int) -> None:
        """A seq gap (ticks lost upstream, e.g. while a broker was away): the symbol's history
        starts over and its subscribers are told to start over too, rather than miss ticks
        silently."""
        symbol = state.info.symbol
        log.warning("%s: seq jumped from %d to %d; subscribers get a reset snapshot", symbol,
                    state.history.last, seq)
        state.history = History(self._history_size)
        reset = encode_snapshot(symbol, self.epoch, (), True, seq - 1)
        for subscriber, cursor in list(state.subscribers.items()):
            subscriber.put_message(reset, after_ticks=True)
            state.add(subscriber, subscriber.follow(symbol, state.history, seq - 1,
                                                    cursor.max_rate))

    # -- connections ---------------------------------------------------------------------------

    def connect(self, subscriber: Subscriber, hello: bool = True) -> None:
        """Register a connection (so shutdown reaches it), greeting it with a hello."""
        self._subscribers.add(subscriber)
        subscriber.sending = self.sending
        if subscriber.opened_at and not subscriber.subscribed_ever:
            self.awaiting_subscription[subscriber] = None
        if hello:
            subscriber.put_message(encode_hello(self.epoch, self.feed, self.symbols))

    def disconnect(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        self._minute_watchers.discard(subscriber)
        self.sending.discard(subscriber)
        subscriber.sending = None
        self.awaiting_subscription.pop(subscriber, None)
        # With the symbols a close let go of (no tick goes out after one): the hub still has them.
        self.unsubscribe(subscriber, (*subscriber.symbols, *subscriber.closed_symbols))

    def unknown(self, symbols: tuple[str, ...]) -> list[str]:
        return [symbol for symbol in symbols if symbol not in self._states]

    def subscribe(self, subscriber: Subscriber, symbols: tuple[str, ...],
                  resume: Resume | None = None,
                  max_rate: float = 0.0) -> list[tuple[str, bytes | None]]:
        """Start delivering known ``symbols``; returns, per symbol, the snapshot message the
        subscriber must get first, or None where the resume is served from history instead."""
        first_messages: list[tuple[str, bytes | None]] = []
        for symbol in symbols:
            state = self._states[symbol]
            history = state.history
            seq = resume.seqs.get(symbol) if resume is not None else None
            if seq is not None and resume is not None and resume.epoch == self.epoch \
                    and history.reaches(seq):
                state.add(subscriber, subscriber.follow(symbol, history, seq, max_rate))
                first_messages.append((symbol, None))
                continue
            ticks = history.latest(self._snapshot_size)
            first_messages.append(
                (symbol, encode_snapshot(symbol, self.epoch, ticks, seq is not None,
                                         history.last)))
            state.add(subscriber, subscriber.follow(symbol, history, history.last, max_rate))
        return first_messages

    def follow_live(self, subscriber: Subscriber, symbols: tuple[str, ...]) -> None:
        """Deliver the known ``symbols``' ticks from the next one on, with no snapshot: for
        protocols that have none (Alpaca's)."""
        for symbol in symbols:
            state = self._states.get(symbol)
            if state is not None:
                state.add(subscriber, subscriber.follow(symbol, state.history,
                                                        state.history.last))

    def watch_minutes(self, subscriber: Subscriber, watch: bool = True) -> None:
        """Wake ``subscriber`` whenever the market clock closes a minute (for minute bars)."""
        if watch:
            self._minute_watchers.add(subscriber)
        else:
            self._minute_watchers.discard(subscriber)

    def unsubscribe(self, subscriber: Subscriber, symbols: tuple[str, ...]) -> None:
        for symbol in symbols:
            subscriber.unfollow(symbol)
            state = self._states.get(symbol)
            if state is not None:
                state.remove(subscriber)

    def broadcast(self, message: bytes, after_ticks: bool = False) -> None:
        """Send one message to every connection; with ``after_ticks``, after the ticks already
        due to it (see Subscriber.put_message)."""
        for subscriber in self._subscribers:
            subscriber.put_message(message, after_ticks=after_ticks)

    def close_all(self, request: Close) -> None:
        for subscriber in self._subscribers:
            subscriber.close(request)

    def subscribers(self) -> list[Subscriber]:
        return list(self._subscribers)

    @property
    def connections(self) -> int:
        return len(self._subscribers)

    def subscription_count(self) -> int:
        return sum(len(state.subscribers) for state in self._states.values())

    # -- queries -------------------------------------------------------------------------------

    def summaries(self) -> list[SymbolSummary]:
        return [_summary(state) for state in self._states.values()]

    def bars(self, symbol: str, interval: str, limit: int) -> list[Bar]:
        """Raises KeyError for an unknown symbol or interval."""
        return self._states[symbol].bars[interval].last(limit)

    def closed_minute_bars(self, symbol: str, after_start: float) -> list[TradeBar]:
        """The symbol's minute bars that start after ``after_start`` and that the market clock
        has closed, oldest first; none for an unknown symbol."""
        state = self._states.get(symbol)
        if state is None:
            return []
        return state.bars["1m"].closed(after_start, self.market_minute)

    def daily_bar(self, symbol: str) -> TradeBar | None:
        """The symbol's day so far (UTC), up to the last closed minute."""
        state = self._states.get(symbol)
        return state.daily.newest() if state is not None else None

    def last_seq(self, symbol: str) -> int:
        """The seq of the symbol's newest tick (the bars include it)."""
        return self._states[symbol].history.last

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
