"""Ticks read ahead in a worker thread, so an event loop never waits on the disk."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from itertools import islice

from ticker.model import Tick

PREFETCH = 4_096


class ReadAhead:
    """One pass of a replay over an iterator of ticks, read in chunks in a worker thread."""

    def __init__(self, ticks: Iterator[Tick]) -> None:
        self._ticks = ticks
        self._buffer: deque[Tick] = deque()
        self._exhausted = False
        self._busy = False

    async def peek(self) -> Tick | None:
        if not self._buffer and not self._exhausted:
            self._busy = True
            try:
                chunk = await asyncio.to_thread(_take, self._ticks, PREFETCH)
            except asyncio.CancelledError:
                raise  # the thread may still be reading: it keeps the generator (see close)
            except BaseException:
                self._busy = False
                raise
            self._busy = False
            self._exhausted = len(chunk) < PREFETCH
            self._buffer.extend(chunk)
        return self._buffer[0] if self._buffer else None

    async def take(self, limit: int, until_ts: float,
                   last_seq: dict[str, int]) -> tuple[list[Tick], bool]:
        """Up to ``limit`` ticks with ts <= until_ts; stops before a tick that breaks a symbol's
        seq run, returning True with the batch so far."""
        batch: list[Tick] = []
        buffer = self._buffer
        while len(batch) < limit:
            if not buffer and await self.peek() is None:
                break
            tick = buffer[0]
            if tick.ts > until_ts:
                break
            previous = last_seq.get(tick.symbol)
            if previous is not None and tick.seq != previous + 1:
                return batch, True
            last_seq[tick.symbol] = tick.seq
            batch.append(buffer.popleft())
        return batch, False

    def close(self) -> None:
        # A read still running in the thread (the consumer was cancelled mid-read) owns the
        # generator: it is collected, closing its file, when that read returns.
        if not self._busy and hasattr(self._ticks, "close"):
            self._ticks.close()


def _take(ticks: Iterator[Tick], count: int) -> list[Tick]:
    return list(islice(ticks, count))
