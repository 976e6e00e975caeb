"""ReplayFeed: a recording played back as a Feed, paced by its own timestamps.

The ticks it yields are the recorded ones, unchanged (recorded ``ts`` included). Pacing is
scheduled from an anchor, recorded ts0 <-> clock t0: a tick is due at t0 + (ts - ts0) / speed, so
it never drifts however long it runs; pause, resume, seek and a speed change re-anchor.

Runs: a consumer that publishes epochs iterates :meth:`ReplayFeed.runs`, one inner iterator per
run. A new run starts at the beginning, at every loop, after every seek, and where a symbol's seq
does not continue by +1 (a directory holding several recording sessions, or a gap): within one run
each symbol's seqs rise by exactly 1, as protocol v1 promises within an epoch.

Reading happens in a worker thread, a few thousand ticks ahead, so the event loop never waits on
the disk, not even for a seek through a large file.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

from feeds.base import Clock, WallClock
from feeds.catalog import RecordingSource
from feeds.readahead import ReadAhead
from feeds.recording import StrPath
from feeds.times import parse_instant
from ticker.errors import FeedError
from ticker.model import SymbolInfo, Tick

log = logging.getLogger("feeds.replay")

Speed = float | Literal["max"]
MAX: Literal["max"] = "max"
MAX_BATCH = 10_000  # paced: at most this many due ticks per batch (a consumer that fell behind)
MAX_SPEED_BATCH = 1_000  # at "max": ticks per batch, the loop gets control back between batches
MIN_SLEEP_S = 0.001
MAX_UNREADABLE_KEPT = 10_000  # lines remembered as reported; past that, a loop reports again


def parse_speed(value: str | float) -> Speed:
    """``"max"`` or a positive factor: ``10``, ``"0.5"``, ``"10x"``. Raises ValueError."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == MAX:
            return MAX
        try:
            value = float(text.removesuffix("x"))
        except ValueError:
            raise ValueError(f"speed {value!r} is neither \"max\" nor a number > 0") from None
    if isinstance(value, bool) or not (0 < value < math.inf):
        raise ValueError(f"speed must be \"max\" or a finite number > 0, got {value!r}")
    return float(value)


class _NewRun:
    pass


_NEW_RUN = _NewRun()
Event = list[Tick] | _NewRun


