"""A connection as the hub sees it: a cursor into each subscribed symbol's history, plus replies.

The fan-out never copies a tick into per-client queues: the hub appends each tick, encoded once,
to its symbol's history and only flags the subscribers of that symbol. The connection's writer
then takes everything after its cursors in one go (list slices of shared bytes, joined into as
few frames as possible). So the work per tick and client is done in C, memory per connection
does not grow with its backlog, and resuming after a reconnect is just placing the cursor.

A client that falls more than ``max_lag`` ticks behind on a symbol is closed as a slow consumer
while its position is still in history, so it can reconnect and resume without loss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ticker.feed_order import Run, in_feed_order
from ticker.history import History
from ticker.protocol import CLOSE_SLOW_CONSUMER, TICKS_PREFIX, TICKS_SUFFIX, text_frame_header
from ticker.stats import TransportStats


class Pinger(Protocol):
    """What the janitor's keep-alive needs of a connection (ticker/transport/keepalive.py)."""

    sent_at: float

    @property
    def awaiting_pong(self) -> bool: ...

    def usable(self) -> bool: ...

    def ping(self, now: float) -> None: ...

    def fail(self) -> None: ...

TakeFrames = Callable[[dict[str, "Cursor"], int, int, bytes, bytes, bool],
                      "tuple[list[bytes], int, bytes | None] | None"]
SendFrames = Callable[[dict[str, "Cursor"], int, int, bytes, bytes, int],
                      "tuple[int, bytes | None, int, int, bytes | None] | None"]
compiled_take_frames: TakeFrames | None
compiled_send_frames: SendFrames | None
try:
    from ticker._frames import send_frames as compiled_send_frames
    from ticker._frames import take_frames as compiled_take_frames
except ImportError:  # not built (no C compiler where it was installed): hatch_build.py
    compiled_take_frames = compiled_send_frames = None


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


class Cursor:
    __slots__ = ("_eager", "_owner", "armed", "fresh", "history", "interval", "next_due", "seq")

    def __init__(self, history: History, seq: int, interval: float) -> None:
        self.history = history
        self.seq = seq  # the last seq this connection has been given
        self.fresh = True  # placed but not yet drained: its backlog is not lag
        self.interval = interval  # seconds between conflated updates; 0 = every tick
        self.next_due = 0.0  # loop time of the next conflated update
        self.armed = False  # a wake-up is scheduled for next_due: the hub need not wake it
        # The hub's subscribers to wake on each of this symbol's ticks, and whose cursor this is:
        # in it while not armed (watch).
        self._eager: dict[Subscriber, Cursor] | None = None
        self._owner: Subscriber | None = None

    def watch(self, eager: dict[Subscriber, Cursor], owner: Subscriber) -> None:
        self._eager, self._owner = eager, owner
        if not self.armed:
            eager[owner] = self

    def unwatch(self) -> None:
        self._leave()
        self._eager = self._owner = None

    def arm(self) -> None:
        """Its timer will wake the subscriber when it is due: no wake-up per tick until then."""
        self.armed = True
        self._leave()

    def _leave(self) -> None:
        eager, owner = self._eager, self._owner
        if eager is not None and owner is not None and eager.get(owner) is self:
            del eager[owner]

    def disarm(self) -> None:
        self.armed = False
        if self._eager is not None and self._owner is not None:
            self._eager[self._owner] = self

    @property
    def max_rate(self) -> float:
        return 1.0 / self.interval if self.interval else 0.0