class ReplayFeed:
    """Plays a recording FILE or DIRectory (one stream, see feeds.catalog) as a Feed.

    ``from_ts``/``to_ts`` (Unix ms, or anything :func:`feeds.times.parse_instant` reads) keep the
    ticks with from_ts <= ts <= to_ts; ``symbols`` keeps those symbols (all must be recorded).
    One consumer at a time: a new ``batches()``/``runs()`` iteration takes over, and an older one
    stops at its next step. The control methods are called from the event loop's thread.
    """

    kind = "replay"

    def __init__(self, source: StrPath | RecordingSource, speed: Speed | str = 1.0,
                 loop: bool = False, from_ts: float | str | None = None,
                 to_ts: float | str | None = None, symbols: Iterable[str] | None = None,
                 clock: Clock | None = None,
                 on_unreadable: Callable[[], None] | None = None) -> None:
        self._source = source if isinstance(source, RecordingSource) else RecordingSource(source)
        if not self._source.has_ticks:
            raise FeedError(f"{self._source.path}: no readable tick to replay")
        # Each unreadable line is logged and counted once, however often a loop or seek reads
        # it again; on_unreadable is called then (from the reader's thread), e.g. for /metrics.
        self._on_unreadable = on_unreadable
        self._unreadable: set[tuple[str, int]] = set()
        self.unreadable_lines = 0
        self._speed: Speed = parse_speed(speed)
        self._loop = loop
        self._from = parse_instant(from_ts) if from_ts is not None else None
        self._to = parse_instant(to_ts) if to_ts is not None else None
        if self._from is not None and self._to is not None and self._from > self._to:
            raise ValueError(f"from_ts {self._from} is after to_ts {self._to}")
        recorded = self._source.symbols
        self._only: frozenset[str] | None = None
        if symbols is not None:
            wanted = {s.upper() for s in symbols}
            unknown = sorted(wanted - {info.symbol for info in recorded})
            if unknown:
                more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
                raise FeedError(f"not in the recording: {', '.join(unknown[:8])}{more}")
            self._only = frozenset(wanted)
            recorded = tuple(info for info in recorded if info.symbol in wanted)
        self.symbols: Sequence[SymbolInfo] = recorded
        self.source = self._source.source
        self._clock: Clock = clock if clock is not None else WallClock()
        self._paused = False  # by the user
        self._held = False  # until there is someone to play to (see hold)
        self._wake = asyncio.Event()
        self._seek_to: float | None = None
        self._anchor_ts = 0.0  # recorded time ...
        self._anchor_at = 0.0  # ... that was (or will be) due at this clock time
        self._frozen: float | None = None  # recorded time where a pause holds
        self._head: float | None = None  # ts of the next tick to emit
        self._last: float | None = None
        self._generation = 0  # a new iteration takes over; older ones stop at their next step
        self._ended = False
        self.runs_started = 0

    # -- state and controls --------------------------------------------------------------------

    @property
    def speed(self) -> Speed:
        return self._speed

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def ended(self) -> bool:
        """True once the recording (without loop) played to its end; iteration has stopped."""
        return self._ended

    @property
    def position(self) -> float | None:
        """The recorded ts of the last tick emitted (None before the first)."""
        return self._last

    @property
    def held(self) -> bool:
        return self._held

    def pause(self) -> None:
        if not self._paused:
            self._stop()
            self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._go()

    def hold(self) -> None:
        """Stop before the next tick until :meth:`release`, apart from any pause: a replay for one
        connection waits for its client to subscribe, so that its first ticks are not played to
        nobody. The run still starts (its symbols are known); its clock starts on release."""
        if not self._held:
            self._stop()
            self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._go()

    def _stop(self) -> None:
        if not (self._paused or self._held):
            self._frozen = self._here()
            self._wake.set()

    def _go(self) -> None:
        if not (self._paused or self._held):
            self._anchor(self._frozen)
            self._wake.set()

    def set_speed(self, speed: Speed | str) -> None:
        new = parse_speed(speed)
        if not (self._paused or self._held):
            self._anchor(self._here())
        self._speed = new
        self._wake.set()

    def seek(self, ts: float | str) -> None:
        """Continue from the first tick at or after ``ts`` (as a new run), paced from there; a
        paused replay stays paused. After the end, the next iteration starts there."""
        self._seek_to = parse_instant(ts)
        self._wake.set()

    def _here(self) -> float | None:
        """Where playback stands in recorded time: never past the next tick not yet emitted."""
        head = self._head
        if self._speed == MAX or head is None:
            return head if head is not None else self._last
        reach = self._anchor_ts + (self._clock.now_ms() - self._anchor_at) * self._speed
        return min(reach, head)

    def _anchor(self, ts: float | None) -> None:
        if ts is None:
            ts = self._head if self._head is not None else 0.0
        self._anchor_ts, self._anchor_at = ts, self._clock.now_ms()
        self._frozen = ts

    # -- iteration -----------------------------------------------------------------------------

    async def batches(self) -> AsyncIterator[list[Tick]]:
        """Every run's batches, one after another: seqs restart where a run does, so a
        consumer that keeps epochs iterates :meth:`runs` instead."""
        events = self._events()
        try:
            async for item in events:
                if isinstance(item, list):
                    yield item
        finally:
            await events.aclose()

    async def runs(self) -> AsyncIterator[AsyncIterator[list[Tick]]]:
        """One batch iterator per run (start it as a new epoch). Finish a run before asking for
        the next: what is left of it is played out (paced) first."""
        events = self._events()
        try:
            item: Event | None = await anext(events, None)
            while item is not None:
                run = _Run(events)
                yield run
                item = await run.rest()
        finally:
            await events.aclose()

    async def _events(self) -> AsyncGenerator[Event]:
        self._generation += 1
        mine = self._generation
        self._ended = False
        self._wake.set()  # an older iteration, waiting in a pause or a sleep, wakes up and stops
        start, self._seek_to = (self._seek_to if self._seek_to is not None else self._from), None
        reader: ReadAhead | None = None
        try:
            while True:
                if reader is not None:
                    reader.close()
                reader = ReadAhead(self._open(start))
                head = await reader.peek()
                if head is None:  # nothing at or after start (a seek past the end)
                    if self._loop and start != self._from:
                        start = self._from
                        continue
                    break
                self._head = head.ts
                self._anchor(head.ts)
                self.runs_started += 1
                yield _NEW_RUN
                async for item in self._play(reader, mine):
                    yield item
                if self._generation != mine:
                    return
                if self._seek_to is not None:
                    start, self._seek_to = self._seek_to, None
                elif self._loop:
                    start = self._from
                else:
                    break
            self._ended = True
        finally:
            if self._generation == mine:
                self._head = None
            if reader is not None:
                reader.close()

    async def _play(self, reader: ReadAhead, mine: int) -> AsyncGenerator[Event]:
        """One pass from the reader's first tick until its end, a seek, or a newer iteration."""
        last_seq: dict[str, int] = {}
        clock = self._clock
        while self._seek_to is None and self._generation == mine:
            if self._paused or self._held:
                await self._wait_for_wake()
                continue
            head = await reader.peek()
            if head is None:
                return
            self._head = head.ts
            speed = self._speed
            if speed == MAX:
                batch, boundary = await reader.take(MAX_SPEED_BATCH, math.inf, last_seq)
            else:
                reach = self._anchor_ts + (clock.now_ms() - self._anchor_at) * speed
                if head.ts > reach:
                    await self._wait_for_wake(max((head.ts - reach) / speed / 1000.0,
                                                  MIN_SLEEP_S))
                    continue
                batch, boundary = await reader.take(MAX_BATCH, reach, last_seq)
            if batch:
                self._last = batch[-1].ts
                nxt = await reader.peek()
                self._head = nxt.ts if nxt is not None else None
                yield batch
            if boundary:
                last_seq.clear()
                self.runs_started += 1
                yield _NEW_RUN
            if speed == MAX:
                await asyncio.sleep(0)

    async def _wait_for_wake(self, seconds: float | None = None) -> None:
        """Sleeps on the clock (or, with no time, until a control call), cut short by one."""
        self._wake.clear()
        waker = asyncio.ensure_future(self._wake.wait())
        tasks: set[asyncio.Future[Any]] = {waker}
        if seconds is not None:
            tasks.add(asyncio.ensure_future(self._clock.sleep(seconds)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()

    def _open(self, start: float | None) -> Iterator[Tick]:
        source, to_ts, only = self._source, self._to, self._only
        refresh = self.runs_started > 0 and source.path.is_dir()

        def ticks() -> Iterator[Tick]:  # runs in the reader's thread
            if refresh:
                source.refresh()  # a recorder may have added files
            for tick in source.ticks(start, self._skipped):
                if to_ts is not None and tick.ts > to_ts:
                    return
                if only is None or tick.symbol in only:
                    yield tick

        return ticks()


    def _skipped(self, path: str, lineno: int, error: str) -> None:
        if (path, lineno) in self._unreadable:
            return
        if len(self._unreadable) < MAX_UNREADABLE_KEPT:
            self._unreadable.add((path, lineno))
        self.unreadable_lines += 1
        if self.unreadable_lines <= 20 or self.unreadable_lines % 1000 == 0:
            log.warning("%s:%d: skipped an unreadable tick line (%d so far): %s", path, lineno,
                        self.unreadable_lines, error)
        if self._on_unreadable is not None:
            self._on_unreadable()


class _Run:
    """One run's batches, read from the shared event stream up to the next run's start."""

    def __init__(self, events: AsyncGenerator[Event]) -> None:
        self._events = events
        self._next: Event | None = None
        self._done = False

    def __aiter__(self) -> _Run:
        return self

    async def __anext__(self) -> list[Tick]:
        if self._done:
            raise StopAsyncIteration
        item = await anext(self._events, None)
        if isinstance(item, list):
            return item
        self._done, self._next = True, item
        raise StopAsyncIteration

    async def rest(self) -> Event | None:
        """Plays out what is left of this run; the next run's marker, or None at the end."""
        async for _ in self:
            pass
        return self._next