class Subscriber:
    # A plain list and Future rather than deque and asyncio.Event: each of those allocates about
    # 700 bytes up front, and 10,000 idle connections should stay small.
    __slots__ = ("_cursors", "_frame_ticks", "_max_lag", "_messages", "_phase", "_timer_at",
                 "_waiter", "close_request", "closed_symbols", "on_wake", "opened_at", "pending",
                 "pinger", "sending", "sending_since", "stats", "subscribed_ever",
                 "takes_frames", "writer", "wrote_at")

    def __init__(self, max_lag: int, max_frame_ticks: int,
                 stats: TransportStats | None = None, takes_frames: bool = False) -> None:
        self._cursors: dict[str, Cursor] = {}
        # Whether the transport sends drain()'s protocol v1 frames (WebSocket), so that due ticks
        # can be framed ahead of a message that must follow them (put_message's after_ticks).
        self.takes_frames = takes_frames
        self._messages: list[bytes] = []
        self._timer_at = 0.0  # loop time of the conflation timer pending, 0 = none
        self._phase: float | None = None  # loop time of its first conflated update
        self._waiter: asyncio.Future[None] | None = None
        # The hub checks this before waking, so a busy connection is woken once per drain.
        self.pending = False
        self._max_lag = max_lag
        self._frame_ticks = max_frame_ticks
        self.close_request: Close | None = None
        self.closed_symbols: tuple[str, ...] = ()  # followed until the close (Hub.disconnect)
        # Set by the transport while a send is in progress (loop time, begin_send), and the task
        # sending: one watchdog checks the connections in a send for stalls, instead of a timer
        # per frame; ``sending`` is the hub's set of them (Hub.connect).
        self.sending_since = 0.0
        self.sending: set[Subscriber] | None = None
        self.writer: asyncio.Task[object] | None = None
        # For the janitor's keep-alive (ticker/transport/keepalive.py): when the transport last
        # wrote to this connection (loop time), and its pinger if it has one.
        self.wrote_at = 0.0
        self.pinger: Pinger | None = None
        self.stats = stats or TransportStats()
        # For the janitor (ticker/transport/janitor.py): a WebSocket that never subscribes is
        # closed as idle some time after it opened (loop time; 0 = not watched).
        self.opened_at = 0.0
        self.subscribed_ever = False
        # Called instead of waking the writer task while a flusher serves this connection
        # (ticker/transport/flusher.py).
        self.on_wake: Callable[[], None] | None = None

    def begin_send(self, now: float) -> None:
        """A send the transport must wait for starts (``now``: loop time)."""
        self.sending_since = now
        if self.sending is not None:
            self.sending.add(self)

    def end_send(self) -> None:
        self.sending_since = 0.0
        if self.sending is not None:
            self.sending.discard(self)

    def follow(self, symbol: str, history: History, after_seq: int,
               max_rate: float = 0.0) -> Cursor:
        """Deliver ``symbol``'s ticks after ``after_seq``, then everything that follows; with
        ``max_rate`` (updates per second), only the latest tick at most that often. Returns the
        cursor, whose ``armed`` tells the hub that no wake-up is needed for new ticks."""
        cursor = self._cursors[symbol] = Cursor(history, after_seq,
                                                1.0 / max_rate if max_rate else 0.0)
        self.subscribed_ever = True
        self.wake()
        return cursor

    def unfollow(self, symbol: str) -> None:
        self._cursors.pop(symbol, None)

    @property
    def symbols(self) -> set[str]:
        return set(self._cursors)

    def positions(self) -> dict[str, int]:
        """The last seq given out, per symbol."""
        return {symbol: cursor.seq for symbol, cursor in self._cursors.items()}

    def put_message(self, data: bytes, after_ticks: bool = False) -> None:
        """Queue a message; replies go out before ticks already due, unless ``after_ticks``:
        then every tick due now goes first, e.g. the end of a replay after its last ticks. (That
        frames the ticks now, as protocol v1 frames: only where the transport sends
        :meth:`drain`'s frames, ``takes_frames``; elsewhere the flag changes nothing.)"""
        if self.close_request is None:
            if after_ticks and self.takes_frames:
                self._messages += self.tick_frames()
            self._messages.append(data)
            self.wake()

    def wake(self) -> None:
        if not self.pending:
            self.pending = True
            on_wake = self.on_wake
            if on_wake is not None:
                on_wake()
                return
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def close(self, request: Close) -> None:
        """Ask the writer to close the connection: the replies already queued still go out, then
        the close (its reason is the last thing the client reads); no tick is delivered."""
        if self.close_request is None:
            self.close_request = request
            self.closed_symbols = tuple(self._cursors)
            self._cursors.clear()
            self.wake()

    async def wait(self) -> None:
        """Return once there is something to drain (at once if there already is)."""
        if self.pending:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def drain(self) -> list[bytes]:
        """Everything due, as ready-to-send WebSocket frames: replies first, then the ticks."""
        frames = self.take_messages()
        frames += self.tick_frames()
        return frames

    def tick_frames(self, ws_header: bool = False) -> list[bytes]:
        """Every tick due, in feed order, as "ticks" messages; with ``ws_header``, each with its
        WebSocket frame header in front, ready for the socket (ticker/transport/frames.py)."""
        if compiled_take_frames is not None:
            taken = compiled_take_frames(self._cursors, self._max_lag, self._frame_ticks,
                                         TICKS_PREFIX, TICKS_SUFFIX, ws_header)
            if taken is not None:
                self.pending = False
                frames, count, first = taken
                if count:
                    stats = self.stats
                    stats.ticks += count
                    if first is not None and stats.latency.due():
                        stats.latency.observe(first)
                return frames
        frames = self.tick_frames_in_python()
        return [text_frame_header(len(frame)) + frame for frame in frames] if ws_header else frames

    def send_tick_frames(self, fd: int) -> tuple[int, int, bytes | None] | None:
        """:meth:`tick_frames` (ws_header=True) sent straight to the non-blocking socket ``fd``
        in one system call: (frames, payload bytes, what the kernel did not take, or None).
        None, with nothing taken, where only :meth:`tick_frames` can do it (no compiled
        ``ticker._frames``, or a case it hands back to Python)."""
        if compiled_send_frames is None:
            return None
        sent = compiled_send_frames(self._cursors, self._max_lag, self._frame_ticks,
                                    TICKS_PREFIX, TICKS_SUFFIX, fd)
        if sent is None:
            return None
        self.pending = False
        count, first, frames, payload, unsent = sent
        if count:
            stats = self.stats
            stats.ticks += count
            if first is not None and stats.latency.due():
                stats.latency.observe(first)
        return frames, payload, unsent

    def tick_frames_in_python(self) -> list[bytes]:
        """:meth:`tick_frames` without ``ticker._frames`` (and its reference in tests)."""
        ticks = in_feed_order(self.take_ticks())
        step = self._frame_ticks
        if len(ticks) <= step:
            return [TICKS_PREFIX + b",".join(ticks) + TICKS_SUFFIX] if ticks else []
        return [TICKS_PREFIX + b",".join(ticks[start:start + step]) + TICKS_SUFFIX
                for start in range(0, len(ticks), step)]

    def take_messages(self) -> list[bytes]:
        self.pending = False
        messages, self._messages = self._messages, []
        return messages

    def take_ticks(self) -> list[Run]:
        """Every tick due after the cursors, which move past them."""
        self.pending = False
        runs: list[Run] = []
        stats = self.stats
        for symbol, cursor in self._cursors.items():
            history = cursor.history
            if history.last == cursor.seq:
                continue
            if cursor.interval:
                if not cursor.armed:  # armed: its timer wakes us when it is due
                    self._take_conflated(symbol, cursor, runs)
                continue
            if not cursor.fresh and history.last - cursor.seq > self._max_lag:
                self.close(Close(CLOSE_SLOW_CONSUMER,
                                 f"slow consumer: {history.last - cursor.seq} ticks behind on "
                                 f"{symbol}"))
                return []
            cursor.fresh = False
            ticks, places, start = history.after_placed(cursor.seq)
            runs.append((symbol, max(cursor.seq + 1, history.first), ticks, places, start))
            stats.ticks += len(ticks)
            cursor.seq = history.last
        if runs and stats.latency.due():
            stats.latency.observe(runs[0][2][0])
        return runs

    def _take_conflated(self, symbol: str, cursor: Cursor, runs: list[Run]) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= cursor.next_due:
            history = cursor.history
            ticks, places, start = history.after_placed(history.last - 1)
            runs.append((symbol, history.last, ticks, places, start))
            self.stats.ticks += 1
            self.stats.conflated += max(0, history.last - cursor.seq - 1)
            cursor.seq = history.last
            if self._phase is None:
                self._phase = now
            cursor.next_due = next_slot(now, cursor.interval, self._phase)
        # Armed at once, not at the next tick: until its timer the hub does not wake us for
        # this symbol, so a busy symbol costs a conflated client one wake-up per interval.
        cursor.arm()
        due = cursor.next_due
        if not self._timer_at or due < self._timer_at:
            self._timer_at = due
            loop.call_at(due, self._due)

    def _due(self) -> None:
        """The conflation timer: every cursor due by now may take its next update."""
        self._timer_at = 0.0
        now = asyncio.get_running_loop().time() + TIMER_SLACK
        later = 0.0
        for cursor in self._cursors.values():
            if cursor.armed:
                if cursor.next_due <= now:
                    cursor.disarm()
                elif not later or cursor.next_due < later:
                    later = cursor.next_due
        if later:  # a cursor with another interval, due after this one
            self._timer_at = later
            asyncio.get_running_loop().call_at(later, self._due)
        self.wake()


# The loop's timers keep milliseconds: one may fire that much before its time.
TIMER_SLACK = 0.002


def next_slot(now: float, interval: float, phase: float) -> float:
    """When a conflated cursor given an update at ``now`` may have its next: the slot after the
    one nearest ``now`` on the connection's grid of ``interval`` from ``phase``. So one client's
    symbols at the same rate fall due together, and it gets one frame per interval rather than
    one per symbol (measured: 10,000 clients x 3 symbols at 1/s took the whole server core at
    17k updates/s with a timer per symbol); and an update sent late (the server was busy) does
    not push the next one a whole interval further. Steady updates come exactly ``interval``
    apart; the first after a quiet spell may come from half to one and a half intervals after
    the one before."""
    return phase + (round((now - phase) / interval) + 1) * interval
